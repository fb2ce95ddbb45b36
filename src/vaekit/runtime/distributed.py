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
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch
import torch.distributed as dist

#: Seconds a collective waits for the other ranks before failing (default: torch's, 30 minutes for
#: gloo); set it low where a dead node must be noticed quickly.
TIMEOUT_ENV = "VAEKIT_DISTRIBUTED_TIMEOUT"
#: Bytes reserved for a string sent by :func:`broadcast_text`.
MAX_TEXT_BYTES = 4096


#: Depth of :func:`local` blocks: inside one, this process computes alone (a world of 1).
_local_depth = 0


def is_initialized() -> bool:
    """True inside an initialised process group (and outside a :func:`local` block)."""
    return _local_depth == 0 and dist.is_available() and dist.is_initialized()


@contextmanager
def local():
    """Within this block every helper here acts as in a single process (rank 0 of a world of 1),
    so library code that would share its work among the ranks (e.g. the log-likelihood) computes
    this rank's own part of a sharded test set alone (:func:`map_blocks`)."""
    global _local_depth
    _local_depth += 1
    try:
        yield
    finally:
        _local_depth -= 1


def _gather_rows(part: torch.Tensor, counts: list[int]) -> torch.Tensor:
    """Every rank's ``part`` (``counts[r]`` rows each, any trailing shape), concatenated in rank order."""
    widest = max(counts)
    padded = torch.zeros(widest, *part.shape[1:], dtype=part.dtype)
    padded[: len(part)] = part
    return torch.cat([piece[:n] for piece, n in zip(all_gather(padded), counts)])


def map_blocks(fn: Callable, x, block_size: int, seed: int | None = None):
    """``fn`` over the test set ``x`` in fixed blocks of ``block_size`` rows, the blocks split among
    the ranks of the process group and the results gathered: every rank returns all of them.

    This shards an evaluation at the level of the test set: block b (rows ``b*block_size`` onwards)
    is computed by one rank, inside :func:`local` (library code does not share it again), after
    ``torch.manual_seed(seed + b)`` when ``seed`` is given, so a block's result depends only on
    its rows and its index: any number of processes, one included, returns the same values (equal
    to one process running the same blocks). The blocks go to the ranks in contiguous runs of
    near-equal length (``tensor_split``).

    Args:
        fn: ``fn(xb) -> (len(xb), ...)`` tensor or NumPy array, per-row results of a block.
        x: ``(N, ...)`` tensor or NumPy array.
        block_size: rows per block (a multiple of any grouping ``fn`` makes, e.g. typicality's M).
        seed: seeds torch's global generator before each block (for ``fn`` that draws from it).

    Returns:
        ``(N, ...)`` results in row order: a float64 tensor, or a NumPy array when ``fn`` returns one.

    Raises:
        ValueError: ``block_size`` < 1.
    """
    import numpy as np

    if not isinstance(block_size, int) or block_size < 1:
        raise ValueError(f"block_size must be an integer >= 1, got {block_size!r}")
    n = len(x)
    blocks = list(range(0, n, block_size))
    world, me = world_size(), rank()
    mine = [blocks[i] for i in torch.arange(len(blocks)).tensor_split(world)[me].tolist()] if blocks else []
    outputs, as_numpy = [], False
    with local():
        for start in mine:
            if seed is not None:
                torch.manual_seed(seed + start // block_size)
            out = fn(x[start : start + block_size])
            as_numpy = as_numpy or isinstance(out, np.ndarray)
            outputs.append(
                torch.as_tensor(np.asarray(out) if isinstance(out, np.ndarray) else out.detach().cpu()).double()
            )
    part = torch.cat(outputs) if outputs else None
    if world == 1:
        result = part if part is not None else torch.zeros(0, dtype=torch.float64)
    else:
        counts = [min(n, b + block_size) - b for b in blocks]
        per_rank = [sum(counts[i] for i in chunk.tolist()) for chunk in torch.arange(len(blocks)).tensor_split(world)]
        tail = tuple(part.shape[1:]) if part is not None else ()
        # every rank must send one shape: agree on the trailing shape of a rank that computed a block
        shape = torch.tensor([float(part is not None), len(tail), *tail, *([0] * 8)][:10], dtype=torch.int64)
        shape = next(s for s in all_gather(shape) if s[0] == 1)
        tail = tuple(shape[2 : 2 + int(shape[1])].tolist())
        part = part if part is not None else torch.zeros(0, *tail, dtype=torch.float64)
        result = _gather_rows(part, per_rank)
    broadcast_flag = torch.tensor([float(as_numpy)])
    as_numpy = bool(all_reduce_sum(broadcast_flag).item() > 0)
    return result.numpy() if as_numpy else result


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
    # a rank whose peer died (a killed node) fails after this many seconds instead of torch's default
    timeout = os.environ.get(TIMEOUT_ENV)
    if timeout:
        import datetime

        dist.init_process_group(backend_for(device), timeout=datetime.timedelta(seconds=float(timeout)))
    else:
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
        buffer[8 : 8 + len(raw)] = torch.tensor(list(raw), dtype=torch.uint8)
    buffer = buffer.to(_collective_device())
    dist.broadcast(buffer, src)
    data = bytes(buffer.cpu().tolist())
    return data[8 : 8 + int.from_bytes(data[:8], "little")].decode()


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


def shard(
    order: torch.Tensor, batch_size: int, rank: int = 0, world_size: int = 1
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

    def __init__(
        self, num_examples: int, batch_size: int, generator: torch.Generator, rank: int = 0, world_size: int = 1
    ):
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
