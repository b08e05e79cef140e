"""The training loop: accelerate, AdamW + warm-up/cosine, clipping, accumulation, an
optional EMA of the weights (:mod:`vlaworks.train.ema`), atomic checkpoints and exact resume.

The model is any ``nn.Module`` whose ``forward(batch) -> (loss, metrics)`` takes a
:class:`vlaworks.batch.Batch`; parameters with ``requires_grad=False`` are not trained.
Data is a torch ``Dataset`` plus a collate function returning a ``Batch``, or a
:class:`~vlaworks.train.sampler.MixedBatchSource` for co-training (then ``collate`` is
``None``).

Exact resume: the data order is a function of ``(seed, epoch)`` with a saved position,
the RNG states of every process are saved, DataLoader creation does not touch the
global RNG, and the metrics of steps not yet written to ``metrics.csv`` travel in the
checkpoint, so ``train(steps=N)`` and ``train(steps=N)`` killed at a checkpoint then
``train(..., resume=True)`` in a fresh process produce the same per-step losses, weights
and ``metrics.csv`` rows (same world size, same hardware; see
``tests/train/test_trainer.py`` and ``tests/test_reliability.py``). With
``cfg.deterministic`` (the default) torch's deterministic algorithms are on during
training, so on a CPU the same seed gives bit-identical runs. A damaged latest
checkpoint falls back to the previous intact one (:func:`~vlaworks.train.checkpoint.load_latest`).

Launching (one code path for all):

* CPU / one GPU: ``python -m vlaworks.cli train ...`` or a Python call to :func:`train`.
* Several GPUs on one node (DDP):
  ``torchrun --standalone --nproc_per_node 8 -m vlaworks.cli train ...`` or
  ``accelerate launch --multi_gpu --num_processes 8 -m vlaworks.cli train ...``.
* Several nodes: ``torchrun --nnodes N --node_rank R --rdzv_endpoint HOST:PORT
  --nproc_per_node 8 -m vlaworks.cli train ...``.
* CPU, two processes (gloo), as the tests do:
  ``torchrun --standalone --nproc_per_node 2 -m vlaworks.train.smoke --out RUN``
  (``accelerate launch --cpu --num_processes 2`` starts only one process on CPU).

With ``mixed_precision="bf16"`` the forward runs under bf16 autocast (GPU, or a CPU with
native bf16 units; on other CPUs it runs ~10x slower than fp32 and the trainer says so);
parameters and optimizer state stay fp32. Models that read hidden
states without using every parameter (e.g. an LM whose ``lm_head`` is unused, or
co-training where VL batches skip the action head) need
``find_unused_parameters=True`` under DDP.

``cfg.distributed="fsdp"`` shards instead of replicating (accelerate's FSDP2 plugin): each
LM decoder layer is one shard unit, found by class from the transformers LM's
``_no_split_modules`` (:func:`lm_layer_classes`); everything else (vision encoder, head,
embeddings) is the root unit. Checkpoints gather a full state dict on rank 0, so their
``model.safetensors`` has the DDP layout and loads with ``load_policy`` in any process.
Launch it like DDP (``torchrun ...``); on CPU (gloo) accelerate would fall back to DDP
without a word, so the trainer points its state at FSDP itself. Resuming an FSDP run is
not supported yet (its optimizer state is saved in full, keyed by parameter name).
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path

import torch
from accelerate import Accelerator, DistributedDataParallelKwargs, FullyShardedDataParallelPlugin
from accelerate.state import AcceleratorState
from accelerate.utils import DistributedType, set_seed
from torch import nn
from torch.utils.data import Dataset
from tqdm.auto import tqdm

from vlaworks.allocator import tune_malloc
from vlaworks.train.checkpoint import (
    is_sharded,
    latest_checkpoint,
    load_latest,
    remove_stale_temps,
    save_checkpoint,
)
from vlaworks.train.config import TrainConfig, TrainResult, default_mixed_precision
from vlaworks.train.ema import WeightEma
from vlaworks.train.metrics import MetricsCsv
from vlaworks.train.optim import build_optimizer, build_scheduler
from vlaworks.train.sampler import Collate, MixedBatchSource, batch_stream

logger = logging.getLogger(__name__)
#: bf16 autocast on a CPU without bf16 units (measured on an AVX2-only EPYC: a bf16 matmul
#: 9-18x slower than fp32; a string-token recipe at 0.7 instead of 13.7 samples/s)
SLOW_BF16 = (
    "mixed_precision='bf16' on a CPU without native bf16 (AVX512-BF16 / AMX): autocast runs about "
    "10x slower than fp32 here. Use mixed_precision='no' (the miniature budget's 'auto' picks it)."
)


def train(
    model: nn.Module,
    dataset: Dataset | MixedBatchSource,
    collate: Collate | None,
    cfg: TrainConfig,
    *,
    extra_save: Callable[[Path], None] | None = None,
    resume: bool = False,
) -> TrainResult:
    """Train ``model`` for ``cfg.steps`` optimizer steps; write ``cfg.out_dir`` (metrics.csv,
    train_config.json, checkpoints/). With ``resume=True`` continue from
    ``checkpoints/latest`` when it exists (otherwise start fresh). Keeps freed tensor memory
    in the process (:func:`vlaworks.allocator.tune_malloc`) before the first step."""
    tune_malloc()
    with deterministic_algorithms(cfg.deterministic):
        return _train(model, dataset, collate, cfg, extra_save=extra_save, resume=resume)


@contextmanager
def deterministic_algorithms(enabled: bool) -> Iterator[None]:
    """Use torch's deterministic kernels (where it has them; others only warn) inside the block."""
    before = (torch.are_deterministic_algorithms_enabled(),
              torch.is_deterministic_algorithms_warn_only_enabled())
    cudnn = torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark
    if enabled:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # cuBLAS needs it to be deterministic
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = True, False
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(before[0], warn_only=before[1])
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = cudnn


