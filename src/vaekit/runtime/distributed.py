"""Data-parallel training across processes with ``torch.distributed``, as launched by torchrun.

``torchrun --nproc_per_node N -m vaekit train ...`` starts N processes with the environment
variables ``RANK``, ``LOCAL_RANK``, ``WORLD_SIZE``, ``MASTER_ADDR`` and ``MASTER_PORT``;
:func:`process_group` reads them and joins the group (gloo on CPU, NCCL on GPU). Outside torchrun
every helper here is a no-op for a single process (rank 0 of a world of 1), so the one training
loop in :mod:`vaekit.training.loop` serves both.

Semantics (the same as PyTorch's DistributedDataParallel with a global batch): every epoch, one
permutation of the training set, drawn from the generator every rank seeds identically, is cut
into *global* batches of ``batch_size × world_size`` examples; rank r trains on the r-th of
``world_size`` near-equal parts of each global batch. The shards of an epoch are disjoint and
cover it, and since DDP averages gradients over ranks (each rank's loss weighted by its share of
the global batch, see :func:`shard`), one step equals a single-process step with batch size
``batch_size × world_size`` on the same examples.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from typing import Callable, Iterator

import torch
import torch.distributed as dist

#: Bytes reserved for a string sent by :func:`broadcast_text`.
MAX_TEXT_BYTES = 4096


def is_initialized() -> bool:
    """True inside an initialised process group."""
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    """This process's global rank (0 outside a process group)."""
    return dist.get_rank() if is_initialized() else 0


def world_size() -> int:
    """Number of processes in the group (1 outside a process group)."""
    return dist.get_world_size() if is_initialized() else 1


def local_rank() -> int:
    """This process's rank on its node, from torchrun's ``LOCAL_RANK`` (0 when not launched by it)."""
    return int(os.environ.get("LOCAL_RANK", 0))


def is_main() -> bool:
    """True on rank 0, the only process that writes files and logs."""
    return rank() == 0


def launched() -> bool:
    """True when torchrun (or a compatible launcher) started this process in a world of > 1."""
    return int(os.environ.get("WORLD_SIZE", 1)) > 1 and "RANK" in os.environ


def backend_for(device: torch.device) -> str:
    """NCCL for CUDA devices, gloo otherwise."""
    return "nccl" if torch.device(device).type == "cuda" else "gloo"


