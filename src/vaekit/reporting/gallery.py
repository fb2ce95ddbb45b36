"""The exploration figures of a run: latent scatter, manifold or principal grid, traversals,
interpolation, iterated reconstructions and (CVAE) one row per class. Written by ``vaekit train``
beside the loss curves, reconstructions and samples, and shown in ``report.html``."""

from __future__ import annotations

from pathlib import Path

import torch

from ..evaluation import explore
from . import plots

#: Figure file -> caption, in the order the report shows them (other PNGs follow, by name).
CAPTIONS = {
    "loss_curves.png": "Training and validation loss (negative objective, nats per example) per epoch.",
    "reconstructions.png": "Test inputs (odd rows) over their reconstructions g(μ(x)) (even rows).",
    "samples.png": "Decoder means of prior samples z ~ N(0, I).",
    "class_samples.png": "Conditional samples: one row per class, the same latent draws in every column "
    "(style held fixed, class varied).",
    "latent_manifold.png": "Decoded grid of Gaussian quantiles of the 2-D latent.",
    "principal_grid.png": "Decoded grid over the two principal directions of the test set's encoder means "
    "(±1.64 standard deviations).",
    "traversals.png": "Latent traversals around the code of a test input: one dimension per row, "
    "sorted by mean KL (most informative first).",
    "interpolation.png": "Interpolation between the codes of two test inputs, linear and spherical; "
    "the ends are their reconstructions.",
    "iterated.png": "Iterated encode-decode: x, g(μ(x)), g(μ(g(μ(x)))), … for test inputs.",
    "latent_scatter.png": "Encoder means of the test set, projected by PCA and coloured by label.",
}

#: Values a traversed dimension takes (prior standard deviations).
TRAVERSAL_VALUES = torch.linspace(-3, 3, 9)


def write_figures(
    model,
    test_x: torch.Tensor,
    run_dir,
    c: torch.Tensor | None = None,
    labels: dict[str, torch.Tensor] | None = None,
    max_dims: int = 10,
) -> list[Path]:
    """Write the exploration figures of ``model`` on the test set into ``run_dir``.

    Args:
        test_x: ``(N, *data_shape)`` test inputs as the model sees them.
        c: ``(N,)`` conditions (class indices) for a conditional model.
        labels: the dataset's labels (name -> ``(N,)``); the first colours the latent scatter.
        max_dims: at most this many dimensions are traversed.

    Returns:
        The paths written (image figures only for ``(C, H, W)`` data; the scatter for every dataset).
    """
    run_dir = Path(run_dir)
    model.eval()
    generator = torch.Generator().manual_seed(0)
    name, colour = next(iter((labels or {}).items()), (None, None))
    codes = explore.embed(model, test_x, c)
    title = f"encoder means of {len(codes)} test examples (PCA)"
    if model.conditional:
        title += "\nz given c: a CVAE's code holds style, the class is in c"
    tasks = [
        lambda: plots.latent_scatter(
            explore.project(codes, "pca"), colour, run_dir / "latent_scatter.png", title, name or "label"
        )
    ]
    if len(model.data_shape) != 3:
        return plots.write_parallel(tasks)
    if model.conditional:
        tasks.append(
            lambda: plots.image_rows(
                explore.class_grid(model, 10, generator=generator),
                run_dir / "class_samples.png",
                row_labels=[f"class {k}" for k in range(model.num_classes)],
                title="one row per class, the same z in each column",
            )
        )
    c0 = None if c is None else int(c[0])
    if model.latent_dim > 2 and len(test_x) >= 3:
        tasks.append(
            lambda: plots.save_image_grid(
                explore.manifold(model, test_x, 15, c=c0, labels=c),
                run_dir / "principal_grid.png",
                ncols=15,
                title="decoded grid over the 2 principal directions of the codes"
                + ("" if c0 is None else f" (class {c0})"),
            )
        )
    elif model.latent_dim == 2 and model.conditional:
        tasks.append(
            lambda: plots.save_image_grid(
                explore.manifold(model, n=15, c=c0),
                run_dir / "latent_manifold.png",
                ncols=15,
                title=f"decoded Gaussian quantiles of z (class {c0})",
            )
        )
    dims, scores = explore.kl_order(model, test_x, c)
    dims = dims[:max_dims]
    unit = "KL" if model.stochastic else "var"
    tasks.append(
        lambda: plots.image_rows(
            explore.traverse(model, codes[0], dims, TRAVERSAL_VALUES, c=c0),
            run_dir / "traversals.png",
            row_labels=[f"z{d} ({unit} {scores[d]:.2f})" for d in dims],
            col_labels=[f"{v:.1f}" for v in TRAVERSAL_VALUES.tolist()],
            title="latent traversals of test input 0",
        )
    )
    pair = _pair(colour if c is None else c, len(test_x))
    pc = None if c is None else c[pair]

    def interpolation() -> Path:
        strips = torch.stack([explore.interpolate(model, test_x[pair], 10, m, pc) for m in explore.INTERPOLATIONS])
        return plots.image_rows(
            strips,
            run_dir / "interpolation.png",
            row_labels=list(explore.INTERPOLATIONS),
            title=f"test inputs {_describe(pair[0], colour, name)} → {_describe(pair[1], colour, name)}",
        )

    def iterated() -> Path:
        n = min(8, len(test_x))
        steps = explore.iterate(model, test_x[:n], 6, None if c is None else c[:n]).transpose(0, 1)
        return plots.image_rows(
            steps,
            run_dir / "iterated.png",
            row_labels=[f"x{i}" for i in range(n)],
            col_labels=["x"] + [str(i) for i in range(1, steps.shape[1])],
            title="iterated encode-decode",
        )

    return plots.write_parallel(tasks + [interpolation, iterated])


def _pair(labels: torch.Tensor | None, n: int) -> torch.Tensor:
    """Indices of two test inputs: the first example and the first one with another label."""
    if labels is not None:
        other = (labels != labels[0]).nonzero()
        if len(other):
            return torch.tensor([0, int(other[0])])
    return torch.tensor([0, min(1, n - 1)])


def _describe(i: torch.Tensor, labels: torch.Tensor | None, name: str | None) -> str:
    """``"3 (digit 5)"``: a test index and its label when there is one."""
    return f"{int(i)}" if labels is None else f"{int(i)} ({name} {int(labels[i])})"


def disentanglement_figures(model, dataset, codes, kl_per_dim, folder) -> list[Path]:
    """The figures of ``vaekit evaluate disentanglement`` in ``folder``: latent traversals of one
    test image (rows sorted by KL), the KL per dimension bar chart, and the mean code of each
    latent against each factor, per shape (``codes``: ``(N, latent_dim)`` encoder means of the
    factor grid ``dataset``, :func:`vaekit.evaluation.disentanglement.grid_codes`). Returns the paths."""
    import numpy as np

    from ..data.factors import grid_classes

    folder = Path(folder)
    z = model.transform(dataset.x[:1].to(next(model.parameters()).device))[0]
    order = list(np.argsort(-np.asarray(kl_per_dim)))
    return [
        plots.traversal_figure(model, z, kl_per_dim, folder / "traversals.png"),
        plots.kl_per_dim_bars(kl_per_dim, folder / "kl_per_dim.png"),
        plots.factor_response(
            codes,
            grid_classes(dataset.factor_sizes),
            dataset.factor_names,
            dataset.factor_values,
            folder / "factor_response.png",
            dims=order,
        ),
    ]
