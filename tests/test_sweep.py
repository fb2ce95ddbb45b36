"""vaekit sweep: grid × seeds as run folders in an Optuna study; resume; shared storage; report numbers."""

import json
import multiprocessing
import os
import time

import numpy as np
import pytest
from scipy import stats

from vaekit.benchmarks.sweeps import engine as sweep_mod
from vaekit.benchmarks.sweeps.results import aggregate, summarize
from vaekit.benchmarks.sweeps.spec import SweepSpec, from_dict, grid_arms, parse_assignments
from vaekit.cli import main

TINY = {
    "data": "digits",
    "epochs": 1,
    "hidden": [16],
    "latent_dim": 2,
    "eval_num_samples": 2,
    "kl_diagnostic_points": 0,
    "batch_size": 256,
}


def _spec(n_arms=2, seeds=(0, 1)):
    arms = {f"arm{i}": {"lr": 1e-3 * (i + 1)} for i in range(n_arms)}
    return SweepSpec(dict(TINY), arms, tuple(seeds), {})


def _logging_runner(log_path, die_on=None, sleep=0.3):
    """A point runner that appends '<pid> <key>' to a log; on ``die_on`` the process dies (a kill)."""

    def run(point, out_dir, evaluate):
        with open(log_path, "a") as f:
            f.write(f"{os.getpid()} {point.key}\n")
        if point.key == die_on:
            os._exit(1)  # no clean-up, no tell: the trial stays RUNNING with a stale heartbeat
        time.sleep(sleep)
        return {"value": float(point.seed)}

    return run


def _work(spec_dict, out, log_path, die_on=None):
    sweep_mod.work_grid(
        SweepSpec(**spec_dict),
        out,
        None,
        None,
        heartbeat_interval=1,
        grace_period=2,
        runner=_logging_runner(log_path, die_on),
        log=lambda *_: None,
    )


def _trials(out):
    import optuna

    from vaekit.benchmarks.sweeps.storage import default_storage, open_storage

    storage = open_storage(default_storage(out))
    return optuna.load_study(study_name=os.path.basename(out), storage=storage).get_trials()


def test_two_workers_share_one_sqlite_storage_without_running_a_point_twice(tmp_path):
    out, log = str(tmp_path / "sweep"), tmp_path / "ran.log"
    spec = _spec(n_arms=3, seeds=(0, 1, 2))
    sweep_mod.open_study(spec, out)  # the launcher creates the study and enqueues the grid
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_work, args=(spec.to_dict(), out, str(log))) for _ in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert [p.exitcode for p in procs] == [0, 0]
    lines = [line.split() for line in log.read_text().splitlines()]
    keys = [key for _, key in lines]
    assert sorted(keys) == sorted(p.key for p in spec.points())  # every point once, none twice
    assert len({pid for pid, _ in lines}) == 2  # both workers did work
    trials = _trials(out)
    assert [t.state.name for t in trials] == ["COMPLETE"] * 9


def test_a_killed_sweep_resumes_without_redoing_finished_points(tmp_path):
    out, log = str(tmp_path / "sweep"), tmp_path / "ran.log"
    spec = _spec(n_arms=2, seeds=(0, 1))
    keys = [p.key for p in spec.points()]
    sweep_mod.open_study(spec, out)
    ctx = multiprocessing.get_context("fork")
    killed = ctx.Process(target=_work, args=(spec.to_dict(), out, str(log), keys[1]))
    killed.start()
    killed.join(60)
    assert killed.exitcode == 1  # died on the second point
    assert [t.state.name for t in _trials(out)][:2] == ["COMPLETE", "RUNNING"]
    _work(spec.to_dict(), out, str(log))  # restart: the stale trial is failed and its point run again
    ran = [line.split()[1] for line in log.read_text().splitlines()]
    assert ran.count(keys[0]) == 1  # the finished point was not redone
    assert ran.count(keys[1]) == 2  # the killed point ran again (its run folder resumes)
    assert sorted(set(ran)) == sorted(keys)
    states = [t.state.name for t in _trials(out)]
    assert states.count("COMPLETE") == 4 and states.count("FAIL") == 1


