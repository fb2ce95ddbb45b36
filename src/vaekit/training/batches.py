"""How :func:`vaekit.training.fit` batches its data: a shuffled index sliced per global batch (this
rank's shard under torchrun), or a DataLoader that batches a map-style dataset the same way."""

from __future__ import annotations

import torch

from ..options import RunOptions
from ..runtime import distributed


def _batches(
    train,
    batch_size: int,
    generator: torch.Generator,
    labels: torch.Tensor | None = None,
    conditional: bool = False,
    rank: int = 0,
    world_size: int = 1,
):
    """``(x, c, global batch size)`` triples. A tensor (and its labels) is batched by slicing a
    shuffled index (this rank's shard of it, :func:`vaekit.distributed.shard`); a DataLoader's
    batches come as they are (c = the batch's second entry for a conditional model, else None)."""
    if torch.is_tensor(train):
        # the permutation goes to the data's device once per epoch, not once per batch
        order = torch.randperm(len(train), generator=generator).to(train.device)
        for index, global_size in distributed.shard(order, batch_size, rank, world_size):
            c = None if labels is None else labels[index.to(labels.device)]
            yield train[index], c, global_size
    else:
        sizes = None
        for i, batch in enumerate(train):
            sizes = getattr(train.batch_sampler, "global_sizes", None) if i == 0 else sizes
            pair = isinstance(batch, (tuple, list))
            xb = batch[0] if pair else batch
            yield xb, (batch[1] if pair and conditional else None), sizes[i] if sizes else len(xb) * world_size


def data_loader(
    dataset, batch_size: int, generator: torch.Generator, options: RunOptions, device: torch.device
) -> torch.utils.data.DataLoader:
    """A DataLoader of a map-style ``dataset`` (e.g. images read from disk) that batches exactly as
    :func:`fit` batches a tensor: a permutation per epoch from ``generator``, this rank's shard of
    every global batch, ``options.num_workers`` worker processes, pinned memory on CUDA."""
    sampler = distributed.ShardBatchSampler(
        len(dataset), batch_size, generator, distributed.rank(), distributed.world_size()
    )
    return torch.utils.data.DataLoader(
        dataset,
        batch_sampler=sampler,
        num_workers=options.num_workers,
        pin_memory=device.type == "cuda",
        persistent_workers=options.num_workers > 0,
        # worker seeds from their own generator: the global RNG (the
        # noise of the objective) advances as with a tensor
        generator=torch.Generator().manual_seed(distributed.rank()),
    )
