"""``vaekit reconstruct | manifold | interpolate | traverse | iterate | embed | report``: thin
handlers over :mod:`vaekit.evaluation.explore`, :mod:`vaekit.reporting.plots` and
:mod:`vaekit.reporting.report`, registered in :data:`vaekit.cli.COMMANDS`."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Annotated, Literal

import numpy as np
import torch
import tyro

from .. import io
from ..data import splits
from ..evaluation import explore
from ..reporting import plots, report
from ..runtime.files import save_npy, save_txt
from .common import COUNT, FIGURE_SIZE, NONNEGATIVE, OUTPUT, SEED, Checked, Output, Range
from .common import say as _print

Split = Literal["train", "test"]


def _data(run: str, model, split: str, index=None):
    """``(x, c, dataset)`` of a split as the model sees it, optionally at positions ``index``.

    Raises:
        ValueError: an index outside the split.
    """
    config = io.load_config(run)
    dataset = io.load_run_split(run, config, split)
    x = splits.prepare(dataset.x, config)
    c = splits.condition_labels(config, dataset)
    if index is not None:
        index = list(index)
        bad = [i for i in index if not -len(x) <= i < len(x)]
        if bad:
            raise ValueError(f"--index {bad} outside the {split} split of {len(x)} examples")
        x, c = x[index], (None if c is None else c[index])
        dataset = dataset.subset(torch.tensor(index) % len(dataset))
    return x, c, dataset


def _require_images(model, what: str) -> None:
    if len(model.data_shape) != 3:
        raise ValueError(f"{what} needs image data (C, H, W); this model's examples have shape {model.data_shape}")


def _out(output: str | None, run: str, default: str, suffixes=(".png", ".npy")) -> Path:
    """The file a command writes: ``--output`` (checked by :class:`~vaekit.cli.common.Output`) or ``RUN/default``.

    Raises:
        ValueError: a suffix other than ``suffixes``.
    """
    out = Path(output) if output else Path(run) / default
    if out.suffix not in suffixes:
        raise ValueError(f"--output must end in {' or '.join(suffixes)}, got {out.name}")
    return out


def save_rows(images: torch.Tensor, out: Path, **labels) -> None:
    """``(rows, cols, *data_shape)`` images to a labelled PNG, or the array to .npy."""
    if out.suffix == ".png" and images.dim() != 5:
        raise ValueError(
            f"a PNG needs image data (C, H, W); these examples have shape {tuple(images.shape[2:])}: "
            "use --output FILE.npy"
        )
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix == ".npy":
        save_npy(out, images.cpu().numpy())
    else:
        plots.image_rows(images, out, **labels)
    _print(f"written: {out}")


@dataclasses.dataclass(frozen=True)
class ReconstructArgs(Checked):
    """Reconstruct inputs of a run's dataset: inputs over decoder means g(mu(x)), as a PNG or .npy."""

    run: tyro.conf.Positional[str]
    """Run folder."""
    split: Split = "test"
    """Dataset split."""
    n: Annotated[int, COUNT] = 32
    """Number of inputs (the first n of the split)."""
    output: Annotated[str | None, OUTPUT] = None
    """.png or .npy (default RUN/reconstructions-<split>.png)."""
    overwrite: bool = False
    """Replace an existing --output file (without it an existing file is refused)."""


def reconstruct(args: ReconstructArgs) -> None:
    """``vaekit reconstruct RUN``."""
    model = io.load(args.run)
    x, c, _ = _data(args.run, model, args.split)
    x, c = x[: args.n], (None if c is None else c[: args.n])
    recon = explore.iterate(model, x, 1, c)[1]
    out = _out(args.output, args.run, f"reconstructions-{args.split}.png")
    if out.suffix == ".npy":
        save_npy(out, recon.cpu().numpy())
        _print(f"written: {out}")
        return
    _require_images(model, "a PNG of reconstructions")
    plots.reconstruction_grid(x, recon, out)
    _print(f"written: {out} ({len(x)} inputs over their reconstructions)")


@dataclasses.dataclass(frozen=True)
class ManifoldArgs(Checked):
    """Decode a latent grid: Gaussian quantiles for a 2-D latent, else the 2 principal directions of the encoded split."""

    run: tyro.conf.Positional[str]
    """Run folder."""
    n: Annotated[int, Range(1, 100)] = 15
    """Grid side."""
    split: Split = "test"
    """Split whose encoder means define the principal directions (latent_dim > 2)."""
    label: Annotated[int, NONNEGATIVE] = 0
    """Class to decode with (conditional models)."""
    output: Annotated[str | None, OUTPUT] = None
    """.png or .npy (default RUN/manifold.png)."""
    overwrite: bool = False
    """Replace an existing --output file (without it an existing file is refused)."""


