"""``vaekit sweep``: arms × seeds (or an Optuna search), every point a run folder, trials in an Optuna study.

The trials live in an Optuna study with RDB storage (Optuna's ``RDBStorage``): by default an
embedded SQLite file ``OUT/sweep.db``; a database server URL (``postgresql://...``,
``mysql+pymysql://...``) lets workers on several machines share one sweep, each running
``vaekit sweep ... --storage URL``. Grid points are enqueued once, by the process that creates
the study (creation is atomic: the study name is unique in the database), as WAITING trials
carrying their point key. A worker claims a point by moving its trial WAITING -> RUNNING in one
transaction (Optuna's ``set_trial_state_values`` returns False when another worker won); on
SQLite every transaction takes the write lock first (``BEGIN IMMEDIATE``), so that check and
update cannot interleave between processes. While it runs a point the worker records a heartbeat;
a trial whose heartbeat is older than the grace period (a killed worker) is failed by the next
worker and its point enqueued again, and :func:`~vaekit.benchmarks.sweeps.points.run_point` resumes
its run folder from the checkpoint. Finished points are never run again; failed ones are run
again when the sweep is started again (:func:`retry_failed`, by the launcher before its workers
start). Should two workers still claim one point (two launchers retrying it at once), the later
claim (by start time, then trial number) steps back and is marked FAIL with ``duplicate_of``.

``--jobs`` is bounded by the CPU cores this process may use (:func:`max_jobs`): each worker runs
one point on one thread, so more workers only share the same cores; a larger value is clamped to
the cores with a printed line. Worker processes inherit ``--trust-code`` (custom networks).

``search`` mode asks an Optuna sampler (TPE, random, CMA-ES, QMC, GP) for settings instead; each
trial runs every seed and its value is the mean of ``metric`` over them.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import threading
import time
from pathlib import Path

from ... import io
from .points import check_metric, run_point
from .spec import Point, SweepSpec, grid_arms
from .storage import claimed_before, default_storage, hide_password, open_storage, retry_failed, scrub, storage_errors

SAMPLERS = ("tpe", "random", "cmaes", "qmc", "gp")


def _print(message: str) -> None:
    print(message, flush=True)  # workers write to a file under nohup: no block buffering


SPEC_FILE = "sweep.json"


def open_study(
    spec: SweepSpec,
    out_dir,
    storage_url: str | None = None,
    study_name: str | None = None,
    heartbeat_interval: int = 10,
    grace_period: int = 60,
    direction: str = "maximize",
    grid: bool = True,
):
    """Create or load the sweep's study; the creator enqueues every grid point.

    Returns:
        ``(study, storage)``.

    Raises:
        ValueError: the study exists with other points (pass another --study-name or --out).
    """
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    storage = open_storage(storage_url or default_storage(out), heartbeat_interval, grace_period)
    name = study_name or out.resolve().name
    keys = [p.key for p in spec.points()]
    try:
        study = optuna.create_study(study_name=name, storage=storage, direction=direction)
        created = True
    except optuna.exceptions.DuplicatedStudyError:
        study, created = optuna.load_study(study_name=name, storage=storage), False
    if created:
        study.set_user_attr("spec", spec.to_dict())
        if grid:
            for key in keys:
                study.enqueue_trial({}, user_attrs={"point": key, "mode": "grid"})
        study.set_user_attr("enqueued", True)
    else:
        _wait_for(lambda: study.user_attrs.get("enqueued"), f"study {name!r} to be set up by its creator")
        if study.user_attrs["spec"] != json.loads(json.dumps(spec.to_dict())):
            raise ValueError(
                f"sweep study {name!r} in {hide_password(storage.url)} was started with other settings; "
                "use the same grid, seeds and evaluations, or another --study-name / --out"
            )
    return study, storage


def _wait_for(condition, what: str, timeout: float = 120.0) -> None:
    start = time.monotonic()
    while not condition():
        if time.monotonic() - start > timeout:
            raise RuntimeError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.5)


def claim(study, storage):
    """Claim a WAITING grid trial (WAITING -> RUNNING); returns ``(trial_id, point_key)`` or ``(None, None)``."""
    from optuna.exceptions import UpdateFinishedTrialError
    from optuna.trial import TrialState

    study_id = storage.get_study_id_from_name(study.study_name)
    for trial in storage.get_all_trials(study_id, deepcopy=False, states=(TrialState.WAITING,)):
        try:
            if storage.set_trial_state_values(trial._trial_id, state=TrialState.RUNNING):
                storage.record_heartbeat(trial._trial_id)
                return trial._trial_id, trial.user_attrs["point"]
        except UpdateFinishedTrialError:
            continue
    return None, None


class _Heartbeat:
    """Records the heartbeat of one trial every ``interval`` seconds in a daemon thread."""

    def __init__(self, storage, trial_id: int, interval: float):
        self.storage, self.trial_id, self.interval = storage, trial_id, interval
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._beat, daemon=True)

    def _beat(self):
        while not self.stop.wait(self.interval):
            self.storage.record_heartbeat(self.trial_id)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join()


def _states(study):
    return [t.state.name for t in study.get_trials(deepcopy=False)]


def work_grid(
    spec: SweepSpec,
    out_dir,
    storage_url: str | None,
    study_name: str | None,
    worker: str = "0",
    heartbeat_interval: int = 10,
    grace_period: int = 60,
    metric: str | None = None,
    log=_print,
    runner=run_point,
) -> int:
    """A worker: claim and run grid points until every point is finished; returns how many it ran.

    Waits (and fails stale trials) while other workers still run points, so a killed worker's
    points are picked up. Each trial records ``metrics`` (flat dict), ``worker`` and ``run_dir``
    as user attributes; its value is ``metric`` (0 when absent). A point that raises is marked
    FAIL with the error (not retried in this run; :func:`retry_failed` enqueues it again when the
    sweep is started again). ``runner(point, out_dir, evaluate) -> metrics`` runs
    a point (default :func:`~vaekit.benchmarks.sweeps.points.run_point`).
    """
    import optuna
    from optuna.trial import TrialState

    study, storage = open_study(spec, out_dir, storage_url, study_name, heartbeat_interval, grace_period)
    points = {p.key: p for p in spec.points()}
    ran = 0
    while True:
        optuna.storages.fail_stale_trials(study)
        trial_id, key = claim(study, storage)
        if trial_id is None:
            if "RUNNING" not in _states(study) and "WAITING" not in _states(study):
                return ran
            time.sleep(min(heartbeat_interval, 2))
            continue
        first = claimed_before(study, storage, trial_id, key)
        if first is not None:  # enqueued twice (racing retries or extensions): keep the first claim
            storage.set_trial_user_attr(trial_id, "duplicate_of", first)
            storage.set_trial_state_values(trial_id, TrialState.FAIL)
            continue
        point = points[key]
        log(f"[worker {worker}] {point.arm} seed {point.seed}: running")
        storage.set_trial_user_attr(trial_id, "worker", worker)
        storage.set_trial_user_attr(trial_id, "pid", os.getpid())
        with _Heartbeat(storage, trial_id, heartbeat_interval):
            try:
                metrics = runner(point, out_dir, spec.evaluate)
            except Exception as e:  # recorded on the trial; the sweep goes on
                storage.set_trial_user_attr(trial_id, "error", f"{type(e).__name__}: {e}")
                storage.set_trial_state_values(trial_id, TrialState.FAIL)
                log(f"[worker {worker}] {point.arm} seed {point.seed}: failed: {e}")
                continue
        storage.set_trial_user_attr(trial_id, "metrics", metrics)
        storage.set_trial_user_attr(trial_id, "run_dir", str(Path(out_dir) / "runs" / key))
        storage.set_trial_state_values(trial_id, TrialState.COMPLETE, values=[metrics.get(metric, 0.0)])
        ran += 1
        log(f"[worker {worker}] {point.arm} seed {point.seed}: done")


def max_jobs() -> int:
    """The CPU cores this process may run on (``os.sched_getaffinity``, else ``os.cpu_count()``)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # macOS, Windows
        return max(1, os.cpu_count() or 1)