def _train(
    model: nn.Module,
    dataset: Dataset | MixedBatchSource,
    collate: Collate | None,
    cfg: TrainConfig,
    *,
    extra_save: Callable[[Path], None] | None,
    resume: bool,
) -> TrainResult:
    run_dir = cfg.out_dir
    ckpt_root = run_dir / "checkpoints"
    # The accelerator state is a process-wide singleton; every train() call is its own stage
    # and may pick another precision, so drop the previous stage's settings (the process
    # group, kept in PartialState, is reused).
    AcceleratorState._reset_state(reset_partial_state=False)
    accelerator = _accelerator(model, cfg)
    set_seed(cfg.seed)
    source = _as_source(dataset, collate, cfg)
    source.shard(accelerator.process_index, accelerator.num_processes)

    optimizer = build_optimizer(model, cfg.lr, cfg.weight_decay, cfg.adam_betas)
    scheduler = build_scheduler(optimizer, cfg.warmup_steps, cfg.steps)
    model, optimizer = accelerator.prepare(model, optimizer)
    if cfg.ema_decay and is_sharded(model):
        raise ValueError("train.ema_decay with distributed='fsdp' is not supported yet; train with 'ddp'.")
    ema = WeightEma(accelerator.unwrap_model(model), cfg.ema_decay) if cfg.ema_decay else None

    start_step = 0
    last_ckpt: Path | None = None
    state: dict | None = None
    if resume and is_sharded(model) and latest_checkpoint(ckpt_root) is not None:
        raise ValueError(
            f"Resuming an FSDP run ({ckpt_root}) is not supported yet; pass --fresh, or train with "
            "distributed='ddp'."
        )
    if resume:
        if accelerator.is_main_process:
            remove_stale_temps(ckpt_root)
        accelerator.wait_for_everyone()
        last_ckpt, state = load_latest(accelerator, ckpt_root, model, optimizer, scheduler, ema)
        if state is not None:
            source.load_state_dict(state["sampler"])
            start_step = int(state["step"])
    if start_step > cfg.steps:
        raise ValueError(
            f"Checkpoint {last_ckpt} is at step {start_step}, beyond --steps {cfg.steps}; "
            "raise --steps, or pass --fresh to start again."
        )

    log = _Logger(accelerator, cfg, run_dir, start_step, (state or {}).get("log_window"))
    stream = batch_stream(source, num_workers=cfg.num_workers)
    samples_per_step = cfg.batch_size * cfg.grad_accum * accelerator.num_processes
    losses: list[float] = []
    total_time = 0.0

    for step in range(start_step + 1, cfg.steps + 1):
        t0 = time.perf_counter()
        model.train()
        loss_sum = torch.zeros((), device=accelerator.device)
        metric_sums: dict[str, float] = defaultdict(float)
        metric_counts: dict[str, int] = defaultdict(int)
        for micro in range(cfg.grad_accum):
            name, batch = next(stream)
            planned, _ = source.next_plan()  # the consumed-state copy that checkpoints save
            if planned != name:
                raise RuntimeError(f"Sampler desynchronised: loaded {name!r}, planned {planned!r}.")
            batch = batch.to(accelerator.device)
            sync = nullcontext() if micro == cfg.grad_accum - 1 else accelerator.no_sync(model)
            with sync:
                loss, metrics = model(batch)
                accelerator.backward(loss / cfg.grad_accum)
            loss_sum += loss.detach().float()
            for k, v in metrics.items():
                metric_sums[k] += float(v)
                metric_counts[k] += 1
        step_loss = float(accelerator.reduce(loss_sum / cfg.grad_accum, reduction="mean"))
        if not math.isfinite(step_loss):
            raise FloatingPointError(
                f"Non-finite loss {step_loss} at step {step}; lower lr, check the data normalisation, "
                "or enable grad_clip. The last checkpoint is untouched."
            )
        if cfg.grad_clip > 0:
            grad_norm = accelerator.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            metric_sums["grad_norm"] = float(grad_norm)
            metric_counts["grad_norm"] = 1
        lr = scheduler.get_last_lr()[0]
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        if ema is not None:
            ema.update()
        losses.append(step_loss)
        elapsed = time.perf_counter() - t0
        total_time += elapsed
        log.step(step, step_loss, lr, samples_per_step, elapsed,
                 {k: metric_sums[k] / metric_counts[k] for k in metric_sums})

        if cfg.save_every and (step % cfg.save_every == 0 or step == cfg.steps):
            trainer_state = {"sampler": source.state_dict(), "samples_seen": step * samples_per_step,
                             "epochs": {n: source.epoch(n) for n in source.names}, "loss": step_loss,
                             "log_window": log.state_dict()}
            last_ckpt = save_checkpoint(
                accelerator, ckpt_root, step, model, optimizer, scheduler, trainer_state,
                keep_last=cfg.keep_last, extra_save=extra_save, ema=ema,
            )
    log.close()
    if ema is not None:  # the run's policy is the average (the checkpoints keep both)
        ema.copy_to_model()
    ran = len(losses)
    return TrainResult(
        final_loss=losses[-1] if losses else float((state or {}).get("loss", math.nan)),
        steps=cfg.steps,
        samples_per_s=ran * samples_per_step / total_time if total_time > 0 else math.nan,
        last_checkpoint=last_ckpt,
        run_dir=run_dir,
        losses=losses,
        start_step=start_step,
    )


