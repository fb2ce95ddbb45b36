"""The Optuna RDB storage of a sweep: SQLite by default, a database server URL to share it.

On SQLite every transaction starts with ``BEGIN IMMEDIATE`` (it takes the write lock first), so a
worker's "is this trial still WAITING? then mark it RUNNING" cannot interleave with another's.
Heartbeats mark killed workers: their trials are failed and their points enqueued again.
"""

from __future__ import annotations

from pathlib import Path


def default_storage(out_dir) -> str:
    """``sqlite:///OUT/sweep.db`` (absolute path)."""
    return f"sqlite:///{(Path(out_dir) / 'sweep.db').resolve()}"


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
        raise ImportError("vaekit sweep keeps its trials in an Optuna study: pip install 'vaekit[sweep]' "
                          "(optuna >= 5.0)") from None

    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    kwargs = {"connect_args": {"timeout": 120}} if url.startswith("sqlite") else {}
    try:
        storage = optuna.storages.RDBStorage(url, engine_kwargs=kwargs, heartbeat_interval=heartbeat_interval,
                                             grace_period=grace_period, heartbeat_stale_trial_callback=_requeue)
    except (sqlalchemy.exc.ArgumentError, sqlalchemy.exc.OperationalError, ImportError) as e:
        raise ValueError(f"cannot open sweep storage {url!r}: {e}; pass --storage sqlite:///FILE.db or a "
                         "database URL (postgresql://user:pw@host/db)") from None
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