def parse_search_space(items) -> dict:
    """``["lr=float:1e-4:1e-2:log", "latent_dim=int:8:64", "model=choice:vae,avae"]`` -> Optuna distributions.

    Raises:
        ValueError: a malformed item (the message shows the forms).
    """
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    from .spec import parse_assignments, parse_value

    forms = "SETTING=float:LOW:HIGH[:log], SETTING=int:LOW:HIGH[:log] or SETTING=choice:A,B,..."
    space = {}
    for item in items:
        name, _, text = item.partition("=")
        kind, _, rest = text.partition(":")
        parts = rest.split(":")
        parse_assignments([f"{name}=0"], "--search-space")  # checks the setting name
        name = name.strip().lstrip("-").replace("-", "_")
        try:
            if kind == "float":
                space[name] = FloatDistribution(float(parts[0]), float(parts[1]), log=parts[2:] == ["log"])
            elif kind == "int":
                space[name] = IntDistribution(int(parts[0]), int(parts[1]), log=parts[2:] == ["log"])
            elif kind == "choice":
                space[name] = CategoricalDistribution([parse_value(v) for v in rest.split(",")])
            else:
                raise ValueError(kind)
        except (ValueError, IndexError):
            raise ValueError(f"--search-space {item!r}: expected {forms}") from None
    if not space:
        raise ValueError(f"--search needs --search-space items ({forms})")
    return space