@contextmanager
def process_group(device: torch.device | str = "cpu"):
    """Join the process group torchrun describes in the environment, and leave it on exit (all ranks
    together, after a barrier, when the body finished without an error).

    A no-op when the process was not launched by torchrun with ``WORLD_SIZE > 1`` or when a group
    is already initialised (e.g. by the caller). The backend is NCCL for a CUDA ``device``, gloo
    otherwise.

    Raises:
        ValueError: torchrun's variables are incomplete (names the missing ones).
    """
    if not launched() or is_initialized():
        yield
        return
    missing = [k for k in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT") if k not in os.environ]
    if missing:
        raise ValueError(f"distributed launch without {', '.join(missing)} in the environment; launch with torchrun")
    device = torch.device(device)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    dist.init_process_group(backend_for(device))
    finished = False
    try:
        yield
        finished = True
    finally:
        if finished:
            # leave together: rank 0 still writes the run folder after the others return, and a rank
            # that tears its gloo group down meanwhile can abort (SIGABRT) on the way out
            dist.barrier()
        dist.destroy_process_group()


def _collective_device() -> torch.device:
    """The device collectives run on: the current CUDA device for NCCL, the CPU for gloo."""
    if is_initialized() and dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def all_reduce_sum(t: torch.Tensor) -> torch.Tensor:
    """The element-wise sum of ``t`` over all ranks (``t`` itself in a single process).

    Returns a new tensor on ``t``'s device; ``t`` is not modified.
    """
    if not is_initialized():
        return t
    buffer = t.detach().to(_collective_device(), copy=True)
    dist.all_reduce(buffer, op=dist.ReduceOp.SUM)
    return buffer.to(t.device)


def all_gather(t: torch.Tensor) -> list[torch.Tensor]:
    """``t`` of every rank, in rank order (``[t]`` in a single process); all must have one shape."""
    if not is_initialized():
        return [t]
    buffer = t.detach().to(_collective_device())
    out = [torch.empty_like(buffer) for _ in range(world_size())]
    dist.all_gather(out, buffer)
    return [o.to(t.device) for o in out]


def barrier() -> None:
    """Wait until every rank gets here (no-op in a single process)."""
    if is_initialized():
        dist.barrier()


def broadcast_text(text: str | None, src: int = 0) -> str:
    """The string ``text`` of rank ``src`` on every rank (UTF-8, at most :data:`MAX_TEXT_BYTES`).

    Sent as a uint8 tensor, never pickled. In a single process returns ``text``.
    """
    if not is_initialized():
        return text
    buffer = torch.zeros(MAX_TEXT_BYTES + 8, dtype=torch.uint8)
    if rank() == src:
        raw = text.encode()
        if len(raw) > MAX_TEXT_BYTES:
            raise ValueError(f"broadcast_text sends at most {MAX_TEXT_BYTES} bytes, got {len(raw)}")
        buffer[:8] = torch.tensor(list(len(raw).to_bytes(8, "little")), dtype=torch.uint8)
        buffer[8:8 + len(raw)] = torch.tensor(list(raw), dtype=torch.uint8)
    buffer = buffer.to(_collective_device())
    dist.broadcast(buffer, src)
    data = bytes(buffer.cpu().tolist())
    return data[8:8 + int.from_bytes(data[:8], "little")].decode()


def on_main(fn: Callable, *args, **kwargs):
    """Run ``fn`` on rank 0 only and tell every rank whether it succeeded.

    Returns ``fn``'s result on rank 0 and None elsewhere. When ``fn`` raises on rank 0 the error
    is re-raised there and the other ranks raise RuntimeError instead of waiting forever.
    """
    result, error = None, None
    if is_main():
        try:
            result = fn(*args, **kwargs)
        except Exception as e:  # re-raised below, after the others have been told
            error = e
    failed = all_reduce_sum(torch.tensor([float(error is not None)]))
    if error is not None:
        raise error
    if failed.item() > 0:
        raise RuntimeError("rank 0 failed (see its error message); this rank stops too")
    return result


def shard(order: torch.Tensor, batch_size: int, rank: int = 0, world_size: int = 1
          ) -> Iterator[tuple[torch.Tensor, int]]:
    """This rank's part of each global batch of an epoch.

    Args:
        order: ``(N,)`` the epoch's permutation of example positions, identical on every rank.
        batch_size: examples per rank per step; a global batch holds ``batch_size * world_size``.
        rank, world_size: this process's rank and the number of processes.

    Yields:
        ``(index, global_size)``: the positions this rank trains on in one step (a slice of
        ``order``), and the size of the global batch it belongs to. The parts of a global batch
        differ in size by at most one; a last global batch smaller than ``world_size`` is merged
        into the one before, so no rank ever gets an empty part. A rank weights its mean loss by
        ``len(index) * world_size / global_size`` so that DDP's average over ranks is the mean
        over the global batch. With ``world_size = 1`` this is plain batching of ``order``.

    Raises:
        ValueError: fewer examples than processes, or a bad rank.
    """
    n, step = len(order), batch_size * world_size
    if not 0 <= rank < world_size:
        raise ValueError(f"rank must be in [0, {world_size}), got {rank}")
    if n < world_size:
        raise ValueError(f"{n} training examples cannot be shared by {world_size} processes")
    starts = list(range(0, n, step))
    if len(starts) > 1 and n - starts[-1] < world_size:
        starts.pop()
    for i, start in enumerate(starts):
        stop = starts[i + 1] if i + 1 < len(starts) else n
        part = order[start:stop] if world_size == 1 else order[start:stop].tensor_split(world_size)[rank]
        yield part, stop - start


class ShardBatchSampler(torch.utils.data.Sampler):
    """Batch sampler of a DataLoader with :func:`shard`'s batches of a fresh permutation per epoch.

    Each pass draws the permutation from ``generator`` (identically seeded on every rank),
    so it consumes the generator exactly as the in-memory path of :func:`vaekit.training.fit` does;
    ``global_sizes`` then lists the global batch size of each step of that epoch.
    """

    def __init__(self, num_examples: int, batch_size: int, generator: torch.Generator,
                 rank: int = 0, world_size: int = 1):
        self.num_examples, self.batch_size = num_examples, batch_size
        self.generator, self.rank, self.world_size = generator, rank, world_size
        self.global_sizes: list[int] = []

    def __iter__(self):
        # A generator: the permutation is drawn at the first batch, not when the iterator is made
        # (a DataLoader with persistent workers makes, and drops, one iterator more at the start).
        order = torch.randperm(self.num_examples, generator=self.generator)
        batches = list(shard(order, self.batch_size, self.rank, self.world_size))
        self.global_sizes = [size for _, size in batches]
        for index, _ in batches:
            yield index.tolist()

    def __len__(self) -> int:
        return len(list(shard(torch.arange(self.num_examples), self.batch_size, self.rank, self.world_size)))

