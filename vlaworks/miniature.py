"""The miniature world's budget and seed streams, in one place.

:data:`MINIATURE` is what ``vlaworks demo`` trains and evaluates with, and the default of
``vlaworks compare`` (every recipe of a comparison gets the same budget); the CLI's
defaults for those commands and for ``vlaworks pretrain`` read it
(:data:`MINIATURE_PRETRAIN`). Its numbers are the demo's measured defaults
(BENCHMARKS.md): changing one changes the demo's result.

Seed streams. Every random draw of the tabletop world belongs to one named stream, and
streams must never overlap: evaluation episodes that replay a training layout measure
memorisation instead of the policy; VQA / probe scenes drawn from the pretraining or
co-training stream measure recall of training images; a perturbation whose draw shifted
when another family is switched on would confound the two. Two mechanisms keep them apart:

* **stream keys**: a generator ``np.random.default_rng([seed, KEY])`` is independent of
  one with another ``KEY`` for the same ``seed`` (numpy's SeedSequence hashes the pair), so
  one episode seed drives the layout, the expert's noise and each perturbation family
  independently;
* **seed offsets**: where one stream serves two roles (episode reset seeds, VL scenes),
  the roles take seeds from ranges that small user seeds cannot reach into each other.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

#: "auto" picks bf16 where the machine has native bf16 (:func:`vlaworks.train.config.default_mixed_precision`)
MIXED_PRECISION = ("auto", "no", "bf16", "fp16")


@dataclass(frozen=True)
class MiniatureBudget:
    """Model size, training budget and evaluation settings of the miniature world."""

    backbone: str = "prismatic-tiny"
    cameras: tuple[str, ...] = ("base", "wrist")
    image_size: int = 64
    patch_size: int = 8
    #: k x k patches per LM token (prismatic patch merger): 4x fewer image tokens
    token_merge: int = 2
    #: training-time random shift in pixels (0: off)
    shift: int = 4
    attn_implementation: str | None = "eager"
    chunk: int = 8
    steps: int = 6000
    batch_size: int = 32
    lr: float = 5e-4
    #: "auto": bf16 autocast where the CPU / GPU has native bf16, else fp32
    mixed_precision: str = "auto"
    #: resumable trainer checkpoints over the run
    checkpoints: int = 5
    #: rendered vision-language samples (VL pretraining)
    vl_samples: int = 8000
    eval_episodes: int = 10
    #: ACT temporal ensembling (BENCHMARKS.md: 86.7 % vs 83.3 % for "full" on a 6000-step policy)
    chunk_exec: str = "ensemble"
    #: envs stepped in lockstep per evaluation worker (one batched prediction for all)
    envs_per_worker: int = 5

    def __post_init__(self) -> None:
        if self.mixed_precision not in MIXED_PRECISION:
            raise ValueError(
                f"mixed_precision must be one of {', '.join(MIXED_PRECISION)}; got {self.mixed_precision!r}."
            )

    def policy_overrides(self, backbone: str | None = None) -> dict[str, Any]:
        """Recipe overrides for the policy's views, image size, chunk length and training-time
        random shift, and the backbone's token grid and attention kernel (nested keys, so a
        recipe's other backbone options such as ``dual_encoder`` survive). The backbone
        settings go only to the families that have them (``backbone``, default the budget's):
        ``token_merge`` is Prismatic's patch merger, the CNN trunk has no patches or attention;
        a backbone folder keeps the architecture it was saved with (image and patch grid,
        merge), so it only gets the attention kernel."""
        from vlaworks.models.backbones import option_names

        overrides: dict[str, Any] = {
            "policy.cameras": list(self.cameras),
            "policy.image_size": self.image_size,
            "policy.chunk_size": self.chunk,
            "policy.augment.shift": self.shift,
        }
        backbone = backbone or self.backbone
        wanted: dict[str, Any] = {}
        if not Path(backbone).is_dir():
            wanted = {"image_size": self.image_size, "patch_size": self.patch_size}
            if self.token_merge != 1:
                wanted["token_merge"] = self.token_merge
        if self.attn_implementation is not None:
            wanted["attn_implementation"] = self.attn_implementation
        takes = option_names(backbone)
        overrides.update({f"policy.backbone_options.{k}": v for k, v in wanted.items() if k in takes})
        return overrides

    def train_overrides(self, seed: int, **extra: Any) -> dict[str, Any]:
        """Trainer overrides for this budget: warm-up over 10 % of the steps (at most 200),
        weight decay 0.01, ``checkpoints`` resumable checkpoints over the run, mixed precision
        with ``"auto"`` resolved for this machine; ``extra`` trainer keys are added."""
        from vlaworks.train.config import default_mixed_precision

        precision = default_mixed_precision() if self.mixed_precision == "auto" else self.mixed_precision
        return {
            "steps": self.steps,
            "batch_size": self.batch_size,
            "lr": self.lr,
            "warmup_steps": min(200, self.steps // 10),
            "weight_decay": 0.01,
            "save_every": max(1, self.steps // self.checkpoints),
            "seed": seed,
            "mixed_precision": precision,
            **extra,
        }


#: the demo's budget and every recipe's in ``vlaworks compare``
MINIATURE = MiniatureBudget()
#: VL pretraining (``vlaworks pretrain``): the VL image goes to one view, 2000 steps
MINIATURE_PRETRAIN = replace(MINIATURE, cameras=("base",), steps=2000)

# ----------------------------------------------------------------------------- stream keys
#: the scripted expert's action noise, keyed on the episode seed
EXPERT_NOISE_STREAM = 7919
#: perturbation family ``i`` (``sim.perturb.FAMILIES[i]``) draws from key ``PERTURB_STREAM + i``
PERTURB_STREAM = 1000
#: vision-language scenes (pretraining, co-training, VQA questions)
VL_SCENE_STREAM = 424242
#: linear-probe scenes (object masks), apart from every VL scene
PROBE_SCENE_STREAM = 717171
#: the grounding benchmark's scenes (``vlaworks.eval.grounding``), apart from every VL scene
GROUNDING_SCENE_STREAM = 535353

# ----------------------------------------------------------------------------- seed offsets
#: demonstration reset seeds start at ``GENERATE_SEED_OFFSET * (seed + 1)`` ...
GENERATE_SEED_OFFSET = 1_000_000
#: ... and each suite's attempts at its own stride within that block
GENERATE_SUITE_STRIDE = 100_000
#: a run's evaluation episodes use base seed ``seed + EVAL_SEED_OFFSET``
EVAL_SEED_OFFSET = 10_000
#: VL pretraining renders its scenes from seed ``seed + PRETRAIN_VL_SEED_OFFSET``
PRETRAIN_VL_SEED_OFFSET = 7919
#: the held-out VQA questions' seed (``vlaworks.eval.vqa``), far above every training seed
VQA_HELD_OUT_SEED = 900_001
#: the grounding benchmark's seed (on its own stream, so apart from VL training at any seed)
GROUNDING_HELD_OUT_SEED = 900_002
#: the geometry teacher's frames (``vlaworks geometry-teacher``) reset from seeds above 2^40
TEACHER_SEED_OFFSET = 1 << 40


def generation_seed(seed: int, suite_index: int, attempt: int) -> int:
    """Reset seed of demonstration ``attempt`` of suite ``suite_index`` in a dataset generated
    with ``seed``: one block of :data:`GENERATE_SEED_OFFSET` per dataset seed, one stride per
    suite, all above the small seeds users and evaluation bases take, so two suites or two
    dataset seeds never share a layout. ``attempt`` must stay below
    :data:`GENERATE_SUITE_STRIDE` (else it reaches the next suite's seeds)."""
    return GENERATE_SEED_OFFSET * (seed + 1) + GENERATE_SUITE_STRIDE * suite_index + attempt


def eval_seed(seed: int) -> int:
    """Base seed of the held-out evaluation episodes of a run seeded ``seed`` (demo, compare).
    Episode reset seeds hash (base, task, episode) (:func:`vlaworks.eval.rollout.episode_seed`);
    the offset keeps the base apart from the run's own seed, which data and training use."""
    return seed + EVAL_SEED_OFFSET


def pretrain_vl_seed(seed: int) -> int:
    """Seed of the VL samples pretraining renders: apart from the co-training recipes' small
    ``vl_seed`` (default 0) and from the held-out VQA seed (:data:`VQA_HELD_OUT_SEED`), so
    VQA evaluations stay held out from pretraining."""
    return seed + PRETRAIN_VL_SEED_OFFSET


def probe_seeds(seed: int) -> tuple[int, int]:
    """Seeds of the linear probe's training and test scenes: ``2 * seed`` and ``2 * seed + 1``,
    disjoint for every ``seed``."""
    return 2 * seed, 2 * seed + 1


def teacher_seed(seed: int, heldout: bool, suite_index: int, episode: int) -> int:
    """Reset seed of the geometry teacher's ``episode`` of suite ``suite_index`` (training or
    held-out) for teacher seed ``seed``: above :data:`TEACHER_SEED_OFFSET`, far from every
    demonstration, evaluation and VL seed (all below 2^32), with one block per teacher seed
    and role."""
    return TEACHER_SEED_OFFSET + ((2 * seed + int(heldout)) << 24) + (suite_index << 16) + episode
