"""``pretrain_vlm``: vision-language pretraining of a backbone on tabletop VL samples.

Every seed paper starts from a VLM pretrained on web image-text data; the recipes' effects
(seed 003's "which VLM", seed 004's representation preservation by a frozen encoder copy
and co-training) are about keeping or using that knowledge. The miniature world's tiny
backbones are built with random weights, so this stage stands in for web pretraining:
next-token prediction of the answers of captioning, pointing, box and spatial-relation
questions (:mod:`vlaworks.sim.vl_data`) rendered from a wider appearance distribution
than the robot demonstrations (more colours, textures, lighting), through the same LM
head the token action heads use. The result is a backbone folder
(``Backbone.save_pretrained``) that any recipe takes as ``--backbone PATH``::

    OUT/vlm/                 the pretrained backbone (config, safetensors, tokenizer)
    OUT/metrics.csv          per-step loss
    OUT/checkpoints/         resumable trainer checkpoints
    OUT/vl_pretrain.npz      the rendered VL samples (reused on resume)
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from vlaworks.models.config import PartSpec, PolicyConfig

VLM_DIR = "vlm"


def pretrain_vlm(
    backbone: str,
    out: Path,
    *,
    samples: int = 8000,
    steps: int = 2000,
    batch_size: int = 32,
    lr: float = 5e-4,
    image_size: int = 64,
    patch_size: int = 8,
    cameras: Sequence[str] = ("base",),
    seed: int = 0,
    mixed_precision: str = "no",
    resume: bool = True,
) -> Path:
    """Pretrain ``backbone`` (registry name or folder) on ``samples`` rendered VL samples for
    ``steps`` steps; returns the saved backbone folder ``out/vlm``.

    ``samples`` are drawn with a seed disjoint from the co-training recipes' default
    (``vl_seed`` 0), so VQA evaluations on those stay held out from pretraining.
    """
    from vlaworks.data.vl import VLDataset
    from vlaworks.models.policy import build_policy
    from vlaworks.processing import collate
    from vlaworks.train.config import TrainConfig
    from vlaworks.train.pipeline import budget_overrides
    from vlaworks.train.sampler import MixedBatchSource
    from vlaworks.train.trainer import train

    if samples < batch_size:
        raise ValueError(f"pretrain_vlm needs at least one batch of samples; got {samples} < {batch_size}.")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    config = PolicyConfig(
        backbone=backbone,
        head=PartSpec("token", {"tokenizer": "bins", "n_bins": 256}),  # unused: VL batches train the LM head
        chunk_size=1,
        backbone_options={"image_size": image_size, "patch_size": patch_size},
        cameras=tuple(cameras),
        image_size=image_size,
        use_state=False,
    )
    policy = build_policy(config)
    vl = VLDataset.generate(
        samples, seed + 7919, render_size=image_size, cache=out / "vl_pretrain.npz",
        cameras=tuple(cameras), image_size=image_size,
    )
    source = MixedBatchSource({"vl": (vl, collate)}, {"vl": 1.0}, batch_size, seed=seed)
    budget = budget_overrides(steps, batch_size, lr, seed, mixed_precision=mixed_precision)
    cfg = TrainConfig(out_dir=out, **budget)
    train(policy, source, None, cfg, resume=resume)
    folder = out / VLM_DIR
    policy.backbone.save_pretrained(str(folder))
    return folder
