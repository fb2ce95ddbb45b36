"""Start-up time (issue 11): ``vaekit --help`` against ``python -c "import torch"``, and the time
from the end of torch's import to the first training step of ``vaekit train`` (goal: under 1 s).

torch.optim imports ``torch._dynamo`` the first time an optimizer is built (its
``_disable_dynamo`` wrapper): seconds that every PyTorch training loop pays. vaekit's optimizer
(``vaekit.training.lean_adam.LeanAdam``) does not import it (issue 32): the probe records whether
``vaekit train`` imported it by its first step and by its end, then imports it itself and times
that import apart (what a loop built on ``torch.optim.Adam`` pays on top).

Each measurement runs in a fresh process, ``--repeats`` times, interleaved; medians are reported
with the machine's load average (on a shared machine the import of torch alone varies 2x).
The second part runs ``vaekit train`` in-process after timing ``import torch``, recording when the
training step first runs, and lists the slowest imports after torch (``python -X importtime``).

    python benchmarks/startup.py --output benchmarks/results/startup.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

PROBE = r"""
import sys, time
t0 = time.perf_counter()
import torch
t1 = time.perf_counter()
from vaekit.training import loop
first, dynamo_at_first_step = [], []
forward = loop.TrainingStep.forward
def timed(self, *a, **k):
    if not first:
        first.append(time.perf_counter())
        dynamo_at_first_step.append("torch._dynamo" in sys.modules)
    return forward(self, *a, **k)
loop.TrainingStep.forward = timed
from vaekit.cli import main
main(["train", "--epochs", "1", "--runs-dir", sys.argv[1], "--name", "probe", "--quiet", "--overwrite",
      "--eval-num-samples", "10"])
dynamo_at_end = "torch._dynamo" in sys.modules
t2 = time.perf_counter()
import torch._dynamo  # what torch.optim imports on its first use (its _disable_dynamo wrapper)
t3 = time.perf_counter()
print({"import_torch_s": t1 - t0, "import_torch_dynamo_s": t3 - t2, "after_torch_to_first_step_s": first[0] - t1,
       "dynamo_imported_by_first_step": dynamo_at_first_step[0], "dynamo_imported_by_vaekit_train": dynamo_at_end})
"""


def run(cmd: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def slow_imports(tmp: str, limit: int = 12) -> list[dict]:
    """The slowest vaekit-side imports of ``vaekit train`` (self time, -X importtime), torch's excluded."""
    out = subprocess.run([sys.executable, "-X", "importtime", "-c", PROBE, tmp], capture_output=True, text=True,
                         check=True).stderr
    rows = []
    for line in out.splitlines():
        if line.startswith("import time:") and "|" in line and "self" not in line:
            self_us, cumulative_us, name = (part.strip() for part in line[len("import time:"):].split("|"))
            rows.append({"module": name.strip(), "self_ms": int(self_us) / 1000, "cumulative_ms": int(cumulative_us) / 1000})
    top = [r for r in rows if not r["module"].split(".")[0] in ("torch", "sympy", "numpy", "torchgen", "functorch")]
    return sorted(top, key=lambda r: -r["cumulative_ms"])[:limit]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--output", default="benchmarks/results/startup.json")
    args = parser.parse_args()
    from common import machine

    result = {"machine": machine(), "load_average_before": os.getloadavg()}
    torch_s, help_s, probe = [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(args.repeats):
            torch_s.append(run([sys.executable, "-c", "import torch"]))
            help_s.append(run([sys.executable, "-m", "vaekit", "--help"]))
            out = subprocess.run([sys.executable, "-c", PROBE, tmp], capture_output=True, text=True, check=True).stdout
            probe.append(eval(out.strip().splitlines()[-1]))  # noqa: S307 - our own dict literal
        result["slow_imports_of_vaekit_train"] = slow_imports(tmp)
    result.update({
        "python_import_torch_s": [round(t, 3) for t in torch_s], "vaekit_help_s": [round(t, 3) for t in help_s],
        "median_python_import_torch_s": round(statistics.median(torch_s), 3),
        "median_vaekit_help_s": round(statistics.median(help_s), 3),
        "train_after_torch_to_first_step_s": [round(p["after_torch_to_first_step_s"], 3) for p in probe],
        "import_torch_dynamo_s": [round(p["import_torch_dynamo_s"], 3) for p in probe],
        "median_import_torch_dynamo_s": round(statistics.median(p["import_torch_dynamo_s"] for p in probe), 3),
        "dynamo_imported_by_vaekit_train": any(p["dynamo_imported_by_vaekit_train"] for p in probe),
        "median_train_after_torch_to_first_step_s": round(statistics.median(
            p["after_torch_to_first_step_s"] for p in probe), 3),
        "load_average_after": os.getloadavg(),
    })
    Path(args.output).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k.startswith("median")}))


if __name__ == "__main__":
    main()
