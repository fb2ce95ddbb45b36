"""Reproduce the robustness table of the AVAE paper (Cemgil et al., NeurIPS 2020, table 2) on color-digits.

    OMP_NUM_THREADS=1 python benchmarks/robustness.py [--epochs N] [--data color-mnist] [--study] ...

A thin wrapper of ``vaekit benchmark robustness`` (same flags); results go to
benchmarks/results/robustness/ (see docs/readme/robustness.md).
"""

import sys

from vaekit.cli import main

if __name__ == "__main__":
    sys.exit(main(["benchmark", "robustness", *sys.argv[1:]]))