def test_run_point_reuses_a_finished_run_and_resumes_a_killed_one(tmp_path):
    from vaekit.benchmarks.sweeps.points import run_point

    point = _spec(n_arms=1, seeds=(0,)).points()[0]
    first = run_point(point, tmp_path)
    run_dir = tmp_path / "runs" / point.key
    weights = run_dir / "model.safetensors"
    stamp = weights.stat().st_mtime_ns
    assert run_point(point, tmp_path) == first and weights.stat().st_mtime_ns == stamp  # reused
    (run_dir / "summary.json").unlink()  # as if killed after the last checkpoint
    again = run_point(point, tmp_path)
    assert again["epochs_trained"] == 1 and again["test.elbo"] == pytest.approx(first["test.elbo"], abs=1e-4)
    other = SweepSpec({**TINY, "lr": 0.5}, {point.arm: {}}, (0,), {}).points()[0]
    with pytest.raises(ValueError, match="other settings"):
        run_point(other, tmp_path)


def test_summary_matches_numpy_and_scipy_t_interval():
    values = [0.61, 0.72, 0.55, 0.80]
    s = summarize(values)
    x = np.array(values)
    sem = x.std(ddof=1) / np.sqrt(4)
    assert s["mean"] == pytest.approx(x.mean()) and s["std"] == pytest.approx(x.std(ddof=1))
    half = stats.t.ppf(0.975, 3) * sem  # 3.182 · sem
    assert s["ci95_low"] == pytest.approx(x.mean() - half) and s["ci95_high"] == pytest.approx(x.mean() + half)
    assert np.isnan(summarize([1.0])["ci95_low"])
    agg = aggregate({"a": {0: {"m": 1.0, "only0": 2.0}, 1: {"m": 3.0}}})
    assert set(agg["a"]) == {"m"} and agg["a"]["m"]["mean"] == 2.0


def test_grid_flags_and_sweep_file():
    grid = parse_assignments(["model=vae,avae", "noise_std=0,0.2", "hidden=[32,32]"])
    assert grid == {"model": ["vae", "avae"], "noise_std": [0, 0.2], "hidden": [[32, 32]]}
    assert len(grid_arms(grid)) == 4
    spec = from_dict(
        {"base": TINY, "grid": {"model": ["vae", "ae"]}, "arms": {"wide": {"hidden": [64]}}, "seeds": [3, 4]}
    )
    assert [p.key for p in spec.points()][:3] == ["model-vae-seed3", "model-ae-seed3", "wide-seed3"]
    with pytest.raises(ValueError, match="not a setting"):
        parse_assignments(["modle=vae"])
    with pytest.raises(ValueError, match="arm 'bad'"):
        SweepSpec(TINY, {"bad": {"latent_dim": 0}}, (0,)).points()


def test_cli_sweep_end_to_end_report(tmp_path, capsys):
    out = tmp_path / "s"
    sets = [a for k, v in TINY.items() for a in ("--set", f"{k}={json.dumps(v)}")]
    code = main(["sweep", "--grid", "model=vae,ae", "--seeds", "0", "1", *sets, "--out", str(out)])
    assert code == 0
    report = json.loads((out / "sweep-report.json").read_text())
    assert set(report["aggregate"]) == {"model=vae", "model=ae"}
    per_seed = [report["arms"]["model=vae"][s]["test.elbo"] for s in ("0", "1")]
    assert report["aggregate"]["model=vae"]["test.elbo"]["mean"] == pytest.approx(np.mean(per_seed))
    assert (out / "sweep-report.html").read_text().count("model=vae") >= 1 and (out / "sweep-per-seed.png").is_file()
    assert "95 %" in capsys.readouterr().out
    # a second call finds every point finished and trains nothing
    stamp = (out / "runs" / "model-vae-seed0" / "model.safetensors").stat().st_mtime_ns
    assert main(["sweep", "--grid", "model=vae,ae", "--seeds", "0", "1", *sets, "--out", str(out)]) == 0
    assert (out / "runs" / "model-vae-seed0" / "model.safetensors").stat().st_mtime_ns == stamp
    # another grid in the same study is refused with one line
    assert main(["sweep", "--grid", "model=vae", "--seeds", "0", *sets, "--out", str(out)]) == 1
    assert "other settings" in capsys.readouterr().err


