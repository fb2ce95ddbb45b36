"""Disentanglement metrics: ground truth scores ~1, random and constant codes score ~chance,
duplicated codes give MIG 0 and DCI completeness 1 - ln 2 / ln 10, votes land on the right dimension."""

import math

import numpy as np
import pytest
import torch

from vaekit.data.factors import FactorDataset
from vaekit.evaluation.disentanglement import (
    METRICS,
    beta_vae_score,
    dci_from_importance,
    dci_score,
    factor_vae_score,
    mig_score,
    sap_score,
)

SIZES = (3, 4, 2, 3, 4)  # five factors: a duplicated code has D = 10 dimensions


def toy(sizes=SIZES) -> FactorDataset:
    values = tuple(tuple(float(v) for v in range(s)) for s in sizes)
    return FactorDataset("toy", torch.zeros(1, 1), {}, True, tuple(f"f{k}" for k in range(len(sizes))), values)


def ground_truth(factors):
    return factors.astype(float)


def noise(factors):
    return np.random.default_rng(len(factors)).normal(size=(len(factors), len(SIZES)))


def zeros(factors):
    return np.zeros((len(factors), len(SIZES)))


def duplicated(factors):
    return np.concatenate([factors, factors], axis=1).astype(float)


def run_all(representation):
    data = toy()
    return {
        "beta_vae": beta_vae_score(data, representation, num_train=500, num_eval=300)["eval_accuracy"],
        "factor_vae": factor_vae_score(data, representation, num_train=500, num_eval=300, num_variance_estimate=1000)[
            "eval_accuracy"
        ],
        "mig": mig_score(data, representation, num_train=2000)["mig"],
        "dci": dci_score(data, representation, num_train=200, num_test=200),
        "sap": sap_score(data, representation, num_train=1000, num_test=500)["sap"],
    }


def test_ground_truth_scores_one():
    scores = run_all(ground_truth)
    assert scores["beta_vae"] == pytest.approx(1.0, abs=0.02)
    assert scores["factor_vae"] == pytest.approx(1.0, abs=0.02)
    assert scores["mig"] == pytest.approx(1.0, abs=0.03)
    assert scores["dci"]["disentanglement"] == pytest.approx(1.0, abs=0.03)
    assert scores["dci"]["completeness"] == pytest.approx(1.0, abs=0.03)
    assert scores["dci"]["informativeness_test"] == pytest.approx(1.0, abs=0.01)
    # SAP's accuracy gap is capped by the second-best code's chance accuracy (1/size for balanced
    # classes): mean_k (1 - 1/size_k) = 0.67 here, less where a 1-D linear SVM misses middle classes.
    assert scores["sap"] > 0.5


@pytest.mark.parametrize("representation", [noise, zeros], ids=["random", "all-zero"])
def test_uninformative_codes_score_chance(representation):
    scores = run_all(representation)
    chance = 1 / len(SIZES)
    assert scores["beta_vae"] < chance + 0.1
    assert scores["factor_vae"] < chance + 0.15
    assert scores["mig"] < 0.02
    assert scores["dci"]["disentanglement"] < 0.2
    assert scores["sap"] < 0.05


def test_zero_codes_are_pruned():
    result = factor_vae_score(toy(), zeros, num_train=100, num_eval=100, num_variance_estimate=100)
    assert result["num_active_dims"] == 0 and result["eval_accuracy"] == 0.0


def test_duplicated_codes():
    data = toy()
    assert mig_score(data, duplicated, num_train=2000)["mig"] == pytest.approx(0.0, abs=1e-12)
    dci = dci_score(data, duplicated, num_train=500, num_test=100)
    assert dci["completeness"] == pytest.approx(1 - math.log(2) / math.log(10), abs=0.03)


def test_dci_closed_forms():
    assert dci_from_importance(np.eye(4)) == pytest.approx((1.0, 1.0), abs=1e-6)
    assert dci_from_importance(np.tile(np.eye(5), (2, 1))) == pytest.approx(
        (1.0, 1 - math.log(2) / math.log(10)), abs=1e-6
    )
    assert dci_from_importance(np.ones((3, 3))) == pytest.approx((0.0, 0.0), abs=1e-6)


def test_factor_vae_votes_use_full_code_indices():
    """A collapsed first dimension is pruned; each factor's votes must land on its own code (k + 1)."""

    def shifted(factors):
        return np.concatenate([np.zeros((len(factors), 1)), factors], axis=1).astype(float)

    result = factor_vae_score(toy(), shifted, num_train=300, num_eval=100, num_variance_estimate=500)
    votes = np.array(result["votes"])
    assert result["num_active_dims"] == len(SIZES)
    assert votes[:, 0].sum() == 0
    assert list(votes.argmax(axis=1)) == [k + 1 for k in range(len(SIZES))]


def test_seeded_and_checked():
    data = toy()
    assert beta_vae_score(data, noise, seed=3, num_train=50, num_eval=50) == beta_vae_score(
        data, noise, seed=3, num_train=50, num_eval=50
    )
    with pytest.raises(ValueError, match="num_train"):
        mig_score(data, ground_truth, num_train=1)
    with pytest.raises(ValueError, match="shape"):
        data.grid_index(np.zeros((2, 3), dtype=int))
    assert set(METRICS) == {"beta_vae", "factor_vae", "mig", "dci", "sap"}
