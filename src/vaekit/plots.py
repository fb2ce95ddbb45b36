"""Matplotlib figures: loss curves, image grids, labelled image rows, the latent manifold, latent
scatter plots. Each writes one PNG."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from . import explore  # noqa: E402


def image_grid(images: torch.Tensor, ncols: int) -> np.ndarray:
    """Tile ``(n, C, H, W)`` images in [0, 1] into one ``(rows*H, ncols*W, C)`` array (1 px gaps)."""
    images = images.detach().float().clamp(0, 1).cpu()
    n, c, h, w = images.shape
    rows = -(-n // ncols)
    grid = torch.ones(c, rows * (h + 1) - 1, ncols * (w + 1) - 1)
    for i in range(n):
        r, col = divmod(i, ncols)
        grid[:, r * (h + 1):r * (h + 1) + h, col * (w + 1):col * (w + 1) + w] = images[i]
    return grid.permute(1, 2, 0).numpy()


def save_image_grid(images: torch.Tensor, path, ncols: int = 8, title: str | None = None) -> Path:
    """Write ``(n, C, H, W)`` images in [0, 1] as a PNG grid of ``ncols`` columns."""
    grid = image_grid(images, ncols)
    fig, ax = plt.subplots(figsize=(max(2.0, grid.shape[1] / 16), max(2.0, grid.shape[0] / 16)))
    ax.imshow(grid.squeeze(-1) if grid.shape[-1] == 1 else grid, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    ax.axis("off")
    if title:
        ax.set_title(title, fontsize=9)
    return _save(fig, path)


def reconstruction_grid(x: torch.Tensor, recon: torch.Tensor, path, n: int = 8) -> Path:
    """Inputs (top rows) over their reconstructions (bottom rows), ``n`` per row pair."""
    rows = []
    for start in range(0, len(x), n):
        rows += [x[start:start + n], recon[start:start + n]]
    return save_image_grid(torch.cat(rows), path, ncols=n, title="inputs (odd rows) over reconstructions (even rows)")


@torch.no_grad()
def latent_manifold(model, path, n: int = 15) -> Path:
    """Decode an ``n`` x ``n`` grid of Gaussian quantiles of a 2-D latent (Kingma & Welling 2013, fig. 4)."""
    if model.latent_dim != 2:
        raise ValueError(f"the latent manifold grid needs latent_dim=2, got {model.latent_dim}")
    return save_image_grid(explore.manifold(model, n=n), path, ncols=n, title="decoded Gaussian quantiles of z")


def image_rows(images: torch.Tensor, path, row_labels=None, col_labels=None, title: str | None = None) -> Path:
    """Write ``(rows, cols, C, H, W)`` images in [0, 1] as a grid, one labelled row per entry
    (traversals, interpolation strips, iterated reconstructions, one class per row)."""
    rows, cols = images.shape[:2]
    grid = image_grid(images.reshape(rows * cols, *images.shape[2:]), cols)
    h, w = images.shape[-2:]
    fig, ax = plt.subplots(figsize=(max(2.5, cols * max(w, 14) / 20 + 1), max(1.0, rows * max(h, 14) / 20)))
    ax.imshow(grid.squeeze(-1) if grid.shape[-1] == 1 else grid, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    ax.set_xticks([c * (w + 1) + w / 2 - 0.5 for c in range(cols)] if col_labels is not None else [])
    ax.set_yticks([r * (h + 1) + h / 2 - 0.5 for r in range(rows)] if row_labels is not None else [])
    if col_labels is not None:
        ax.set_xticklabels([str(v) for v in col_labels], fontsize=7)
    if row_labels is not None:
        ax.set_yticklabels([str(v) for v in row_labels], fontsize=8)
    ax.tick_params(length=0)
    for side in ax.spines.values():
        side.set_visible(False)
    if title:
        ax.set_title(title, fontsize=9)
    return _save(fig, path)


def latent_scatter(points, labels, path, title: str = "encoder means", label_name: str = "label") -> Path:
    """2-D scatter of projected codes ``(N, 2)``, coloured by integer ``labels`` ``(N,)`` (or one colour)."""
    points = np.asarray(points)
    fig, ax = plt.subplots(figsize=(5.5, 4.5))
    if labels is None:
        ax.scatter(points[:, 0], points[:, 1], s=6, alpha=0.7)
    else:
        labels = np.asarray(labels)
        art = ax.scatter(points[:, 0], points[:, 1], c=labels, s=6, alpha=0.8, cmap="tab10" if labels.max() < 10 else "viridis")
        fig.colorbar(art, ax=ax, label=label_name, ticks=np.unique(labels) if len(np.unique(labels)) <= 20 else None)
    ax.set_title(title, fontsize=9)
    ax.set_xlabel("component 1")
    ax.set_ylabel("component 2")
    return _save(fig, path)


def loss_curves(history: list[dict], path) -> Path:
    """Train and validation loss (nats per example) against epochs."""
    fig, ax = plt.subplots(figsize=(5, 3.5))
    epochs = [h["epoch"] for h in history]
    for key in ("train_loss", "val_loss"):
        if history and key in history[0]:
            ax.plot(epochs, [h[key] for h in history], label=key.replace("_", " "))
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss (nats per example)")
    ax.legend()
    ax.grid(alpha=0.3)
    return _save(fig, path)


def _save(fig, path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp.png")
    fig.savefig(tmp, dpi=100, bbox_inches="tight")
    plt.close(fig)
    tmp.replace(path)
    return path