def _accelerator(model: nn.Module, cfg: TrainConfig) -> Accelerator:
    """The run's accelerator: DDP, or FSDP over the LM decoder layers (see the module docstring)."""
    on_cpu = not torch.cuda.is_available()
    if cfg.mixed_precision == "bf16" and on_cpu and default_mixed_precision() != "bf16":
        logger.warning(SLOW_BF16)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    fsdp = cfg.distributed == "fsdp" and world > 1
    plugin = FullyShardedDataParallelPlugin(
        fsdp_version=2,
        auto_wrap_policy="transformer_based_wrap",
        transformer_cls_names_to_wrap=lm_layer_classes(model),
        state_dict_type="FULL_STATE_DICT",
        cpu_ram_efficient_loading=False,
    ) if fsdp else None
    accelerator = Accelerator(
        # accelerate only picks its gloo CPU backend under torchrun when told cpu=True.
        cpu=on_cpu and world > 1,
        mixed_precision=cfg.mixed_precision,
        fsdp_plugin=plugin,
        kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=cfg.find_unused_parameters)],
    )
    if plugin is not None and accelerator.distributed_type == DistributedType.MULTI_CPU:
        # accelerate routes a CPU process group to DDP even with an FSDP plugin; torch's FSDP2
        # itself runs on gloo, so select it the way accelerate does on GPUs.
        if cfg.mixed_precision != "no":
            plugin.set_mixed_precision(cfg.mixed_precision)
        accelerator.state.distributed_type = DistributedType.FSDP
        accelerator.state.fsdp_plugin = plugin
    return accelerator


