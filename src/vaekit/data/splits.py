"""The data a run sees, from its :class:`~vaekit.config.Config`: its dataset splits as the model
saw them in training (subset, scaled, binarized, validation split), and the condition of a
conditional model. The run folder itself (its scaler file included) is :mod:`vaekit.io`'s."""

from __future__ import annotations

import dataclasses

import torch

from .. import data
from ..config import Config
from .preprocess import EVAL_BINARIZE_SEED, binarize
from .scaling import Standardizer, wants_standardization


def data_options(config: Config) -> dict:
    """Loader options of a config (data_dir, path, label_column, image_size, grid_step)."""
    d = config.data
    options = {
        "data_dir": d.data_dir,
        "path": d.path,
        "label_column": d.label_column,
        "image_size": d.image_size,
        "grid_step": d.grid_step if d.grid_step > 1 else None,
    }
    return {k: v for k, v in options.items() if v is not None}


#: Seed of the fixed permutation that ``data.train_size`` takes its subset from (not the run's
#: seed: every seed of a sweep trains on the same examples).
SUBSET_SEED = 0


def load_dataset(config: Config, split: str) -> data.Dataset:
    """The config's dataset split, with the loader options the config holds; the training split
    is cut to ``data.train_size`` examples (the first of a fixed permutation) when that is set.

    Raises:
        ValueError: ``train_size`` is larger than the training split.
    """
    dataset = data.load(config.data.name, split=split, **data_options(config))
    size = config.data.train_size
    if split != "train" or size is None:
        return dataset
    if size > len(dataset):
        raise ValueError(
            f"--train-size {size} is larger than the {len(dataset)} training examples of "
            f"{config.data.name!r}; pass a smaller --train-size or leave it unset to use them all"
        )
    keep = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(SUBSET_SEED))[:size]
    keep = keep.sort().values
    if isinstance(dataset, data.Dataset):
        return dataset.subset(keep)
    return torch.utils.data.Subset(dataset, keep.tolist())


def fit_scaler(config: Config, train_set: data.Dataset) -> Standardizer | None:
    """The standardiser of a run, fitted on its whole training split, or None when
    ``data.standardize`` does not ask for one (see :func:`vaekit.data.scaling.wants_standardization`)."""
    if not wants_standardization(config.data.standardize, train_set.data_shape, config.model.likelihood):
        return None
    if not isinstance(train_set, data.Dataset):  # streamed from disk: no in-memory x to fit on
        if config.data.standardize == "yes":
            raise ValueError(
                f"--standardize yes needs the data in memory; --data {config.data.name} streams it "
                "from disk: standardise the file yourself, or pass --standardize no"
            )
        return None
    return Standardizer.fit(train_set.x)


def standardized(dataset: data.Dataset, scaler: Standardizer | None) -> data.Dataset:
    """``dataset`` with its features standardised by ``scaler`` (unchanged for None)."""
    if scaler is None:
        return dataset
    return dataclasses.replace(dataset, x=scaler.transform(dataset.x), unit_interval=False)


def prepare(x: torch.Tensor, config: Config, training: bool = False) -> torch.Tensor:
    """Data as the model of ``config`` sees it, for its resolved ``binarize`` mode (none, static,
    dynamic): evaluation data are binarized once with a fixed seed when static or dynamic; training
    data only when static (dynamic draws anew per batch, in the training loop)."""
    mode = config.binarize
    if mode == "none" or (training and mode == "dynamic"):
        return x
    return binarize(x, torch.Generator().manual_seed(EVAL_BINARIZE_SEED + (0 if training else 1)))


def split_validation(x: torch.Tensor, config: Config) -> tuple[torch.Tensor, torch.Tensor]:
    """Split ``x`` ``(N, ...)`` (the training split) into (train, validation) with
    ``data.val_fraction`` of N in validation, seeded by ``train.seed``."""
    n_val = int(round(config.data.val_fraction * len(x)))
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(config.train.seed))
    return x[order[n_val:]], x[order[:n_val]]


