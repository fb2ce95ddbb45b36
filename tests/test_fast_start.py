"""Fast start of ``vaekit train`` (issue 11): the digits and their fixed split load without
importing scikit-learn (seconds of SciPy imports), with exactly the data and split it gives."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from vaekit.data.base import fixed_split
from vaekit.data.digits import read_digits

SRC = str(Path(__file__).resolve().parents[1] / "src")


def test_digits_and_split_equal_scikit_learn(tmp_path, monkeypatch):
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    monkeypatch.setenv("VAEKIT_CACHE", str(tmp_path))
    bunch = load_digits()
    images, target = read_digits()
    assert np.array_equal(images, bunch.images) and np.array_equal(target, bunch.target)
    train, test = train_test_split(np.arange(1797), test_size=0.2, random_state=0, stratify=target)
    for _ in range(2):  # computed, then read from the cache
        assert np.array_equal(fixed_split(1797, "train", target), np.sort(train))
        assert np.array_equal(fixed_split(1797, "test", target), np.sort(test))
    assert len(list((tmp_path / "splits").iterdir())) == 1
    other = fixed_split(100, "test")  # another key, another file
    assert len(other) == 20 and len(list((tmp_path / "splits").iterdir())) == 2


def test_cached_split_loads_without_scikit_learn(tmp_path):
    code = (
        "import sys; from vaekit.data import digits; digits.load('train'); "
        "assert 'sklearn' not in sys.modules, 'sklearn imported'"
    )
    env = {**os.environ, "PYTHONPATH": SRC, "VAEKIT_CACHE": str(tmp_path), "OMP_NUM_THREADS": "1"}
    subprocess.run([sys.executable, "-c", code], env=env, check=False)  # the first run fills the cache
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-500:]


def test_the_commands_modules_import_no_matplotlib():
    """matplotlib (0.5 s) is imported at a command's first figure, not with its module: ``vaekit
    evaluate`` and the other commands that draw nothing do not pay it."""
    code = (
        "import sys; import vaekit.cli.use, vaekit.cli.explore, vaekit.cli.train, vaekit.cli.evaluate, "
        "vaekit.reporting.plots; assert 'matplotlib' not in sys.modules, 'matplotlib imported'"
    )
    env = {**os.environ, "PYTHONPATH": SRC, "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-500:]
