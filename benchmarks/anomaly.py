"""Reproduce the anomaly-detection benchmark: same as ``vaekit benchmark anomaly [flags]``."""

import sys

from vaekit.cli import main

if __name__ == "__main__":
    sys.exit(main(["benchmark", "anomaly", *sys.argv[1:]]))