def build_sampler(name: str, seed: int = 0):
    """An Optuna sampler by name (see :data:`SAMPLERS`), seeded.

    Raises:
        ValueError: unknown name.
    """
    import optuna

    samplers = {
        "tpe": optuna.samplers.TPESampler,
        "random": optuna.samplers.RandomSampler,
        "cmaes": optuna.samplers.CmaEsSampler,
        "qmc": optuna.samplers.QMCSampler,
        "gp": optuna.samplers.GPSampler,
    }
    if name not in samplers:
        raise ValueError(f"--search {name!r}: choose a sampler from {', '.join(SAMPLERS)}")
    return samplers[name](seed=seed)


def work_search(
    spec: SweepSpec,
    space: dict,
    out_dir,
    storage_url,
    study_name,
    n_trials: int,
    sampler: str,
    metric: str,
    direction: str = "maximize",
    worker: str = "0",
    heartbeat_interval: int = 10,
    grace_period: int = 60,
    log=_print,
) -> None:
    """A search worker: Optuna's ``optimize`` until the study holds ``n_trials`` finished trials.

    Each trial's settings are ``spec.base`` plus the sampled values; it runs every seed of
    ``spec`` (run folders ``runs/<sampled settings>-seed<k>``, so a killed trial that is retried
    with the same values resumes them) and its value is the mean of ``metric`` over the seeds.

    Raises:
        ValueError: ``metric`` missing from a point's metrics (the message lists the available ones).
    """
    import optuna
    from optuna.trial import TrialState

    study, storage = open_study(
        spec, out_dir, storage_url, study_name, heartbeat_interval, grace_period, direction=direction, grid=False
    )
    study.sampler = build_sampler(sampler, seed=int(worker) if str(worker).isdigit() else 0)

    def objective(trial):
        values = {name: _suggest(trial, name, dist) for name, dist in space.items()}
        arm = next(iter(grid_arms({k: [v] for k, v in values.items()})))
        sub = SweepSpec({**spec.base, **values}, {arm: {}}, spec.seeds, spec.evaluate)
        results = {}
        for point in sub.points():
            log(f"[worker {worker}] trial {trial.number} {arm} seed {point.seed}: running")
            results[point.seed] = run_point(point, out_dir, spec.evaluate)
            if metric not in results[point.seed]:
                raise ValueError(
                    f"--metric {metric!r} is not a metric of the runs; available: "
                    f"{', '.join(sorted(results[point.seed]))}"
                )
        trial.set_user_attr("arm", arm)
        trial.set_user_attr("metrics", {str(s): m for s, m in results.items()})
        return sum(m[metric] for m in results.values()) / len(results)

    stop = optuna.study.MaxTrialsCallback(n_trials, states=(TrialState.COMPLETE, TrialState.RUNNING))
    optuna.logging.set_verbosity(optuna.logging.ERROR)  # a failing trial raises below: no second report
    study.optimize(objective, callbacks=[stop], catch=())