def examples(dataset, num_workers: int = 0) -> torch.Tensor:
    """All examples ``(N, *data_shape)`` of a dataset in memory; data read from disk on demand
    (e.g. ``image-folder``) are read with ``num_workers`` workers."""
    return dataset.x if isinstance(dataset, data.Dataset) else data.folder.materialize(dataset, num_workers)


def streamed_splits(train_set, config: Config, num_workers: int = 0):
    """(train, validation, test) of data read from disk on demand (e.g. ``--data image-folder``).

    The training part stays on disk and is streamed by :func:`vaekit.training.fit` through a
    DataLoader with ``num_workers`` workers; the validation part (``val_fraction``, seeded by
    ``seed``) and the test split are read into memory for evaluation.

    Raises:
        ValueError: ``binarize static``, which needs the whole training set in memory.
    """
    if config.binarize == "static":
        raise ValueError("--binarize static needs the data in memory; use dynamic or none for data read from disk")
    n_val = int(round(config.data.val_fraction * len(train_set)))
    order = torch.randperm(len(train_set), generator=torch.Generator().manual_seed(config.train.seed))
    val_x = data.folder.materialize(torch.utils.data.Subset(train_set, order[:n_val].tolist()), num_workers)
    train = torch.utils.data.Subset(train_set, order[n_val:].tolist())
    return train, prepare(val_x, config), prepare(examples(load_dataset(config, "test"), num_workers), config)


def resolve_condition(config: Config, dataset: data.Dataset) -> Config:
    """``config`` with ``condition_on`` set to the dataset's first label for a conditional model.

    Raises:
        ValueError: a conditional model on a dataset without labels, or an unknown label name.
    """
    if not config.model.entry.conditional:
        return config
    if not dataset.labels:
        raise ValueError(
            f"--model {config.model.name} needs labelled data; dataset {dataset.name!r} has no labels "
            "(for --data array pass --label-column)"
        )
    name = config.data.condition_on or next(iter(dataset.labels))
    if name not in dataset.labels:
        raise ValueError(
            f"--condition-on {name!r}: dataset {dataset.name!r} has the labels {', '.join(dataset.labels)}"
        )
    return config.replace(condition_on=name)


def class_count(labels: torch.Tensor, name: str | None = None) -> int:
    """K, the number of classes of a conditional model trained on ``labels`` ``(N,)``: class
    indices 0..K-1, so K = max + 1.

    K may not exceed the number of examples given: more classes than examples means most
    classes have none, i.e. the labels are ids or codes (e.g. 0 and 1e9), not class indices, and
    the one-hot condition would be K wide.

    Raises:
        ValueError: negative labels, fewer than 2 classes, or K > N (the message says how to recode).
    """
    what = f"label {name!r}" if name else "the labels"
    if not len(labels):
        raise ValueError(f"a conditional model needs labelled examples; {what} is empty")
    low, high = int(labels.min()), int(labels.max())
    recode = (
        "recode them as class indices 0..K-1 (e.g. numpy.unique(y, return_inverse=True)[1]) or store them "
        "as text, which vaekit recodes to 0..K-1"
    )
    if low < 0:
        raise ValueError(f"{what} of a conditional model must be class indices >= 0, got {low}; {recode}")
    if high + 1 > len(labels):
        raise ValueError(
            f"{what} of a conditional model run from {low} to {high} ({len(torch.unique(labels))} distinct "
            f"values in {len(labels)} examples): {high + 1} classes, more than there are examples; {recode}"
        )
    if high < 1:
        raise ValueError(f"{what} holds one class ({high}); a conditional model needs at least 2 classes")
    return high + 1


def condition_labels(config: Config, dataset: data.Dataset) -> torch.Tensor | None:
    """The class indices ``(N,)`` a conditional model is given for ``dataset``; None for other models.
    A config whose ``condition_on`` is resolved (:func:`resolve_condition`) is not resolved again."""
    if not config.model.entry.conditional:
        return None
    name = config.data.condition_on
    if name is None or name not in dataset.labels:
        name = resolve_condition(config, dataset).data.condition_on  # the default label, or the clear error
    return dataset.labels[name]


