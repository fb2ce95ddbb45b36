"""The objective's own settings: a tagged union in the run config (zoo issue, part 1)."""

import json

import pytest

from vaekit.cli import main
from vaekit.config import OBJECTIVE_SETTINGS, Config, ObjectiveConfig


@pytest.mark.parametrize(
    "model, objective, members",
    [
        ("vae", "elbo", {"capacity_max", "capacity_steps"}),
        ("vae", "iwae", set()),
        ("betatc", "elbo", {"alpha", "gamma", "tc_sampling"}),
        ("avae", "elbo", {"rho", "epsilon", "num_steps", "aux_sample"}),
        ("avae-ss", "elbo", {"rho"}),
        ("wae", "elbo", set()),
    ],
)
def test_config_json_holds_the_tag_and_only_its_members_settings(model, objective, members):
    extra = {"init": "some-run"} if model == "avae-ss" else {}
    config = Config.from_flat(model=model, objective=objective, **extra)
    section = config.to_dict()["objective"]
    assert section.pop("name") == config.objective_name
    assert set(section) == members == set(OBJECTIVE_SETTINGS.get(config.objective_name, ()))
    assert "alpha" not in config.to_dict()["train"] and "rho" not in config.to_dict()["train"]
    assert Config.from_dict(json.loads(json.dumps(config.to_dict()))) == config


def test_a_members_settings_round_trip_and_reach_its_objective():
    from vaekit.objectives import build_objective

    config = Config.from_flat(model="betatc", alpha=2.0, gamma=3.0, tc_sampling="mss", beta=6.0)
    assert Config.from_dict(config.to_dict()).objective == ObjectiveConfig(alpha=2.0, gamma=3.0, tc_sampling="mss")
    objective = build_objective(config, dataset_size=100)
    assert (objective.alpha, objective.beta, objective.gamma) == (2.0, 6.0, 3.0)


def test_a_setting_of_another_objective_is_refused_with_the_fix():
    with pytest.raises(ValueError, match=r"--rho is a setting of the coupling / self-supervised objective.*avae"):
        Config.from_flat(model="vae", rho=0.5)
    with pytest.raises(ValueError, match=r"--alpha .* betatc"):
        Config.from_flat(model="avae", alpha=2.0)
    with pytest.raises(ValueError, match=r"--capacity-max"):
        Config.from_flat(model="vae", objective="iwae", capacity_max=5.0)
    Config.from_flat(model="vae", rho=0.975)  # the default is no setting given


def test_a_config_json_of_an_older_vaekit_still_loads():
    """vaekit <= 0.4 kept the objective's settings in the train section."""
    old = {"model": {"name": "avae"}, "train": {"rho": 0.9, "aux_sample": True, "epochs": 3}, "data": {}}
    config = Config.from_dict(old)
    assert (config.objective.rho, config.objective.aux_sample, config.train.epochs) == (0.9, True, 3)
    flat_v1 = {"model": "betatc", "alpha": 2.0, "epochs": 2}  # vaekit <= 0.1: one flat dict
    assert Config.from_dict(flat_v1).objective.alpha == 2.0


def test_a_tag_that_does_not_match_the_model_is_refused():
    values = Config.from_flat(model="betatc").to_dict()
    values["objective"]["name"] = "coupling"
    with pytest.raises(ValueError, match="tagged 'coupling'.*trains 'betatc'"):
        Config.from_dict(values)


def test_the_cli_refuses_a_stray_objective_flag_in_one_line(tmp_path, capsys):
    assert main(["train", "--model", "vae", "--rho", "0.5", "--epochs", "1", "--runs-dir", str(tmp_path)]) != 0
    err = capsys.readouterr().err.strip()
    assert "--rho is a setting of the coupling" in err and "Traceback" not in err and len(err.splitlines()) == 1
    assert not any(tmp_path.iterdir())
