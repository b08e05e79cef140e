"""Training: the accelerate loop, resumable (co-training) sampling, atomic checkpoints.

``train(model, dataset, collate, TrainConfig(...))`` is the entry point; see
:mod:`vlaworks.train.trainer` for launch commands (torchrun / accelerate) and exact resume.
"""

from vlaworks.train.config import TrainConfig, TrainResult
from vlaworks.train.sampler import MixedBatchSource
from vlaworks.train.trainer import train

__all__ = ["MixedBatchSource", "TrainConfig", "TrainResult", "train"]