def manifold(args: ManifoldArgs) -> None:
    """``vaekit manifold RUN``."""
    model = io.load(args.run)
    _require_images(model, "a manifold grid")
    x, c, _ = _data(args.run, model, args.split) if model.latent_dim > 2 else (None, None, None)
    images = explore.manifold(model, x, args.n, c=args.label if model.conditional else None, labels=c)
    save_rows(images.reshape(args.n, args.n, *images.shape[1:]), _out(args.output, args.run, "manifold.png"))


@dataclasses.dataclass(frozen=True)
class InterpolateArgs(Checked):
    """Interpolate between the codes of two inputs (dataset indices or image files), linear and/or spherical, decoded as strips."""

    run: tyro.conf.Positional[str]
    """Run folder."""
    index: tuple[int, int] = (0, 1)
    """Positions of the two inputs in --split."""
    images: tuple[str, str] | None = None
    """Two image files to use instead of --index (resized to the model's image size)."""
    labels: Annotated[tuple[int, int] | None, NONNEGATIVE] = None
    """Classes of the two image files (conditional models)."""
    split: Split = "test"
    """Dataset split for --index."""
    num_steps: Annotated[int, Range(2, 1000)] = 10
    """Images per strip, endpoints included."""
    method: tuple[Literal["linear", "spherical"], ...] = ("linear", "spherical")
    """Interpolations, one strip each."""
    output: Annotated[str | None, OUTPUT] = None
    """.png or .npy (default RUN/interpolation-<split>-<i>-<j>.png, or RUN/interpolation-images.png with --images)."""
    overwrite: bool = False
    """Replace an existing --output file (without it an existing file is refused)."""


def interpolate(args: InterpolateArgs) -> None:
    """``vaekit interpolate RUN``."""
    model = io.load(args.run)
    if args.images:
        x = torch.stack([explore.read_image(p, model.data_shape) for p in args.images])
        if model.conditional and args.labels is None:
            raise ValueError("a conditional model needs --labels A B with --images")
        c = torch.tensor(args.labels) if model.conditional else None
        names = list(args.images)
    else:
        x, c, _ = _data(args.run, model, args.split, args.index)
        names = [f"{args.split}[{i}]" for i in args.index]
    default = (
        "interpolation-images.png" if args.images else f"interpolation-{args.split}-{args.index[0]}-{args.index[1]}.png"
    )
    strips = torch.stack([explore.interpolate(model, x, args.num_steps, m, c) for m in args.method])
    save_rows(
        strips, _out(args.output, args.run, default), row_labels=list(args.method), title=f"{names[0]} → {names[1]}"
    )


@dataclasses.dataclass(frozen=True)
class TraverseArgs(Checked):
    """Latent traversals around the code of one input: one dimension per row, sorted by KL over the split."""

    run: tyro.conf.Positional[str]
    """Run folder."""
    index: int = 0
    """Position of the input in --split whose encoder mean is held fixed."""
    split: Split = "test"
    """Dataset split (also used to rank dimensions by mean KL)."""
    dims: Annotated[tuple[int, ...] | None, NONNEGATIVE] = None
    """Dimensions to vary (default: the --num-dims with the largest KL)."""
    num_dims: Annotated[int, COUNT] = 10
    """How many dimensions to show when --dims is not given."""
    num_values: Annotated[int, Range(2, 1000)] = 9
    """Values per dimension."""
    span: Annotated[float, Range(0, 1000, low_open=True)] = 3.0
    """The values run from -span to +span (prior standard deviations)."""
    output: Annotated[str | None, OUTPUT] = None
    """.png or .npy (default RUN/traversals-<index>.png)."""
    overwrite: bool = False
    """Replace an existing --output file (without it an existing file is refused)."""


def traverse(args: TraverseArgs) -> None:
    """``vaekit traverse RUN``."""
    if args.num_values < 2 or args.span <= 0:
        raise ValueError(f"--num-values must be >= 2 and --span > 0, got {args.num_values} and {args.span}")
    model = io.load(args.run)
    x, c, _ = _data(args.run, model, args.split)
    if not -len(x) <= args.index < len(x):
        raise ValueError(f"--index {args.index} outside the {args.split} split of {len(x)} examples")
    order, scores = explore.kl_order(model, x, c)
    dims = list(args.dims) if args.dims else order[: args.num_dims]
    values = torch.linspace(-args.span, args.span, args.num_values)
    z = explore.embed(model, x[args.index : args.index + 1], None if c is None else c[args.index : args.index + 1])[0]
    images = explore.traverse(model, z, dims, values, c=None if c is None else int(c[args.index]))
    unit = "KL" if model.stochastic else "var"
    save_rows(
        images,
        _out(args.output, args.run, f"traversals-{args.index}.png"),
        row_labels=[f"z{d} ({unit} {scores[d]:.2f})" for d in dims],
        col_labels=[f"{v:.1f}" for v in values.tolist()],
    )


