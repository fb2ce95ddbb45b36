"""Training: the one loop (:func:`fit`), its hooks, run options (device, precision, threads) and
data-parallel helpers."""

from .hooks import Checkpoint, EpochLog, Progress
from .loop import Loop, TrainingDiverged, fit, validate
from ..options import RunOptions

__all__ = ["Checkpoint", "EpochLog", "Loop", "Progress", "RunOptions", "TrainingDiverged", "fit", "validate"]
