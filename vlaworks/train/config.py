"""Training configuration and result records.

``TrainConfig`` is plain data (JSON round-trip via :meth:`TrainConfig.to_dict` /
:meth:`TrainConfig.from_dict`) so that a run folder records exactly how it was trained.
Batch sizes are *per process*: one optimizer step consumes
``batch_size * grad_accum * world_size`` samples.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

MixedPrecision = Literal["no", "bf16", "fp16"]
Distributed = Literal["ddp", "fsdp"]


def default_mixed_precision() -> MixedPrecision:
    """``"bf16"`` where it is fast (a CUDA GPU with bf16, or a CPU with native bf16 such as
    AVX512-BF16 / AMX), else ``"no"``: on a CPU without bf16 units autocast only adds casts."""
    import torch

    if torch.cuda.is_available():
        return "bf16" if torch.cuda.is_bf16_supported() else "no"
    try:
        native = bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        native = False
    return "bf16" if native else "no"


@dataclass
class TrainConfig:
    """Everything the training loop needs besides the model and the data."""

    out_dir: Path
    steps: int = 1000
    batch_size: int = 8
    lr: float = 1e-4
    weight_decay: float = 0.0
    adam_betas: tuple[float, float] = (0.9, 0.999)
    warmup_steps: int = 0
    grad_clip: float = 1.0
    grad_accum: int = 1
    save_every: int = 500
    keep_last: int = 2
    log_every: int = 10
    seed: int = 0
    num_workers: int = 0
    #: "no", "bf16", "fp16", or "auto" (resolved here by :func:`default_mixed_precision`, so the
    #: run folder records the precision the run actually used)
    mixed_precision: MixedPrecision | Literal["auto"] = "no"
    find_unused_parameters: bool = False
    #: multi-process strategy: ``"ddp"`` replicates the model on every process; ``"fsdp"`` shards
    #: the LM decoder layers (and the rest of the model as one root unit) across processes
    distributed: Distributed = "ddp"
    progress: bool = True
    tensorboard: bool = False
    #: torch's deterministic algorithms during training (bit-identical CPU runs for one seed)
    deterministic: bool = True
    #: decay of the exponential moving average of the weights that the run exports
    #: (:mod:`vlaworks.train.ema`, e.g. 0.999); 0 exports the last step's weights
    ema_decay: float = 0.0

    def __post_init__(self) -> None:
        self.out_dir = Path(self.out_dir)
        self._check_types()
        self.adam_betas = (float(self.adam_betas[0]), float(self.adam_betas[1]))
        positive = {"steps": self.steps, "batch_size": self.batch_size, "grad_accum": self.grad_accum,
                    "log_every": self.log_every, "keep_last": self.keep_last}
        for name, value in positive.items():
            if value < 1:
                raise ValueError(f"TrainConfig.{name} must be >= 1; got {value}.")
        non_negative = {"lr": self.lr, "weight_decay": self.weight_decay, "warmup_steps": self.warmup_steps,
                        "grad_clip": self.grad_clip, "save_every": self.save_every,
                        "num_workers": self.num_workers}
        for name, value in non_negative.items():
            if value < 0:
                raise ValueError(f"TrainConfig.{name} must be >= 0; got {value}.")
        if not 0.0 <= self.ema_decay < 1.0:
            raise ValueError(
                f"TrainConfig.ema_decay must be in [0, 1) (0 = no weight averaging, e.g. 0.999); got "
                f"{self.ema_decay}. Fix --set train.ema_decay=..."
            )
        if self.warmup_steps > self.steps:
            raise ValueError(
                f"TrainConfig.warmup_steps ({self.warmup_steps}) exceeds steps ({self.steps}); "
                "lower the warm-up or train longer."
            )
        if self.mixed_precision == "auto":
            self.mixed_precision = default_mixed_precision()
        if self.mixed_precision not in ("no", "bf16", "fp16"):
            raise ValueError(
                "TrainConfig.mixed_precision must be 'no', 'bf16', 'fp16' or 'auto'; "
                f"got {self.mixed_precision!r}."
            )
        if self.distributed not in ("ddp", "fsdp"):
            raise ValueError(
                f"TrainConfig.distributed must be 'ddp' or 'fsdp'; got {self.distributed!r}. "
                "Fix --set train.distributed=..."
            )

    def _check_types(self) -> None:
        """Numbers must be numbers (a ``--set train.steps=abc`` typo is an error, not a crash)."""
        kinds = {"int": (int, "an integer"), "float": ((int, float), "a number"),
                 "bool": (bool, "true or false")}
        for f in fields(self):
            value = getattr(self, f.name)
            if str(f.type) not in kinds:
                continue
            kind, words = kinds[str(f.type)]
            if isinstance(value, bool) != (kind is bool) or not isinstance(value, kind):
                raise ValueError(
                    f"TrainConfig.{f.name} must be {words}; got {value!r}. Fix the value given with "
                    f"--set train.{f.name}=..."
                )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (paths as strings)."""
        out = asdict(self)
        out["out_dir"] = str(self.out_dir)
        out["adam_betas"] = list(self.adam_betas)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        """Inverse of :meth:`to_dict`; unknown keys are an error so typos do not pass silently."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"Unknown TrainConfig keys {unknown}; valid keys are {sorted(known)}.")
        return cls(**data)


@dataclass
class TrainResult:
    """What :func:`vlaworks.train.trainer.train` returns.

    ``losses`` holds the globally averaged loss of every optimizer step run by *this*
    call (a resumed call starts after the checkpoint's step ``start_step``). A call that
    finds the run already finished runs no step: ``final_loss`` is then the checkpoint's
    last loss and ``samples_per_s`` is NaN.
    """

    final_loss: float
    steps: int
    samples_per_s: float
    last_checkpoint: Path | None
    run_dir: Path
    losses: list[float] = field(default_factory=list)
    start_step: int = 0
