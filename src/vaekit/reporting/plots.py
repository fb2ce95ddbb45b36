"""Matplotlib figures: loss curves, image grids, labelled image rows, the latent manifold, latent
scatter plots. Each writes one PNG.

Figures are :class:`matplotlib.figure.Figure` objects drawn by the Agg canvas, without pyplot:
no global figure registry, no backend choice, so several figures can be drawn at once from
threads (:func:`write_parallel`) and nothing has to be closed. Importing this module imports no
matplotlib; the first figure does."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch

from ..evaluation import explore


def image_grid(images: torch.Tensor, ncols: int) -> np.ndarray:
    """Tile ``(n, C, H, W)`` images in [0, 1] into one ``(rows*H, ncols*W, C)`` array (1 px gaps)."""
    images = images.detach().float().clamp(0, 1).cpu()
    n, c, h, w = images.shape
    rows = -(-n // ncols)
    grid = torch.ones(c, rows * (h + 1) - 1, ncols * (w + 1) - 1)
    for i in range(n):
        r, col = divmod(i, ncols)
        grid[:, r * (h + 1) : r * (h + 1) + h, col * (w + 1) : col * (w + 1) + w] = images[i]
    return grid.permute(1, 2, 0).numpy()


def save_image_grid(images: torch.Tensor, path, ncols: int = 8, title: str | None = None) -> Path:
    """Write ``(n, C, H, W)`` images in [0, 1] as a PNG grid of ``ncols`` columns."""
    grid = image_grid(images, ncols)
    fig, ax = _subplots(figsize=(max(2.0, grid.shape[1] / 16), max(2.0, grid.shape[0] / 16)))
    ax.imshow(grid.squeeze(-1) if grid.shape[-1] == 1 else grid, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    ax.axis("off")
    if title:
        ax.set_title(title, fontsize=9)
    return _save(fig, path)


def reconstruction_grid(x: torch.Tensor, recon: torch.Tensor, path, n: int = 8) -> Path:
    """Inputs (top rows) over their reconstructions (bottom rows), ``n`` per row pair."""
    rows = []
    for start in range(0, len(x), n):
        rows += [x[start : start + n], recon[start : start + n]]
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
    fig, ax = _subplots(figsize=(max(2.5, cols * max(w, 14) / 20 + 1), max(1.0, rows * max(h, 14) / 20)))
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
    fig, ax = _subplots(figsize=(5.5, 4.5))
    if labels is None:
        ax.scatter(points[:, 0], points[:, 1], s=6, alpha=0.7)
    else:
        labels = np.asarray(labels)
        art = ax.scatter(
            points[:, 0], points[:, 1], c=labels, s=6, alpha=0.8, cmap="tab10" if labels.max() < 10 else "viridis"
        )
        fig.colorbar(art, ax=ax, label=label_name, ticks=np.unique(labels) if len(np.unique(labels)) <= 20 else None)
    ax.set_title(title, fontsize=9)
    ax.set_xlabel("component 1")
    ax.set_ylabel("component 2")
    return _save(fig, path)


def loss_curves(history: list[dict], path) -> Path:
    """Train and validation loss (nats per example) against epochs."""
    fig, ax = _subplots(figsize=(5, 3.5))
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
    tmp.replace(path)
    return path


def _subplots(*grid, **settings):
    """``(figure, axes)`` as ``pyplot.subplots`` gives them, for a figure outside pyplot (matplotlib
    is imported here, at the first figure: 0.5 s that a command writing none does not pay)."""
    from matplotlib.figure import Figure

    figure_keys = {k: settings.pop(k) for k in ("figsize", "layout") if k in settings}
    fig = Figure(**figure_keys)
    return fig, fig.subplots(*grid, **settings)


def write_parallel(tasks: Iterable[Callable[[], Path | list[Path]]], workers: int = 4) -> list[Path]:
    """Run figure-writing callables (each returns the path, or paths, it wrote) in ``workers``
    threads and return every path in the order of ``tasks``; the first error is raised once all
    have finished. The threads overlap the PNG encoding (zlib, outside Python's GIL) and any torch
    work of the tasks; the matplotlib drawing itself takes turns under the GIL."""
    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = [pool.submit(task) for task in tasks]
    paths: list[Path] = []
    for future in futures:
        result = future.result()
        paths.extend(result if isinstance(result, list) else [result])
    return paths


def roc_curves(panels: dict, path) -> Path:
    """ROC curves, one panel per entry of ``panels``: title -> {label: (fpr, tpr)}, each a 1-D array.

    Labels starting with "vae" are drawn solid (the reconstruction probability thicker), others dashed.
    """
    fig, axes = _subplots(1, len(panels), figsize=(5.2 * len(panels), 4.6), squeeze=False)
    for ax, (title, curves) in zip(axes[0], panels.items()):
        for label, (fpr, tpr) in curves.items():
            ax.plot(
                fpr,
                tpr,
                label=label,
                lw=2 if label.startswith("vae: reconstruction_probability") else 1.2,
                ls="-" if label.startswith("vae") else "--",
            )
        ax.plot([0, 1], [0, 1], color="grey", ls=":", lw=1)
        ax.set(xlabel="false positive rate", ylabel="true positive rate", title=title, xlim=(0, 1), ylim=(0, 1.01))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="lower right")
    return _save(fig, path)


def traversal_figure(model, z: torch.Tensor, kl_per_dim, path, values=None) -> Path:
    """Latent traversals, one row per dimension sorted by decreasing KL (nats, labelled)."""
    values = np.linspace(-2.5, 2.5, 9) if values is None else values
    order = np.argsort(-np.asarray(kl_per_dim))
    images = explore.traverse(model, z, order, values)
    title = f"traversals z_d in [{values[0]:.1f}, {values[-1]:.1f}]; rows by KL: " + ", ".join(
        f"z{d} {kl_per_dim[d]:.2f}" for d in order
    )
    return save_image_grid(images.flatten(0, 1), path, ncols=len(values), title=title)


def kl_per_dim_bars(kl_per_dim, path) -> Path:
    """Bar chart of the KL of each latent dimension (nats per example), sorted decreasingly."""
    kl = np.asarray(kl_per_dim)
    order = np.argsort(-kl)
    fig, ax = _subplots(figsize=(max(3.0, 0.4 * len(kl)), 3))
    ax.bar(range(len(kl)), kl[order])
    ax.set_xticks(range(len(kl)), [f"z{d}" for d in order])
    ax.set_ylabel("KL(q(z_d|x) || p(z_d)) (nats)")
    ax.grid(alpha=0.3, axis="y")
    return _save(fig, path)


def factor_response(
    codes: np.ndarray, classes: np.ndarray, factor_names, factor_values, path, group: int = 0, dims=None
) -> Path:
    """Mean code of each latent against each factor, one line per class of factor ``group``
    (the shape, for dSprites): rows latents, columns the other factors (Higgins et al. 2017, fig. 7).

    Args:
        codes: ``(G, D)`` encoder means of every cell of the factor grid.
        classes: ``(G, K)`` factor classes of the cells.
        factor_names, factor_values: names and class values of the K factors.
        dims: latents to show (default all), e.g. sorted by KL.
    """
    dims = list(range(codes.shape[1])) if dims is None else list(dims)
    columns = [k for k in range(len(factor_names)) if k != group]
    fig, axes = _subplots(
        len(dims),
        len(columns),
        figsize=(2.2 * len(columns), 1.4 * len(dims)),
        squeeze=False,
        sharey="row",
        layout="constrained",
    )
    for j, k in enumerate(columns):
        size = len(factor_values[k])
        for g in range(len(factor_values[group])):
            rows = classes[:, group] == g
            counts = np.bincount(classes[rows, k], minlength=size)
            for i, d in enumerate(dims):
                mean = np.bincount(classes[rows, k], weights=codes[rows, d], minlength=size) / counts
                axes[i, j].plot(factor_values[k], mean, label=f"{factor_names[group]} {g}")
        axes[0, j].set_title(factor_names[k], fontsize=9)
    for i, d in enumerate(dims):
        axes[i, 0].set_ylabel(f"z{d}", fontsize=9)
    axes[0, -1].legend(fontsize=6)
    return _save(fig, path)
