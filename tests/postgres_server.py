"""A PostgreSQL server for the tests: the one ``VAEKIT_TEST_POSTGRES_URL`` names (``.ci/run`` starts
Debian's ``postgresql`` on localhost and sets it), else a throw-away cluster started here with the
installed server binaries (``initdb`` + ``pg_ctl``, on 127.0.0.1 and a free port, as the
``postgres`` user when running as root), stopped and removed afterwards. ``None`` (the tests skip,
saying why) only where neither is possible."""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import socket
import subprocess
import tempfile

ENV = "VAEKIT_TEST_POSTGRES_URL"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _binaries() -> str | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if found:
        return os.path.dirname(found[-1])
    initdb = shutil.which("initdb")
    return os.path.dirname(initdb) if initdb else None


@contextlib.contextmanager
def postgres_url():
    """Yield ``(url, reason)``: a ``postgresql://`` URL of a live server and None, or None and why not."""
    try:
        import psycopg  # noqa: F401 - SQLAlchemy 2.1's default driver of postgresql:// URLs
    except ImportError:
        yield None, "psycopg is not installed (pip install -e '.[test]')"
        return
    if os.environ.get(ENV):
        yield os.environ[ENV], None
        return
    bin_dir = _binaries()
    if bin_dir is None:
        yield None, f"no PostgreSQL server: set {ENV}, or install Debian's postgresql (.ci/run does both)"
        return
    root = tempfile.mkdtemp(prefix="vaekit-pg-", dir="/tmp")
    as_user: list[str] = []
    if os.geteuid() == 0:  # the server refuses to run as root
        import pwd

        try:
            user = pwd.getpwnam("postgres")
        except KeyError:
            shutil.rmtree(root, ignore_errors=True)
            yield None, "running as root and there is no 'postgres' user to start a server as"
            return
        os.chown(root, user.pw_uid, user.pw_gid)
        as_user = ["runuser", "-u", "postgres", "--"]
    data, port = os.path.join(root, "data"), _free_port()
    started = False
    try:
        subprocess.run(
            [*as_user, f"{bin_dir}/initdb", "-D", data, "-A", "trust", "-U", "postgres", "--no-sync"],
            check=True,
            capture_output=True,
            timeout=120,
        )
        subprocess.run(
            [
                *as_user,
                f"{bin_dir}/pg_ctl",
                "-D",
                data,
                "-l",
                os.path.join(root, "log"),
                "-w",
                "-t",
                "60",
                "-o",
                f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off",
                "start",
            ],
            check=True,
            capture_output=True,
            timeout=120,
        )
        started = True
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres", None
    except (OSError, subprocess.SubprocessError) as e:
        if started:
            raise
        yield None, f"could not start a PostgreSQL server with {bin_dir}/initdb and pg_ctl: {e}"
    finally:
        if started:
            subprocess.run(
                [*as_user, f"{bin_dir}/pg_ctl", "-D", data, "-m", "immediate", "stop"], capture_output=True, timeout=60
            )
        shutil.rmtree(root, ignore_errors=True)
