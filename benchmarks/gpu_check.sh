#!/usr/bin/env bash
# The GPU checks of README's "On a GPU" section, as one script (about 5 minutes on one H200; part 4 adds about 5).
# Needs vaekit installed (pip install -e ".[test]") and a CUDA build of torch. Writes under ${OUT:-gpu-check}/.
set -o pipefail
OUT=${OUT:-gpu-check}; mkdir -p "$OUT"; export OMP_NUM_THREADS=1 PYTHONUNBUFFERED=1
nvidia-smi -L | tee "$OUT/env.txt"
python3 -c "import sys, torch; print(sys.version.split()[0], torch.__version__, torch.cuda.get_device_name())" | tee -a "$OUT/env.txt"
# 1. The CLI end to end on CUDA: each precision, torch.compile, two models with inner optimisation.
for args in "--precision 32" "--precision bf16" "--precision 16-mixed" "--compile" "--model avae" "--model se"; do
  name=g$(echo $args | tr -dc 'a-z0-9'); echo "== vaekit train --device cuda --epochs 5 $args"
  vaekit train --device cuda --epochs 5 --runs-dir "$OUT/runs" --name "$name" --overwrite $args 2>&1 | tail -3
done | tee "$OUT/cli.txt"
# 2. The test suite with CUDA present (device "auto" picks the GPU); pytest-benchmark, if installed, refuses xdist.
xdist=$(python3 -c "import xdist" 2>/dev/null && echo "-n 12")
python3 -m pytest -q $xdist -p no:benchmark -p no:cacheprovider tests 2>&1 | tail -40 | tee "$OUT/pytest.txt"
# 3. vaekit.fit against a minimal loop on the GPU.
python3 benchmarks/train_throughput.py --device cuda --precision 32 --epochs 10 --repeats 3 --output "$OUT/train_throughput_cuda.json"
# 4. Issue 32 (not yet run on a GPU): torch.compile against eager per model size, and the fused
#    against the foreach Adam step (vaekit train, 5 epochs each, the time per epoch from metrics.jsonl).
python3 benchmarks/compile_speed.py --device cuda --epochs 3 --rounds 5 --output "$OUT/compile_cuda.json"
for flag in --fused-optimizer --no-fused-optimizer; do
  vaekit train --device cuda --epochs 5 --runs-dir "$OUT/runs" --name "adam$flag" --overwrite --quiet $flag >/dev/null
  python3 -c "import json, sys; h = [json.loads(l) for l in open(sys.argv[1])]; print(sys.argv[2], 'median s/epoch', sorted(r['time'] for r in h)[len(h) // 2])" \
    "$OUT/runs/adam$flag/metrics.jsonl" "$flag"
done | tee "$OUT/fused_cuda.txt"
