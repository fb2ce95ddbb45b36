"""Training: the one loop (:func:`fit`), its hooks, run options (device, precision, threads) and
data-parallel helpers."""

from ..options import RunOptions
from .hooks import Checkpoint, EpochLog, Progress
from .loop import TrainingDiverged, TrainState, fit, validate

__all__ = ["Checkpoint", "EpochLog", "Progress", "RunOptions", "TrainState", "TrainingDiverged", "fit", "validate"]
