"""Vision-language pretraining of a tiny VLM (PokeVLM, seed 001 stage 1), and its cache.

Every seed paper starts from a VLM pretrained on web and embodied image-text data; the
recipes' effects (seed 001's PokeVLM pretraining, seed 003's "which VLM", seed 004's
representation preservation) are about keeping or using that knowledge. The miniature
world's tiny backbones are built with random weights, so this stage stands in for that
pretraining: next-token prediction of the answers of rendered tabletop questions in
PokeVLM's four categories (:mod:`vlaworks.sim.vl_data`: general, grounding, affordance,
embodied reasoning, mixed by :attr:`PretrainSettings.mix`), through the same LM head the
token action heads use. :func:`pretrain_vlm` trains into a run folder::

    OUT/vlm/                    the pretrained backbone (config, safetensors, tokenizer)
    OUT/pretrain_settings.json  the settings it was trained with
    OUT/grounding.json|.md      the grounding benchmark before (the random init) and after
    OUT/metrics.csv             per-step loss
    OUT/checkpoints/            resumable trainer checkpoints
    OUT/align/                  the alignment stage's run (``align_steps > 0``)
    OUT/vl_pretrain.npz         the rendered VL samples (reused on resume)

:func:`pretrained_vlm` is the cache: it pretrains once per :meth:`PretrainSettings.key`
(a hash of every setting, the resolved precision and the VL data version) into
``$VLAWORKS_VLM_CACHE/<key>`` (default ``~/.cache/vlaworks/vlm/<key>``) and returns the
backbone folder; the same settings asked again reuse it. Training runs in
``<key>.partial`` under a file lock (a killed run resumes there, a concurrent caller waits)
and is renamed to ``<key>`` when complete, so a cache entry is always whole. Its checkpoints
and rendered samples are dropped then. Recipes start from it with ``--vlm pretrained``
(:func:`resolve_vlm`).

``align_steps > 0`` adds LLaVA's first stage before the joint one: that many steps train only
the vision side (towers, projector, patch merger) with the language model frozen, so the
answer loss can only fall through the image tokens. It targets a measured failure of joint
training from a random init: the LM fits the answers' text prior first and then ignores the
image (BENCHMARKS.md, "Why pointing stays at the floor").
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from vlaworks.miniature import MINIATURE_PRETRAIN, MiniatureBudget, pretrain_vl_seed
from vlaworks.models.config import PartSpec, PolicyConfig
from vlaworks.sim.vl_data import DEFAULT_MIX, VL_DATA_VERSION, check_mix, format_mix

VLM_DIR = "vlm"
ALIGN_DIR = "align"
SETTINGS_FILE = "pretrain_settings.json"
GROUNDING_FILE = "grounding.json"
CACHE_ENV = "VLAWORKS_VLM_CACHE"
#: held-out grounding questions asked before and after pretraining (about 100 per kind)
GROUNDING_QUESTIONS = 500
#: ``--vlm`` choices: the registry backbone's random init, or the cached pretrained VLM
VLM_CHOICES = ("random", "pretrained")
BATCHING = ("kind", "mixed")


@dataclass(frozen=True)
class PretrainSettings:
    """Everything a pretrained VLM depends on; :meth:`key` hashes it."""

    backbone: str = MINIATURE_PRETRAIN.backbone
    #: the VL image goes to the first view, the others are black
    cameras: tuple[str, ...] = MINIATURE_PRETRAIN.cameras
    image_size: int = MINIATURE_PRETRAIN.image_size
    patch_size: int = MINIATURE_PRETRAIN.patch_size
    token_merge: int = MINIATURE_PRETRAIN.token_merge
    attn_implementation: str | None = MINIATURE_PRETRAIN.attn_implementation
    #: rendered VL samples
    samples: int = MINIATURE_PRETRAIN.vl_samples
    steps: int = MINIATURE_PRETRAIN.steps
    batch_size: int = MINIATURE_PRETRAIN.batch_size
    lr: float = MINIATURE_PRETRAIN.lr
    mixed_precision: str = MINIATURE_PRETRAIN.mixed_precision
    #: weight per category of :data:`vlaworks.sim.vl_data.CATEGORIES` (0 drops one)
    mix: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_MIX))
    #: ``"kind"``: every batch holds one kind of question (short answers are not padded to the
    #: longest caption's length); ``"mixed"``: batches drawn across kinds
    batching: str = "kind"
    #: steps of a first stage that trains only the vision side, the LM frozen (0: none)
    align_steps: int = 0
    seed: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "mix", check_mix(self.mix))
        object.__setattr__(self, "cameras", tuple(self.cameras))
        if self.batching not in BATCHING:
            raise ValueError(f"batching must be one of {', '.join(BATCHING)}; got {self.batching!r}.")
        if self.align_steps < 0:
            raise ValueError(f"align_steps must be >= 0; got {self.align_steps}.")
        if self.samples < self.batch_size:
            raise ValueError(
                f"Pretraining needs at least one batch of samples; got {self.samples} < {self.batch_size}."
            )

    @classmethod
    def for_budget(
        cls, budget: MiniatureBudget, backbone: str | None = None, **changes: Any
    ) -> PretrainSettings:
        """The default pretraining of ``backbone`` (default the budget's) on the budget's
        architecture (image and patch size, token merge, attention), so recipes trained with
        that budget load it unchanged; ``changes`` replace other settings."""
        return cls(
            backbone=backbone or budget.backbone,
            image_size=budget.image_size,
            patch_size=budget.patch_size,
            token_merge=budget.token_merge,
            attn_implementation=budget.attn_implementation,
            **changes,
        )

    @property
    def budget(self) -> MiniatureBudget:
        """The settings as a :class:`MiniatureBudget` (what the trainer overrides read)."""
        return replace(
            MINIATURE_PRETRAIN, backbone=self.backbone, cameras=self.cameras, image_size=self.image_size,
            patch_size=self.patch_size, token_merge=self.token_merge,
            attn_implementation=self.attn_implementation, vl_samples=self.samples, steps=self.steps,
            batch_size=self.batch_size, lr=self.lr, mixed_precision=self.mixed_precision,
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON form: the fields, ``mix`` as ``"general=0.25,..."`` (normalised: proportional
        weights draw the same samples), precision resolved for this machine, and the VL data
        version."""
        from vlaworks.train.config import default_mixed_precision

        out = asdict(self)
        out["cameras"] = list(self.cameras)
        total = sum(self.mix.values())
        out["mix"] = format_mix({c: w / total for c, w in self.mix.items()})
        if self.mixed_precision == "auto":
            out["mixed_precision"] = default_mixed_precision()
        out["vl_data_version"] = VL_DATA_VERSION
        if not self.align_steps:
            del out["align_steps"]  # entries pretrained before the stage existed keep their key
        return out

    def key(self) -> str:
        """16 hex digits of the SHA-256 of :meth:`to_dict` (sorted JSON)."""
        text = json.dumps(self.to_dict(), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def _backbone_options(settings: PretrainSettings) -> dict[str, Any]:
    """Architecture options for a registry backbone (a folder keeps its own; only the
    attention kernel goes to it)."""
    from vlaworks.models.backbones import option_names

    wanted: dict[str, Any] = {}
    if not Path(settings.backbone).is_dir():
        wanted = {"image_size": settings.image_size, "patch_size": settings.patch_size}
        if settings.token_merge != 1:
            wanted["token_merge"] = settings.token_merge
    if settings.attn_implementation is not None:
        wanted["attn_implementation"] = settings.attn_implementation
    takes = option_names(settings.backbone)
    return {k: v for k, v in wanted.items() if k in takes}


def _vl_dataset(settings: PretrainSettings, cache: Path) -> Any:
    """The rendered VL samples, read from ``cache`` when it holds the same ones."""
    from vlaworks.data.vl import VLDataset
    from vlaworks.sim.vl_data import generate_vl_samples

    options = {"cameras": settings.cameras, "image_size": settings.image_size}
    key = {
        "n": settings.samples, "seed": pretrain_vl_seed(settings.seed), "render_size": settings.image_size,
        "mix": format_mix(settings.mix), "vl_data_version": VL_DATA_VERSION,
    }
    if cache.exists():
        cached = VLDataset.load(cache, **options)
        if cached.meta == key:
            return cached
    samples = generate_vl_samples(settings.samples, key["seed"], settings.image_size, mix=settings.mix)
    data = VLDataset.from_samples(samples, **options)
    data.meta = key
    data.save(cache)
    return data


def _batch_source(vl: Any, settings: PretrainSettings) -> Any:
    """One source of all samples (``batching="mixed"``) or one per kind, each drawn in
    proportion to its share of the samples (``"kind"``: every sample is as likely as before)."""
    from torch.utils.data import Subset

    from vlaworks.processing import collate
    from vlaworks.train.sampler import MixedBatchSource

    if settings.batching == "mixed":
        return MixedBatchSource({"vl": (vl, collate)}, {"vl": 1.0}, settings.batch_size, seed=settings.seed)
    groups: dict[str, list[int]] = {}
    for index, kind in enumerate(vl.kinds):
        groups.setdefault(kind, []).append(index)
    sources = {kind: (Subset(vl, idx), collate) for kind, idx in sorted(groups.items())}
    weights = {kind: len(idx) / len(vl) for kind, idx in groups.items()}
    return MixedBatchSource(sources, weights, settings.batch_size, seed=settings.seed)


def pretrain_vlm(
    out: Path, settings: PretrainSettings = PretrainSettings(), *, resume: bool = True,
    grounding: int = GROUNDING_QUESTIONS,
) -> Path:
    """Pretrain ``settings.backbone`` (registry name or folder) into run folder ``out`` (module
    docstring) and return the saved backbone folder ``out/vlm``. With ``grounding > 0`` the
    grounding benchmark (:mod:`vlaworks.eval.grounding`) runs on that many held-out questions
    before training (the initial weights) and after, into ``out/grounding.json`` and ``.md``.

    The samples are drawn from :func:`vlaworks.miniature.pretrain_vl_seed`, apart from the
    co-training recipes' default ``vl_seed`` (0), the VQA seed and the grounding stream.
    """
    from accelerate.utils import set_seed

    from vlaworks.models.policy import build_policy, set_trainable
    from vlaworks.train.config import TrainConfig
    from vlaworks.train.trainer import train

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    budget = settings.budget
    config = PolicyConfig(
        backbone=settings.backbone,
        head=PartSpec("token", {"tokenizer": "bins", "n_bins": 256}),  # unused: VL batches train the LM head
        chunk_size=1,
        backbone_options=_backbone_options(settings),
        cameras=settings.cameras,
        image_size=settings.image_size,
        use_state=False,
    )
    set_seed(settings.seed)  # the initial weights depend on the seed only
    policy = build_policy(config)
    (out / SETTINGS_FILE).write_text(json.dumps(settings.to_dict(), indent=1) + "\n")
    results = _read_grounding(out)
    items = _grounding_items(grounding, settings.image_size) if grounding > 0 else []
    if items and "before" not in results:
        results["before"] = _grounding(policy.backbone, items)
    source = _batch_source(_vl_dataset(settings, out / "vl_pretrain.npz"), settings)
    if settings.align_steps:
        freeze_language_model(policy.backbone)
        stage = replace(budget, steps=settings.align_steps).train_overrides(settings.seed)
        train(policy, source, None, TrainConfig(out_dir=out / ALIGN_DIR, **stage), resume=resume)
        set_trainable(policy)  # back to the config's switches; a finished stage resumed to its last weights
    cfg = TrainConfig(out_dir=out, **budget.train_overrides(settings.seed))
    train(policy, source, None, cfg, resume=resume)
    folder = out / VLM_DIR
    policy.backbone.save_pretrained(str(folder))
    if items:
        results["after"] = _grounding(policy.backbone, items)
        _write_grounding(out, results)
    return folder


def freeze_language_model(backbone: Any) -> None:
    """Freeze the backbone's language model (:meth:`Backbone.language_modules`) on top of what
    :func:`~vlaworks.models.policy.set_trainable` chose, so only the vision side trains: the
    alignment stage."""
    for module in backbone.language_modules():
        module.requires_grad_(False)


def _grounding_items(n: int, image_size: int) -> list[Any]:
    from vlaworks.eval.grounding import grounding_items

    return grounding_items(n, image_size=image_size)


def _grounding(backbone: Any, items: list[Any]) -> dict[str, list[int]]:
    from vlaworks.eval.grounding import grounding_counts

    return {kind: list(c) for kind, c in grounding_counts(backbone, items).items()}


def _read_grounding(out: Path) -> dict[str, Any]:
    path = out / GROUNDING_FILE
    return json.loads(path.read_text()) if path.exists() else {}


def _write_grounding(out: Path, results: dict[str, Any]) -> None:
    from vlaworks.eval.grounding import write_grounding_report

    (out / GROUNDING_FILE).write_text(json.dumps(results, indent=1) + "\n")
    labels = {"before": "random init", "after": "pretrained"}
    table = {labels[k]: {kind: tuple(c) for kind, c in v.items()} for k, v in results.items()}
    write_grounding_report(table, out / "grounding.md", title="Grounding before / after VL pretraining")


def read_grounding(folder: Path) -> dict[str, dict[str, tuple[int, int]]]:
    """``{"before": {kind: (hits, n)}, "after": ...}`` of a pretraining run or cache entry
    (``folder`` or the backbone folder inside it); empty when it was not measured."""
    folder = Path(folder)
    run = folder.parent if folder.name == VLM_DIR else folder
    raw = _read_grounding(run)
    return {k: {kind: (int(c[0]), int(c[1])) for kind, c in v.items()} for k, v in raw.items()}


# ----------------------------------------------------------------------------- the cache
def cache_root() -> Path:
    """``$VLAWORKS_VLM_CACHE``, else ``~/.cache/vlaworks/vlm``."""
    env = os.environ.get(CACHE_ENV)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "vlaworks" / "vlm"


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def pretrained_vlm(
    settings: PretrainSettings = PretrainSettings(), *, root: Path | None = None,
    grounding: int = GROUNDING_QUESTIONS,
) -> Path:
    """The backbone folder pretrained with ``settings``: from the cache when there, else
    pretrained once into it (module docstring). ``root`` defaults to :func:`cache_root`."""
    if Path(settings.backbone).is_dir():
        raise ValueError(
            f"The pretrained-VLM cache keys on a registry backbone name; got the folder {settings.backbone}. "
            "Use `vlaworks pretrain --out DIR` to continue pretraining a folder."
        )
    root = Path(root) if root is not None else cache_root()
    key = settings.key()
    entry = root / key
    if (entry / VLM_DIR).is_dir():
        return entry / VLM_DIR
    root.mkdir(parents=True, exist_ok=True)
    with _locked(root / f"{key}.lock"):
        if not (entry / VLM_DIR).is_dir():  # another process may have finished it meanwhile
            work = root / f"{key}.partial"
            pretrain_vlm(work, settings, resume=True, grounding=grounding)
            shutil.rmtree(work / "checkpoints", ignore_errors=True)
            shutil.rmtree(work / ALIGN_DIR / "checkpoints", ignore_errors=True)
            (work / "vl_pretrain.npz").unlink(missing_ok=True)
            work.rename(entry)
    return entry / VLM_DIR


def check_vlm(vlm: str) -> None:
    """Reject a ``--vlm`` value that is not one of :data:`VLM_CHOICES` (before any work starts)."""
    if vlm not in VLM_CHOICES:
        raise ValueError(f"--vlm must be one of {', '.join(VLM_CHOICES)}; got {vlm!r}.")


def resolve_vlm(vlm: str, budget: MiniatureBudget, backbone: str | None = None) -> str:
    """The backbone a recipe starts from: ``"random"`` -> ``backbone`` (default the budget's) as
    it is; ``"pretrained"`` -> the cached VLM pretrained on it with the default settings on
    the budget's architecture (:meth:`PretrainSettings.for_budget`), pretraining it if needed."""
    check_vlm(vlm)
    backbone = backbone or budget.backbone
    if vlm == "random":
        return backbone
    return str(pretrained_vlm(PretrainSettings.for_budget(budget, backbone)))