@dataclasses.dataclass(frozen=True)
class IterateArgs(Checked):
    """Iterated encode-decode strips x, g(mu(x)), g(mu(g(mu(x)))), ... for inputs of a split."""

    run: tyro.conf.Positional[str]
    """Run folder."""
    index: Annotated[tuple[int, ...], Range()] = (0, 1, 2, 3, 4, 5, 6, 7)
    """Positions of the inputs in --split (one strip each)."""
    split: Split = "test"
    """Dataset split."""
    num_steps: Annotated[int, FIGURE_SIZE] = 6
    """Encode-decode steps after x."""
    output: Annotated[str | None, OUTPUT] = None
    """.png or .npy (default RUN/iterated-<split>.png)."""
    overwrite: bool = False
    """Replace an existing --output file (without it an existing file is refused)."""


def iterate(args: IterateArgs) -> None:
    """``vaekit iterate RUN``."""
    model = io.load(args.run)
    x, c, _ = _data(args.run, model, args.split, args.index)
    steps = explore.iterate(model, x, args.num_steps, c).transpose(0, 1)
    save_rows(
        steps,
        _out(args.output, args.run, f"iterated-{args.split}.png"),
        row_labels=[f"{args.split}[{i}]" for i in args.index],
        col_labels=["x"] + [str(i) for i in range(1, args.num_steps + 1)],
    )


@dataclasses.dataclass(frozen=True)
class EmbedArgs(Checked):
    """Encoder means of a split to .npy and .csv (with labels), and a 2-D scatter coloured by label (PCA or t-SNE)."""

    run: tyro.conf.Positional[str]
    """Run folder."""
    split: Split = "test"
    """Dataset split."""
    method: Literal["pca", "tsne"] = "pca"
    """2-D projection of the scatter."""
    output: Annotated[str | None, Output(suffixes=(".npy", ".csv", ".png"))] = None
    """Path prefix of the .npy, .csv and .png files (default RUN/embedding-<split>)."""
    overwrite: bool = False
    """Replace an existing --output file (without it an existing file is refused)."""
    seed: Annotated[int, SEED] = 0
    """Seed of the projection (t-SNE)."""


def embed(args: EmbedArgs) -> None:
    """``vaekit embed RUN``."""
    model = io.load(args.run)
    x, c, dataset = _data(args.run, model, args.split)
    codes = explore.embed(model, x, c).numpy()
    prefix = Path(args.output) if args.output else Path(args.run) / f"embedding-{args.split}"
    prefix.parent.mkdir(parents=True, exist_ok=True)
    label_names = list(dataset.labels)
    save_npy(prefix.with_name(prefix.name + ".npy"), codes)
    columns = [codes] + [dataset.labels[k].numpy()[:, None] for k in label_names]
    header = ",".join([f"z{d}" for d in range(codes.shape[1])] + label_names)
    fmt = ["%.6g"] * codes.shape[1] + ["%d"] * len(label_names)
    save_txt(
        prefix.with_name(prefix.name + ".csv"), np.hstack(columns), delimiter=",", header=header, comments="", fmt=fmt
    )
    colour = dataset.labels[label_names[0]].numpy() if label_names else None
    points = explore.project(codes, args.method, args.seed)
    plots.latent_scatter(
        points,
        colour,
        prefix.with_name(prefix.name + ".png"),
        f"encoder means of {len(codes)} {args.split} examples ({args.method})",
        label_names[0] if label_names else "label",
    )
    _print(f"written: {prefix}.npy ({codes.shape[0]} x {codes.shape[1]} codes), {prefix}.csv, {prefix}.png")


@dataclasses.dataclass(frozen=True)
class ReportArgs(Checked):
    """(Re)build a run's self-contained report.html, or with several runs a comparison page."""

    runs: tyro.conf.Positional[tuple[str, ...]]
    """One run folder, or several to compare."""
    output: Annotated[str | None, Output(allow=(report.REPORT,))] = None
    """HTML file (default RUN/report.html, or <parent of the first run>/comparison.html)."""
    overwrite: bool = False
    """Replace an existing --output file (without it an existing file is refused)."""


def report_runs(args: ReportArgs) -> None:
    """``vaekit report RUN [RUN ...]``."""
    if len(args.runs) == 1:
        out = report.write_report(args.runs[0], args.output)
    else:
        out = report.write_comparison(args.runs, args.output or report.default_comparison_path(args.runs))
    _print(f"written: {out}")
