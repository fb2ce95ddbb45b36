"""vaekit sweep: grid × seeds as run folders in an Optuna study; resume; shared storage; report numbers."""

import json
import multiprocessing
import os
import time

import numpy as np
import pytest
from scipy import stats

from vaekit.cli import main
from vaekit.benchmarks.sweeps import engine as sweep_mod
from vaekit.benchmarks.sweeps.results import aggregate, summarize
from vaekit.benchmarks.sweeps.spec import SweepSpec, from_dict, grid_arms, parse_assignments

TINY = {"data": "digits", "epochs": 1, "hidden": [16], "latent_dim": 2, "eval_num_samples": 2,
        "kl_diagnostic_points": 0, "batch_size": 256}


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
    sweep_mod.work_grid(SweepSpec(**spec_dict), out, None, None, heartbeat_interval=1, grace_period=2,
                        runner=_logging_runner(log_path, die_on), log=lambda *_: None)


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
    spec = from_dict({"base": TINY, "grid": {"model": ["vae", "ae"]}, "arms": {"wide": {"hidden": [64]}},
                      "seeds": [3, 4]})
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
    code = main(["sweep", "--search", "random", "--search-space", "lr=float:1e-3:1e-2:log", "--n-trials", "2",
                 "--metric", "test.elbo", *sets, "--out", str(tmp_path / "s")])
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