def test_search_mode_runs_optuna_sampler(tmp_path):
    sets = [a for k, v in TINY.items() for a in ("--set", f"{k}={json.dumps(v)}")]
    code = main(
        [
            "sweep",
            "--search",
            "random",
            "--search-space",
            "lr=float:1e-3:1e-2:log",
            "--n-trials",
            "2",
            "--metric",
            "test.elbo",
            *sets,
            "--out",
            str(tmp_path / "s"),
        ]
    )
    assert code == 0
    report = json.loads((tmp_path / "s" / "sweep-report.json").read_text())
    assert report["states"]["COMPLETE"] == 2 and report["best"]["value"] is not None


def test_collecting_results_keeps_the_wall_time_of_the_training_run(tmp_path):
    import json
    import time

    from vaekit.benchmarks.sweeps.points import wall_time

    path = tmp_path / "results.json"
    assert wall_time(path, time.perf_counter(), collect_only=True) is None
    path.write_text(json.dumps({"wall_time_s": 3743.0}))
    assert wall_time(path, time.perf_counter(), collect_only=True) == 3743.0
    assert wall_time(path, time.perf_counter() - 2.0, collect_only=False) >= 2.0


# --- issue 20: bad input and faults of `vaekit sweep` -------------------------------------------

SETS = [a for k, v in TINY.items() for a in ("--set", f"{k}={json.dumps(v)}")]
#: A custom encoder by import path: building it needs --trust-code (docs/custom-networks.md).
ENCODER = '--set=encoder={"target": "vaekit.nets:MLPEncoder", "kwargs": {"hidden": [8]}}'


def _one_error_line(capsys) -> str:
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and err[0].startswith("vaekit: error:") and "Traceback" not in err[0], err
    return err[0]


@pytest.mark.parametrize(
    "argv", [["--grid", "seed=1,2"], ["--set", "seed=3"], ["--grid", "lr=0.001", "--set", "seed=1"]]
)
def test_seed_in_grid_or_set_is_refused_pointing_to_seeds(tmp_path, capsys, argv):
    assert main(["sweep", *argv, *SETS, "--out", str(tmp_path / "s")]) == 1
    assert "--seeds" in _one_error_line(capsys)
    assert not (tmp_path / "s" / "runs").exists()  # nothing trained
    with pytest.raises(ValueError, match="--seeds 1"):  # a sweep file's base (or an arm) too
        from_dict({"base": {**TINY, "seed": 1}}).points()
    with pytest.raises(ValueError, match="arm 'a'"):
        SweepSpec(TINY, {"a": {"seed": 2}}, (0,)).points()


def test_a_repeated_grid_setting_merges_its_values():
    assert parse_assignments(["beta=1", "beta=4,1", "model=vae"]) == {"beta": [1, 4], "model": ["vae"]}
    assert list(grid_arms(parse_assignments(["beta=1", "beta=4"]))) == ["beta=1", "beta=4"]
    with pytest.raises(ValueError, match="--set epochs: one value expected, got \\[1, 2\\]"):
        sweep_mod.grid_spec((), (), ("epochs=1", "epochs=2"))
    enc = parse_assignments(['encoder={"target": "m:E", "kwargs": {"a": 1, "b": 2}}'], "--set")
    assert enc == {"encoder": [{"target": "m:E", "kwargs": {"a": 1, "b": 2}}]}  # a JSON object is one value


