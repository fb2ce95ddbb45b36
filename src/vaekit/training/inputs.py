"""The data :func:`vaekit.training.fit` is given, checked and converted at its entry, before
anything trains (clear errors that name the argument)."""

from __future__ import annotations

import torch


def as_examples(name: str, x, model):
    """The examples ``x`` given to :func:`fit` as ``name``, checked and converted at the entry,
    before anything trains: a NumPy array becomes a tensor; integer, boolean and float64 values
    become float32 (the model's dtype); a Dataset or DataLoader passes unchanged.

    Raises:
        TypeError: ``x`` is not an array, a tensor, a Dataset or a DataLoader, or holds no numbers.
        ValueError: an axis of size 0, examples of another shape than ``model.data_shape``, or
            values beyond float32's range; each message names ``name``.
    """
    import numpy as np

    if x is None or isinstance(x, (torch.utils.data.Dataset, torch.utils.data.DataLoader)):
        return x
    if isinstance(x, np.ndarray):
        if not (np.issubdtype(x.dtype, np.number) or x.dtype == np.bool_):
            raise TypeError(
                f"{name} must hold numbers, got a NumPy array of dtype {x.dtype}; convert it, e.g. "
                f"{name}.astype(np.float32)"
            )
        x = torch.from_numpy(np.ascontiguousarray(x))
    if not torch.is_tensor(x):
        raise TypeError(
            f"{name} must be a tensor or NumPy array of shape (N, *data_shape), a Dataset or a "
            f"DataLoader, got {type(x).__name__}"
        )
    if x.is_complex():
        raise TypeError(f"{name} holds complex numbers ({x.dtype}); pass real values")
    if 0 in x.shape or x.dim() < 2:
        raise ValueError(
            f"{name} has shape {tuple(x.shape)}; expected (N, *data_shape) with N >= 1 examples and "
            f"no axis of size 0" + (f", here (N, {', '.join(map(str, model.data_shape))})" if model.data_shape else "")
        )
    if model.data_shape is not None and tuple(x.shape[1:]) != tuple(model.data_shape):
        raise ValueError(
            f"{name} has examples of shape {tuple(x.shape[1:])} but the model was built for "
            f"{tuple(model.data_shape)}; pass {name} of shape (N, {', '.join(map(str, model.data_shape))})"
        )
    dtype = next(model.parameters()).dtype
    if x.dtype != dtype:
        converted = x.to(dtype)
        if x.is_floating_point() and not torch.isfinite(converted).all() and torch.isfinite(x).all():
            raise ValueError(
                f"{name} holds values beyond {dtype}'s range (|x| > {torch.finfo(dtype).max:.3g}); rescale them first"
            )
        x = converted
    return x


def as_labels(name: str, labels, x):
    """Class indices ``labels`` given to :func:`fit` as ``name``: a NumPy array or tensor of
    integers, one per example of ``x``, as an int64 tensor (None stays None).

    Raises:
        TypeError: labels that are not integers.
        ValueError: not one label per example.
    """
    import numpy as np

    if labels is None:
        return None
    if isinstance(labels, np.ndarray):
        labels = torch.from_numpy(np.ascontiguousarray(labels))
    if not torch.is_tensor(labels) or labels.is_floating_point() or labels.is_complex() or labels.dtype == torch.bool:
        raise TypeError(
            f"{name} must be integer class indices 0..K-1 (a tensor or array of ints), got "
            f"{getattr(labels, 'dtype', type(labels).__name__)}"
        )
    if torch.is_tensor(x) and labels.shape != (len(x),):
        raise ValueError(f"{name} has shape {tuple(labels.shape)}; expected one class index per example, ({len(x)},)")
    return labels.long()
