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

from pathlib import Path

from vlaworks.miniature import MINIATURE_PRETRAIN, MiniatureBudget, pretrain_vl_seed
from vlaworks.models.config import PartSpec, PolicyConfig

VLM_DIR = "vlm"


def pretrain_vlm(
    out: Path, budget: MiniatureBudget = MINIATURE_PRETRAIN, *, seed: int = 0, resume: bool = True
) -> Path:
    """Pretrain ``budget.backbone`` (registry name or folder) on ``budget.vl_samples``
    rendered VL samples for ``budget.steps`` steps, at the budget's image and patch size and
    views (the VL image goes to the first); returns the saved backbone folder ``out/vlm``.

    The samples are drawn from :func:`vlaworks.miniature.pretrain_vl_seed`, apart from the
    co-training recipes' default ``vl_seed`` (0), so VQA evaluations on those stay held out
    from pretraining.
    """
    from vlaworks.data.vl import VLDataset
    from vlaworks.models.policy import build_policy
    from vlaworks.processing import collate
    from vlaworks.train.config import TrainConfig
    from vlaworks.train.sampler import MixedBatchSource
    from vlaworks.train.trainer import train

    if budget.vl_samples < budget.batch_size:
        raise ValueError(
            "pretrain_vlm needs at least one batch of samples; "
            f"got {budget.vl_samples} < {budget.batch_size}."
        )
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    config = PolicyConfig(
        backbone=budget.backbone,
        head=PartSpec("token", {"tokenizer": "bins", "n_bins": 256}),  # unused: VL batches train the LM head
        chunk_size=1,
        backbone_options={"image_size": budget.image_size, "patch_size": budget.patch_size},
        cameras=budget.cameras,
        image_size=budget.image_size,
        use_state=False,
    )
    policy = build_policy(config)
    vl = VLDataset.generate(
        budget.vl_samples, pretrain_vl_seed(seed), render_size=budget.image_size,
        cache=out / "vl_pretrain.npz", cameras=budget.cameras, image_size=budget.image_size,
    )
    source = MixedBatchSource({"vl": (vl, collate)}, {"vl": 1.0}, budget.batch_size, seed=seed)
    cfg = TrainConfig(out_dir=out, **budget.train_overrides(seed))
    train(policy, source, None, cfg, resume=resume)
    folder = out / VLM_DIR
    policy.backbone.save_pretrained(str(folder))
    return folder
