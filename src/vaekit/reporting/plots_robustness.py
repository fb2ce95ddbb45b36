"""Figures of the robustness benchmark: accuracy bars, accuracy-vs-ε curves, consistency iterates."""

from __future__ import annotations

import numpy as np
import torch

from .plots import _save, _subplots, image_grid


def accuracy_bars(table: dict[str, dict[str, float]], path, title: str = "") -> object:
    """Grouped bars: one group per column (e.g. "digit ε=0.1"), one bar per model (row).

    Args:
        table: model name -> column name -> accuracy in percent.
    """
    models = list(table)
    columns = list(next(iter(table.values())))
    width = 0.8 / max(1, len(models))
    fig, ax = _subplots(figsize=(max(6, 1.2 * len(columns)), 3.8))
    for i, model in enumerate(models):
        ax.bar(np.arange(len(columns)) + i * width, [table[model][c] for c in columns], width, label=model)
    ax.set_xticks(np.arange(len(columns)) + 0.4 - width / 2, columns, rotation=20)
    ax.set_ylabel("probe accuracy (%)")
    ax.set_ylim(0, 100)
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7, ncol=2)
    ax.grid(axis="y", alpha=0.3)
    return _save(fig, path)


def accuracy_curves(curves: dict[str, dict[str, float]], path, title: str = "") -> object:
    """Accuracy (percent) against ε, one line per model; ``curves``: model -> {str(ε): accuracy %}."""
    fig, ax = _subplots(figsize=(5, 3.5))
    for model, curve in curves.items():
        eps = [float(e) for e in curve]
        ax.plot(eps, list(curve.values()), marker="o", label=model)
    ax.set_xlabel("L∞ radius ε ([0, 1] pixels)")
    ax.set_ylabel("probe accuracy under PGD (%)")
    ax.set_ylim(0, 100)
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    return _save(fig, path)


def iterates_figure(iterates: dict[str, torch.Tensor], path, num_images: int = 6) -> object:
    """Side-by-side panels, one per model: rows are images, columns the iterates x_0 ... x_T.

    Args:
        iterates: model name -> ``(T + 1, N, C, H, W)`` from :func:`vaekit.evaluation.consistency.iterate`.
    """
    fig, axes = _subplots(1, len(iterates), figsize=(3.2 * len(iterates), 0.45 * num_images + 0.8))
    for ax, (name, its) in zip(np.atleast_1d(axes), iterates.items()):
        its = its[:, :num_images]  # (T+1, n, C, H, W) -> rows of images, columns of steps
        grid = image_grid(its.transpose(0, 1).reshape(-1, *its.shape[2:]), ncols=its.shape[0])
        ax.imshow(
            grid.squeeze(-1) if grid.shape[-1] == 1 else grid, cmap="gray", vmin=0, vmax=1, interpolation="nearest"
        )
        ax.set_title(f"{name}: x, g(μ(x)), ... (T={its.shape[0] - 1})", fontsize=8)
        ax.axis("off")
    return _save(fig, path)
