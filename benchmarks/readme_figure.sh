#!/usr/bin/env bash
# The README's (and the docs home page's) figure: a VAE with a 2-D latent trained by the CLI on
# 10,000 Fashion-MNIST images (30 epochs), 64 decoded prior samples (`vaekit sample`) beside the decoded
# 15×15 grid of Gaussian quantiles of the latent (`vaekit manifold`), put side by side.
# Needs the Fashion-MNIST IDX files (Debian: apt-get install dataset-fashion-mnist).
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${RUNS:-/tmp/vaekit-readme-figure}
vaekit train --data fashion-mnist --data-dir /usr/share/datasets --train-size 10000 --net mlp --hidden 512 256 \
    --latent-dim 2 --epochs 30 --threads 1 --runs-dir "$runs" --name fmnist-2d-mlp --overwrite
vaekit sample "$runs/fmnist-2d-mlp" --n 64 --output "$runs/samples.png"
vaekit manifold "$runs/fmnist-2d-mlp" --output "$runs/manifold.png"
python3 - "$runs" docs/images/fashion-mnist-2d.png <<'PY'
import sys
from PIL import Image
run, out = sys.argv[1], sys.argv[2]
panels = [Image.open(f"{run}/{name}").convert("RGB") for name in ("samples.png", "manifold.png")]
height = 560  # px: small enough for the repository, sharp enough for the page
panels = [p.resize((round(p.width * height / p.height), height), Image.LANCZOS) for p in panels]
figure = Image.new("RGB", (sum(p.width for p in panels) + 20 * (len(panels) - 1), height), "white")
x = 0
for p in panels:
    figure.paste(p, (x, 0))
    x += p.width + 20
figure.convert("L").save(out, optimize=True)  # grey images: one channel
print(out, figure.size)
PY