@dataclasses.dataclass(frozen=True)
class RunData:
    """Everything a run takes from its data, resolved once (:func:`run_data`).

    Attributes:
        config: the run's config with ``condition_on`` resolved (a conditional model's default label).
        scaler: the fitted standardiser, or None.
        train_set: the standardised training split (a :class:`~vaekit.data.Dataset`, or a dataset
            read from disk on demand).
        train_x, val_x, test_x: ``(N, *data_shape)`` as the model sees them (binarized per
            :func:`prepare`; ``train_x`` is a streamed dataset for data read from disk).
        test_images: ``test_x`` before binarization (the MSE is measured on them).
        train_c, val_c, test_c: a conditional model's class indices ``(N,)``, else None.
        test_labels: the test split's label columns (name -> ``(N,)``).
        num_classes: K of a conditional model, else None.
    """

    config: Config
    scaler: Standardizer | None
    train_set: object
    train_x: object
    val_x: torch.Tensor | None
    test_x: torch.Tensor
    test_images: torch.Tensor
    train_c: torch.Tensor | None
    val_c: torch.Tensor | None
    test_c: torch.Tensor | None
    test_labels: dict
    num_classes: int | None

    @property
    def data_shape(self) -> tuple:
        """The shape of one example."""
        return tuple(self.train_set.data_shape)  # type: ignore[attr-defined]

    @property
    def unit_interval(self) -> bool:
        """Whether the data (as the model sees them) lie in [0, 1]."""
        return bool(self.train_set.unit_interval)  # type: ignore[attr-defined]


def run_data(config: Config, num_workers: int = 0, check=None) -> RunData:
    """The data of a run in one call: its train and test splits loaded (``train_size`` subset),
    standardised (scaler fitted on the training split), the condition resolved and its labels, the
    validation split (``val_fraction``, seeded by ``train.seed``), each split as the model sees it
    (:func:`prepare`). Data read from disk on demand keep their training part on disk
    (:func:`streamed_splits`, read with ``num_workers`` workers). ``check`` (optional) is called
    with the in-memory training inputs ``(N, *data_shape)`` before they are binarized, e.g. the
    likelihood's support check, and raises on bad data.

    Raises:
        ValueError: as :func:`load_dataset`, :func:`fit_scaler`, :func:`resolve_condition`,
            :func:`class_count` and :func:`streamed_splits`; whatever ``check`` raises.
    """
    train_set, test_set = load_dataset(config, "train"), load_dataset(config, "test")
    scaler = fit_scaler(config, train_set)
    train_set, test_set = standardized(train_set, scaler), standardized(test_set, scaler)
    config = resolve_condition(config, train_set)
    train_c, test_c = condition_labels(config, train_set), condition_labels(config, test_set)
    num_classes = None
    if train_c is not None and test_c is not None:
        num_classes = class_count(torch.cat([train_c, test_c]), config.data.condition_on)
    val_c = None
    if train_c is not None:
        train_c, val_c = split_validation(train_c, config)
    if isinstance(train_set, data.Dataset):
        if check is not None:
            check(train_set.x)
        train_x, val_x = split_validation(prepare(train_set.x, config, training=True), config)
        val_x = prepare(val_x, config)  # dynamic: one fixed draw; static: already binary, unchanged
        test_x, test_images = prepare(test_set.x, config), test_set.x
    else:
        train_x, val_x, test_x = streamed_splits(train_set, config, num_workers)
        test_images = test_x if config.binarize == "none" else examples(test_set, num_workers)
    return RunData(
        config,
        scaler,
        train_set,
        train_x,
        val_x,
        test_x,
        test_images,
        train_c,
        val_c,
        test_c,
        test_set.labels,
        num_classes,
    )
