"""How a run computes: :class:`RunOptions` (device, precision, compilation, loaders, threads), beside
the configs of :mod:`vaekit.config` and, like them, free of torch."""

from __future__ import annotations

import dataclasses
from typing import Literal

from . import config
from .registry import PRECISION_NAMES


@dataclasses.dataclass(frozen=True)
class RunOptions:
    """Device and speed settings of a training run (flags of ``vaekit train``).

    These are *run options*, not model configuration: they do not change the model or its
    objective, so they are kept out of :class:`Config` and ``config.json``. A model trained on a GPU
    in bf16 loads and evaluates on a CPU; a run interrupted on one machine resumes on another with
    other options. ``summary.json`` records the options a run used; :mod:`vaekit.runtime` applies them.
    """

    device: Literal["auto", "cpu", "cuda"] = "auto"
    """Device to train on; auto = CUDA when available (cuda:LOCAL_RANK under torchrun), else CPU."""
    precision: Literal["32", "bf16", "16-mixed"] = "32"
    """32 = float32; bf16 = bfloat16 autocast; 16-mixed = float16 autocast with a gradient scaler. Losses and log-densities stay float32."""
    compile: bool = False
    """Compile the training step with torch.compile."""
    channels_last: bool | None = None
    """Store conv nets' weights and image batches channels-last; default (auto; None in the API): on for a conv net trained on the CPU (its convolutions ran 1.03-1.17x faster so: benchmarks/channels_last.py), off elsewhere."""
    num_workers: int = 0
    """DataLoader worker processes for data read from disk (0 = load in the main process)."""
    threads: int | None = None
    """Torch intra-op CPU threads; default: OMP_NUM_THREADS when set, else chosen from the model's FLOPs per step (1 below 0.1 GFLOP, else one per idle core, fewer if the steps slow down later)."""

    def __post_init__(self):
        if not config._DEFERRED:
            self._validate()

    def _validate(self) -> None:
        """Raise ValueError for an invalid option (see :func:`vaekit.config.validate`)."""
        if self.precision not in PRECISION_NAMES:
            raise ValueError(f"precision must be one of {', '.join(PRECISION_NAMES)}, got {self.precision!r}")
        if self.device not in ("auto", "cpu", "cuda"):
            raise ValueError(f"device must be auto, cpu or cuda, got {self.device!r}")
        if self.channels_last is not None and not isinstance(self.channels_last, bool):
            raise ValueError(f"channels_last must be true, false or unset, got {self.channels_last!r}")
        if not isinstance(self.num_workers, int) or self.num_workers < 0:
            raise ValueError(f"num_workers must be an integer >= 0, got {self.num_workers!r}")
        if self.threads is not None and (
            not isinstance(self.threads, int) or isinstance(self.threads, bool) or self.threads < 1
        ):
            raise ValueError(
                f"threads must be an integer >= 1 (or unset for the automatic choice), got {self.threads!r}"
            )

    def to_dict(self) -> dict:
        """JSON-ready dict of every field."""
        return dataclasses.asdict(self)
