"""The Optuna RDB storage of a sweep: SQLite by default, a database server URL to share it.

On SQLite every transaction starts with ``BEGIN IMMEDIATE`` (it takes the write lock first), so a
worker's "is this trial still WAITING? then mark it RUNNING" cannot interleave with another's.
Heartbeats mark killed workers: their trials are failed and their points enqueued again; points
that failed are enqueued again when the sweep is started again (:func:`retry_failed`), and a point
claimed twice runs once (:func:`claimed_before`).

A storage URL may hold a password (``postgresql://user:secret@host/db``, or a query parameter such
as ``?password=secret``): no message, log line, report or printed command shows it;
:func:`hide_password` and :func:`scrub` put ``***`` in its place. A damaged or truncated SQLite
file is one line saying to move it away (:func:`storage_errors`).
"""

from __future__ import annotations

import contextlib
import re
from pathlib import Path
from urllib.parse import quote, unquote

#: ``scheme://user:password@`` at the start of a URL (the fallback when SQLAlchemy cannot parse it).
_USERINFO = re.compile(r"^(?:[^:/?#]+://)?[^:@/]*:(?P<password>[^@/]*)@")
#: Query parameters that carry a secret (``?password=...``, ``&sslpassword=...``, ``&token=...``).
_SECRET_KEY = re.compile(r"pass|pwd|secret|token|key", re.IGNORECASE)


def default_storage(out_dir) -> str:
    """``sqlite:///OUT/sweep.db`` (absolute path)."""
    return f"sqlite:///{(Path(out_dir) / 'sweep.db').resolve()}"


def _secrets(url: str) -> list[str]:
    """The secrets in a storage URL: its password and secret query values, raw and %-encoded, longest first."""
    found = set()
    try:
        from sqlalchemy.engine import make_url

        parsed = make_url(url)
        if parsed.password:
            found.add(str(parsed.password))
        for key, value in parsed.query.items():
            if _SECRET_KEY.search(key):
                found.update([value] if isinstance(value, str) else value)
    except Exception:  # noqa: BLE001 - an unparseable URL: the regular expressions below still apply
        pass
    if match := _USERINFO.match(url or ""):
        found.add(match["password"])
    for match in re.finditer(r"[?&]([^=&]+)=([^&]*)", url or ""):
        if _SECRET_KEY.search(match[1]):
            found.add(match[2])
    found |= {quote(s, safe="") for s in found} | {unquote(s) for s in found}
    return sorted((s for s in found if s), key=len, reverse=True)


def scrub(text: str, url: str | None) -> str:
    """``text`` with every secret of the storage ``url`` (password, secret query values) replaced by ``***``."""
    for secret in _secrets(url or ""):
        text = text.replace(secret, "***")
    return text


def hide_password(url: str | None) -> str | None:
    """A storage URL fit to print: ``postgresql://user:***@host/db`` (None stays None)."""
    return None if url is None else scrub(url, url)


class DamagedStorage(ValueError):
    """The sweep's database cannot be read (a damaged or truncated SQLite file)."""


@contextlib.contextmanager
def storage_errors(url: str | None):
    """Turn what the storage raises into one line without secrets.

    A damaged or truncated SQLite file becomes a :class:`DamagedStorage` naming the file and how to start the
    sweep's bookkeeping over (the finished run folders are reused); any other error whose message
    holds the URL's password is raised again (ValueError or RuntimeError) with ``***`` instead.
    """
    try:
        yield
    except Exception as e:
        import sqlite3

        text = " ".join(str(e).split())
        orig = getattr(e, "orig", e)
        if type(orig) is sqlite3.DatabaseError:  # "file is not a database", "database disk image is malformed"
            raise DamagedStorage(_damaged(url, orig)) from None
        clean = scrub(text, url)
        if clean != text:
            raise (ValueError if isinstance(e, ValueError) else RuntimeError)(clean) from None
        raise


def _damaged(url: str | None, error) -> str:
    from sqlalchemy.engine import make_url

    path = Path(make_url(url).database or "") if url and url.startswith("sqlite") else None
    if path is None:
        return (
            f"sweep storage {hide_password(url)} is damaged ({scrub(str(error), url)}); repair the database "
            "or pass another --storage / --study-name"
        )
    runs = path.parent / "runs"
    return (
        f"{path} is not a readable sweep database ({error}: damaged or truncated); move it away "
        f"(mv {path} {path}.broken) and run the same command again: the finished points in {runs} are "
        "reused, not trained again"
    )