def lm_layer_classes(model: nn.Module) -> list[str]:
    """Class names of ``model``'s LM decoder layers, FSDP's shard units: the classes that its
    transformers sub-models declare in ``_no_split_modules``, except those found only inside
    a backbone's vision encoder (SigLIP / DINOv2 layers stay in the root unit)."""
    from transformers import PreTrainedModel

    from vlaworks.models.backbones.base import Backbone

    declared = {name for m in model.modules() if isinstance(m, PreTrainedModel)
                for name in (m._no_split_modules or [])}
    vision = {id(m) for b in model.modules() if isinstance(b, Backbone)
              for root in b.vision_modules() for m in root.modules()}
    found = sorted({type(m).__name__ for m in model.modules()
                    if id(m) not in vision and type(m).__name__ in declared})
    if not found:
        raise ValueError(
            f"distributed='fsdp' found no LM decoder layer class (transformers _no_split_modules) in "
            f"{type(model).__name__}; train it with distributed='ddp'."
        )
    return found


def _as_source(
    dataset: Dataset | MixedBatchSource, collate: Collate | None, cfg: TrainConfig
) -> MixedBatchSource:
    if isinstance(dataset, MixedBatchSource):
        if collate is not None:
            raise ValueError("Pass collate=None with a MixedBatchSource; each source has its own collate.")
        if dataset.batch_size != cfg.batch_size:
            raise ValueError(
                f"MixedBatchSource batch_size {dataset.batch_size} differs from cfg.batch_size "
                f"{cfg.batch_size}; make them equal."
            )
        return dataset
    if collate is None:
        raise ValueError("A plain Dataset needs a collate function returning a vlaworks.batch.Batch.")
    return MixedBatchSource({"data": (dataset, collate)}, {"data": 1.0}, cfg.batch_size, seed=cfg.seed)


class _Logger:
    """Progress bar, metrics.csv and optional TensorBoard on the main process."""

    def __init__(self, accelerator: Accelerator, cfg: TrainConfig, run_dir: Path, start_step: int,
                 window: dict | None = None) -> None:
        self.main = accelerator.is_main_process
        self.every = cfg.log_every
        self.window: dict[str, list[float]] = defaultdict(list, (window or {}).get("values", {}))
        self.window_samples = int((window or {}).get("samples", 0))
        self.window_time = float((window or {}).get("seconds", 0.0))
        self.csv: MetricsCsv | None = None
        self.tb = None
        self.bar = None
        if not self.main:
            return
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "train_config.json").write_text(json.dumps(cfg.to_dict(), indent=2))
        self.csv = MetricsCsv(run_dir / "metrics.csv", keep_until_step=start_step if start_step else None)
        if cfg.tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError as err:
                raise ImportError(
                    "TrainConfig.tensorboard=True needs the tensorboard package: pip install tensorboard, "
                    "or set tensorboard=False (metrics.csv is always written)."
                ) from err
            self.tb = SummaryWriter(str(run_dir / "tensorboard"), purge_step=start_step + 1)
        self.bar = tqdm(total=cfg.steps, initial=start_step, disable=not cfg.progress, desc="train",
                        dynamic_ncols=True)

    def step(self, step: int, loss: float, lr: float, samples: int, seconds: float,
             metrics: dict[str, float]) -> None:
        if not self.main:
            return
        self.window["loss"].append(loss)
        for k, v in metrics.items():
            self.window[k].append(v)
        self.window_samples += samples
        self.window_time += seconds
        sps = samples / seconds if seconds > 0 else 0.0
        self.bar.set_postfix(loss=f"{loss:.4f}", samples_s=f"{sps:.1f}")  # type: ignore[union-attr]
        self.bar.update(1)  # type: ignore[union-attr]
        if step % self.every:
            return
        row: dict[str, float | int] = {
            "step": step,
            "loss": _mean(self.window.pop("loss")),
            "lr": lr,
            "samples_per_s": self.window_samples / self.window_time if self.window_time > 0 else 0.0,
        }
        row.update({k: _mean(v) for k, v in self.window.items()})
        self.csv.log(row)  # type: ignore[union-attr]
        if self.tb is not None:
            for k, v in row.items():
                if k != "step":
                    self.tb.add_scalar(f"train/{k}", v, step)
        self.window.clear()
        self.window_samples = 0
        self.window_time = 0.0

    def state_dict(self) -> dict:
        """The per-step values since the last CSV row; a resumed run averages them into its
        next row, so the row equals the uninterrupted run's."""
        return {"values": {k: list(v) for k, v in self.window.items()}, "samples": self.window_samples,
                "seconds": self.window_time}

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        if self.tb is not None:
            self.tb.close()


def _mean(values: list[float]) -> float:
    return sum(values) / len(values)