def _suggest(trial, name: str, dist):
    """``trial.suggest_*`` for an Optuna distribution (fixed values of a re-enqueued trial are kept)."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution

    if isinstance(dist, CategoricalDistribution):
        return trial.suggest_categorical(name, dist.choices)
    if isinstance(dist, FloatDistribution):
        return trial.suggest_float(name, dist.low, dist.high, log=dist.log)
    return trial.suggest_int(name, dist.low, dist.high, log=dist.log)


def _worker_main(kwargs: dict, spawned: bool = False) -> None:
    """Entry of a worker: one thread, the launcher's ``trust_code``, then :func:`work_grid` or
    :func:`work_search`. A spawned worker reports an error as one line (no traceback, no password)
    and exits 1; Ctrl-C ends it quietly (exit 130)."""
    import sys

    from ... import runtime
    from ...custom_nets import trusting

    runtime.one_thread()  # and the policy of each fit
    spec = SweepSpec(**kwargs.pop("spec"))
    url, worker = kwargs["storage_url"], kwargs["worker"]
    try:
        with trusting(kwargs.pop("trust_code", False)), storage_errors(url):
            if kwargs.pop("mode") == "search":
                work_search(spec, parse_search_space(kwargs.pop("space_items")), **kwargs)
            else:
                work_grid(spec, **kwargs)
    except KeyboardInterrupt:
        if not spawned:
            raise
        sys.exit(130)
    except Exception as e:
        if not spawned:
            raise
        _print(f"[worker {worker}] stopped: {type(e).__name__}: {scrub(' '.join(str(e).split()), url)}")
        sys.exit(1)


def run_sweep(
    spec: SweepSpec,
    out_dir,
    jobs: int = 1,
    storage: str | None = None,
    study_name: str | None = None,
    heartbeat_interval: int = 10,
    grace_period: int = 60,
    metric: str | None = None,
    search: str | None = None,
    space_items=(),
    n_trials: int = 20,
    direction: str = "maximize",
    log=_print,
) -> dict:
    """Run a sweep with ``jobs`` worker processes, then write its report (see :mod:`.results`).

    Points that failed in an earlier run of the sweep are run again (:func:`retry_failed`);
    finished ones are kept. ``jobs`` above :func:`max_jobs` is clamped to it (with a log line).
    Worker processes get the caller's ``trust_code`` (:func:`vaekit.custom_nets.code_trusted`).

    Returns:
        The report dict (also ``OUT/sweep-report.json``; ``OUT/sweep-report.html``).

    Raises:
        ValueError: an invalid spec, search space, sampler or ``metric``; a storage that cannot
        be opened or is damaged (no message shows the storage URL's password).
    """
    with storage_errors(storage):
        return _run_sweep(
            spec,
            out_dir,
            jobs,
            storage,
            study_name,
            heartbeat_interval,
            grace_period,
            metric,
            search,
            space_items,
            n_trials,
            direction,
            log,
        )


def _run_sweep(
    spec,
    out_dir,
    jobs,
    storage,
    study_name,
    heartbeat_interval,
    grace_period,
    metric,
    search,
    space_items,
    n_trials,
    direction,
    log,
) -> dict:
    from ...custom_nets import code_trusted
    from .results import write_report

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    spec.points()  # validates every point before any work
    check_metric(metric, spec)
    if search:
        parse_search_space(space_items)
        build_sampler(search)
    if jobs > (cores := max_jobs()):
        log(
            f"--jobs {jobs} is more than the {cores} CPU core(s) this process may use; running {cores} "
            "worker(s), one point per core"
        )
        jobs = cores
    study, _ = open_study(spec, out, storage, study_name, heartbeat_interval, grace_period, direction, grid=not search)
    if not search:
        retry_failed(study, spec, log)
    io.write_json(out / SPEC_FILE, spec.to_dict())
    common = dict(
        spec=spec.to_dict(),
        out_dir=str(out),
        storage_url=storage,
        study_name=study_name,
        heartbeat_interval=heartbeat_interval,
        grace_period=grace_period,
        trust_code=code_trusted(),
    )
    if search:
        common.update(
            mode="search",
            space_items=list(space_items),
            n_trials=n_trials,
            sampler=search,
            metric=metric,
            direction=direction,
        )
    else:
        common.update(mode="grid", metric=metric)
    if jobs <= 1:
        _worker_main(dict(common, worker="0"))
    else:
        context = multiprocessing.get_context("spawn")
        procs = [context.Process(target=_worker_main, args=(dict(common, worker=str(i)), True)) for i in range(jobs)]
        for p in procs:
            p.start()
        for p in procs:
            p.join()
        failed = [p.exitcode for p in procs if p.exitcode]
        if failed:
            log(f"{len(failed)} worker(s) exited with an error (exit codes {failed}); finished points are kept")
    return write_report(out, storage, study_name, metric=metric)


def run_and_collect(
    spec: SweepSpec, out_dir, collect, jobs: int = 1, collect_only: bool = False, log=_print
) -> tuple[dict, float | None]:
    """A benchmark's sweep: run (or resume) it with ``jobs`` workers unless ``collect_only``, then
    ``collect(out_dir, spec)`` its finished points.

    Returns:
        (the collected rows, the wall seconds of the training run: see
        :func:`~vaekit.benchmarks.sweeps.points.wall_time`).

    Raises:
        ValueError: no finished point to collect.
    """
    from .points import wall_time

    out = Path(out_dir)
    started = time.perf_counter()
    if not collect_only:
        run_sweep(spec, out, jobs=jobs, log=log)
    rows = collect(out, spec)
    if not rows:
        raise ValueError(f"no finished points in {out}/runs yet")
    return rows, wall_time(out / "results.json", started, collect_only)


def grid_spec(grid_items, seeds, base_items=(), config_file=None, evaluate=None) -> SweepSpec:
    """A :class:`SweepSpec` from CLI pieces: ``--grid`` items, ``--seeds``, ``--set`` items, a sweep file."""
    from .spec import from_dict, parse_assignments, read

    spec = read(config_file, seeds or None) if config_file else from_dict({}, seeds or None)
    base = dict(spec.base)
    for name, values in parse_assignments(base_items, "--set").items():
        if len(values) != 1:
            raise ValueError(
                f"--set {name}: one value expected, got {values}; --set gives every arm one "
                f"value (several values make arms: --grid {name}=...)"
            )
        base[name] = values[0]
    arms = dict(spec.arms) if config_file else {}
    arms.update(grid_arms(parse_assignments(grid_items)))
    return SweepSpec(base, arms or {"base": {}}, spec.seeds, {**spec.evaluate, **(evaluate or {})})


__all__ = ["Point", "SweepSpec", "run_sweep", "work_grid", "work_search", "open_study", "claim", "grid_spec"]