def open_storage(url: str, heartbeat_interval: int = 10, grace_period: int = 60):
    """An Optuna ``RDBStorage`` for ``url`` with heartbeats; SQLite transactions serialised.

    Stale RUNNING trials (no heartbeat for ``grace_period`` seconds) are failed by
    ``optuna.storages.fail_stale_trials`` and their points enqueued again (:func:`_requeue`).

    Raises:
        ValueError: an invalid URL or database that cannot be opened (the message names it).
    """
    import warnings

    try:
        import optuna
        import sqlalchemy
    except ImportError:
        raise ImportError(
            "vaekit sweep keeps its trials in an Optuna study: pip install 'vaekit[sweep]' (optuna >= 5.0)"
        ) from None

    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    kwargs = {"connect_args": {"timeout": 120}} if url.startswith("sqlite") else {}
    try:
        with storage_errors(url):
            storage = optuna.storages.RDBStorage(
                url,
                engine_kwargs=kwargs,
                heartbeat_interval=heartbeat_interval,
                grace_period=grace_period,
                heartbeat_stale_trial_callback=_requeue,
            )
    except DamagedStorage:
        raise
    except (
        sqlalchemy.exc.ArgumentError,
        sqlalchemy.exc.OperationalError,
        ImportError,
        RuntimeError,
        ValueError,
    ) as e:  # ValueError: e.g. a port that is not a number
        message = scrub(" ".join(str(e).split()), url)
        raise ValueError(
            f"cannot open sweep storage {hide_password(url)!r}: {message}; pass --storage "
            "sqlite:///FILE.db or a database URL (postgresql://user:PASSWORD@host/db)"
        ) from None
    if storage.engine.name == "sqlite":
        _serialise_sqlite(storage.engine)
    return storage


def _serialise_sqlite(engine) -> None:
    """Make every transaction on ``engine`` start with BEGIN IMMEDIATE (SQLAlchemy's pysqlite recipe)."""
    from sqlalchemy import event

    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection, _record):
        dbapi_connection.isolation_level = None  # no implicit BEGIN from the sqlite3 module

    @event.listens_for(engine, "begin")
    def _begin(connection):
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    engine.dispose()  # connections opened before the listeners would not have them


def _requeue(study, trial) -> None:
    """Heartbeat callback: enqueue the point of a stale (failed) trial again."""
    point = trial.user_attrs.get("point")
    if point is not None and trial.user_attrs.get("mode") == "grid":
        study.enqueue_trial({}, user_attrs={"point": point, "mode": "grid", "retry_of": trial.number})
    elif trial.params:
        study.enqueue_trial(trial.params, user_attrs={"retry_of": trial.number})


def claimed_before(study, storage, trial_id: int, key: str):
    """The number of another trial of point ``key`` that is finished, or running and claimed before
    trial ``trial_id`` (earlier start, then lower number); None when this claim is the first."""
    from optuna.trial import TrialState

    mine = storage.get_trial(trial_id)
    for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.RUNNING)):
        if t.user_attrs.get("point") != key or t._trial_id == trial_id:
            continue
        if t.state == TrialState.COMPLETE or (t.datetime_start, t.number) < (mine.datetime_start, mine.number):
            return t.number
    return None


def retry_failed(study, spec, log=print) -> list[str]:
    """Enqueue again every grid point without a finished, waiting or running trial (it failed, or
    its worker died before failing it); returns their keys. Called by the launcher of a sweep."""
    from optuna.trial import TrialState

    trials = {}
    for t in study.get_trials(deepcopy=False):
        if t.user_attrs.get("mode") == "grid":
            trials.setdefault(t.user_attrs["point"], []).append(t)
    live = (TrialState.COMPLETE, TrialState.WAITING, TrialState.RUNNING)
    retried = []
    for point in spec.points():
        tried = trials.get(point.key, [])
        if not any(t.state in live for t in tried):
            attrs = {"point": point.key, "mode": "grid"}
            if tried:
                attrs["retry_of"] = tried[-1].number
            study.enqueue_trial({}, user_attrs=attrs)
            retried.append(point.key)
    if retried:
        log(f"retrying {len(retried)} point(s) that failed before: {', '.join(retried)}")
    return retried