def test_a_sweep_where_points_fail_exits_non_zero_saying_how_many(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(sweep_mod, "max_jobs", lambda: 1)  # and --jobs 64 is clamped to the cores
    out = tmp_path / "s"
    assert main(["sweep", "--grid", "lr=1e30,0.001", "--jobs", "64", *SETS, "--out", str(out)]) == 1
    line = _one_error_line(capsys)  # (every point failing: the first run of the --trust-code test below)
    assert "1 of 2 sweep point(s) failed (lr-1eplus30-seed0: TrainingDiverged" in line
    assert "the finished ones are kept; fix the cause and run the same command again" in line
    report = json.loads((out / "sweep-report.json").read_text())
    assert len(report["failures"]) == 1 and report["unfinished"] == ["lr-1eplus30-seed0"]


def test_jobs_above_the_cores_are_clamped_with_a_line(monkeypatch):
    lines = []
    monkeypatch.setattr(sweep_mod, "max_jobs", lambda: 1)
    monkeypatch.setattr(sweep_mod, "_worker_main", lambda kwargs, spawned=False: None)  # no work
    monkeypatch.setattr("vaekit.benchmarks.sweeps.results.write_report", lambda *a, **k: {})
    import tempfile

    with tempfile.TemporaryDirectory() as out:
        sweep_mod.run_sweep(_spec(1, (0,)), out, jobs=64, log=lines.append)
    assert lines == [
        "--jobs 64 is more than the 1 CPU core(s) this process may use; running 1 worker(s), one point per core"
    ]
    assert 1 <= sweep_mod.max_jobs() <= (os.cpu_count() or 1)


def test_trust_code_reaches_the_workers_and_a_rerun_retries_failed_points(tmp_path, capsys, monkeypatch):
    out = tmp_path / "s"
    argv = ["sweep", "--grid", "lr=0.001,0.002", ENCODER, *SETS, "--out", str(out)]
    assert main(argv) == 1  # custom code without trust: both points fail (before any training)
    assert "2 of 2 sweep point(s) failed" in _one_error_line(capsys) and "CodeNotTrusted" in json.dumps(
        json.loads((out / "sweep-report.json").read_text())["failures"]
    )
    monkeypatch.setattr(sweep_mod, "max_jobs", lambda: 2)  # two worker processes even on a 1-core runner
    assert main([*argv, "--jobs", "2", "--trust-code"]) == 0  # the same sweep again: failed points retried
    assert "retrying 2 point(s)" in capsys.readouterr().out
    trials = _trials(str(out))
    assert [t.state.name for t in trials] == ["FAIL", "FAIL", "COMPLETE", "COMPLETE"]
    assert os.getpid() not in {t.user_attrs["pid"] for t in trials[2:]}  # built in spawned worker processes
    stamp = (out / "runs" / "lr-0.001-seed0" / "model.safetensors").stat().st_mtime_ns
    assert main([*argv, "--trust-code"]) == 0 and "retrying" not in capsys.readouterr().out  # finished: kept
    assert (out / "runs" / "lr-0.001-seed0" / "model.safetensors").stat().st_mtime_ns == stamp


def test_a_rerun_of_a_failed_point_claimed_twice_runs_it_once(tmp_path):
    spec = _spec(n_arms=1, seeds=(0,))
    study, storage = sweep_mod.open_study(spec, tmp_path / "s")
    key = spec.points()[0].key
    study.enqueue_trial({}, user_attrs={"point": key, "mode": "grid"})  # two launchers retried it at once
    first, _ = sweep_mod.claim(study, storage)
    second, _ = sweep_mod.claim(study, storage)
    assert first is not None and second is not None
    assert sweep_mod.claimed_before(study, storage, first, key) is None  # the first claim runs it
    assert sweep_mod.claimed_before(study, storage, second, key) == storage.get_trial(first).number


@pytest.mark.parametrize(
    "url,secret",
    [
        ("postgresql://user:s3cr3tpw@localhost:1/db", "s3cr3tpw"),
        ("mysql+pymysql://u:s3cr3tpw@127.0.0.1:1/db", "s3cr3tpw"),
        ("postgresql://user:s3cr3tpw@host:notaport/db", "s3cr3tpw"),
        ("user:s3cr3tpw@host", "s3cr3tpw"),  # not a URL SQLAlchemy can parse
        ("postgresql://u@localhost:1/db?password=s3cr3tpw&sslmode=require", "s3cr3tpw"),
        ("postgresql://user:p%40ss%2Fw0rd@localhost:1/db", "p@ss/w0rd"),
    ],
)
def test_a_storage_password_is_never_printed(tmp_path, capsys, url, secret):
    from vaekit.benchmarks.sweeps.storage import hide_password, scrub
    from vaekit.cli.sweep import SweepArgs, sweep_command

    assert main(["sweep", *SETS, "--storage", url, "--out", str(tmp_path / "s")]) == 1
    line = _one_error_line(capsys)
    assert "***" in line and secret not in line and "p%40ss" not in line
    assert secret not in hide_password(url) and "***" in hide_password(url)
    assert scrub(f"failed: {url} ({secret})", url).count("***") >= 2
    command = sweep_command(SweepArgs(storage=url, grid=("model=vae",)))  # the command printed on Ctrl-C
    assert secret not in command and "***" in command and "--grid model=vae" in command


def test_ctrl_c_prints_the_sweep_command_without_the_password(tmp_path, capsys, monkeypatch):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(sweep_mod, "run_sweep", interrupted)
    url = f"sqlite:///{tmp_path / 's.db'}?password=s3cr3tpw"
    assert main(["sweep", "--grid", "beta=1,4", "--storage", url, "--out", str(tmp_path / "s")]) == 130
    err = capsys.readouterr().err
    assert "continue the sweep with: vaekit sweep --grid beta=1,4" in err and "password=***" in err
    assert "s3cr3tpw" not in err


@pytest.mark.filterwarnings("ignore:Query string argument")  # SQLite ignores ?password= (a stand-in for a server)
def test_other_settings_in_a_shared_study_do_not_show_the_password(tmp_path):
    url = f"sqlite:///{tmp_path / 's.db'}?password=s3cr3tpw"
    sweep_mod.open_study(_spec(1, (0,)), tmp_path / "s", url)
    with pytest.raises(ValueError, match="other settings") as e:
        sweep_mod.open_study(_spec(2, (0,)), tmp_path / "s", url)
    assert "s3cr3tpw" not in str(e.value) and "password=***" in str(e.value)


@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_a_damaged_sweep_db_is_one_line_saying_to_move_it_away(tmp_path, capsys, damage):
    out = tmp_path / "s"
    study, storage = sweep_mod.open_study(_spec(2, (0, 1)), out)
    storage.engine.dispose()
    db = out / "sweep.db"
    if damage == "garbage":
        db.write_bytes(np.random.default_rng(0).bytes(5000))
    else:
        db.write_bytes(db.read_bytes()[: db.stat().st_size // 3])
    assert main(["sweep", *SETS, "--out", str(out)]) == 1
    line = _one_error_line(capsys)
    assert f"{db} is not a readable sweep database" in line and f"mv {db} {db}.broken" in line
    assert main(["sweep", *SETS, "--out", str(out), "--report-only"]) == 1
    assert "not a readable sweep database" in _one_error_line(capsys)


@pytest.mark.parametrize("mode", [["--search", "random", "--search-space", "lr=float:1e-3:1e-2"], ["--grid", "beta=1"]])
def test_an_unknown_metric_is_refused_before_any_training(tmp_path, capsys, mode):
    out = tmp_path / "s"
    assert main(["sweep", *mode, "--metric", "test.nope", *SETS, "--out", str(out)]) == 1
    line = _one_error_line(capsys)
    assert "--metric 'test.nope' is not a metric" in line and "test.elbo" in line
    assert not (out / "runs").exists()
    with pytest.raises(ValueError, match="a name under robustness."):
        sweep_mod.check_metric("probe.x", SweepSpec(TINY, {"a": {}}, (0,), {"robustness": {}}))
    sweep_mod.check_metric("robustness.probe.digit.clean", SweepSpec(TINY, {"a": {}}, (0,), {"robustness": {}}))
