"""``PolicyConfig``: everything needed to rebuild a policy, serialisable to JSON.

A policy is *backbone + token sources + head (+ auxiliary losses)*; the config names each
part by its registry name plus an options dict, so recipes pick parts without forking the
core and a checkpoint's ``config.json`` rebuilds the exact module tree before its weights
are loaded.

Every part registers in a :class:`PartRegistry` under a name, with a dataclass of its
options (:class:`Part`). The options stay a plain mapping in the config and on disk, and
are checked against that dataclass when the config is built or loaded
(:meth:`PolicyConfig.check_parts`): an unknown or misspelt option or a value of the wrong
type is an error with a "did you mean" hint, never silently ignored.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

from vlaworks.data.augment import AugmentOptions
from vlaworks.models.options import did_you_mean, parse_options
from vlaworks.prompts import TrainPromptMode, check_prompt_mode

NormaliserMode = Literal["q99", "meanstd", "minmax"]

#: Linear layer names of the LM blocks of Llama / Qwen / Gemma style decoders.
DEFAULT_LORA_TARGETS: tuple[str, ...] = (
    "q_proj",
    "k_proj",
    "v_proj",
    "o_proj",
    "gate_proj",
    "up_proj",
    "down_proj",
)


#: token sources reading the prompts of :mod:`vlaworks.prompts` (pixel masks, visual prompts)
PROMPT_SOURCES = ("pixel_aware", "visual_prompt")
#: auxiliary losses reading the per-frame ground-truth target masks (``Batch.target_masks``)
TARGET_MASK_LOSSES = ("seg_mask", "target_point")


@dataclass
class PartSpec:
    """A registry name and the keyword options passed to that part's builder."""

    type: str
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class LoraOptions:
    """LoRA (via ``peft``) on the backbone's language-model linear layers.

    When enabled, the LM's base weights (word embeddings included) are frozen and only the
    adapters train; the vision encoder follows ``PolicyConfig.freeze_vision``; token
    sources, the head and auxiliary modules stay fully trainable.
    """

    enabled: bool = False
    r: int = 16
    alpha: int = 32
    dropout: float = 0.0
    target_modules: tuple[str, ...] = DEFAULT_LORA_TARGETS


@dataclass
class PolicyConfig:
    """Which parts make the policy, and how they are trained.

    ``cameras`` are the views fed to the backbone, in order (names of the env's
    ``observation["images"]`` keys); images are resized to ``image_size`` square before the
    backbone sees them. ``use_state`` feeds the normalised proprio state to the parts that
    read it (e.g. a ``proprio`` token source); its ``state_dim`` is read from the dataset at
    training when left unset. ``from_scratch`` re-initialises every
    backbone weight (seed 003's lower-bound baseline). ``augment`` names the image and
    instruction augmentations training applies (``vlaworks.data.augment``; never at inference).
    ``backbone`` is a registry name or a backbone folder; ``backbone_options`` are the
    options of its family (``vlaworks.models.backbones``), among them ``dual_encoder``
    (seed 004's frozen ⊕ trained vision encoder).
    """

    backbone: str
    head: PartSpec
    chunk_size: int
    backbone_options: dict[str, Any] = field(default_factory=dict)
    token_sources: list[PartSpec] = field(default_factory=list)
    aux_losses: list[PartSpec] = field(default_factory=list)
    action_dim: int = 7
    cameras: tuple[str, ...] = ("base",)
    image_size: int = 224
    use_state: bool = False
    state_dim: int | None = None
    normaliser_mode: NormaliserMode = "q99"
    lora: LoraOptions = field(default_factory=LoraOptions)
    augment: AugmentOptions = field(default_factory=AugmentOptions)
    freeze_vision: bool = False
    freeze_word_embeddings: bool = False
    freeze_backbone: bool = False
    from_scratch: bool = False
    prompt_mode: TrainPromptMode | None = None

    def __post_init__(self) -> None:
        if self.chunk_size < 1:
            raise ValueError(f"PolicyConfig.chunk_size must be >= 1; got {self.chunk_size}.")
        if self.action_dim < 2:
            raise ValueError(f"PolicyConfig.action_dim must be >= 2 (pose + gripper); got {self.action_dim}.")
        if not self.cameras or not all(self.cameras):
            raise ValueError(
                f"PolicyConfig.cameras must name at least one camera, none empty (e.g. ('base',)); "
                f"got {self.cameras!r}."
            )
        if not isinstance(self.image_size, int) or self.image_size < 1:
            raise ValueError(f"PolicyConfig.image_size must be an integer >= 1; got {self.image_size!r}.")
        if self.lora.r < 1 or self.lora.alpha <= 0 or not 0 <= self.lora.dropout < 1:
            raise ValueError(
                f"PolicyConfig.lora needs r >= 1, alpha > 0 and 0 <= dropout < 1; got r={self.lora.r}, "
                f"alpha={self.lora.alpha}, dropout={self.lora.dropout} (--lora R sets r=R, alpha=2R)."
            )
        if self.state_dim is not None and self.state_dim < 1:
            raise ValueError(f"PolicyConfig.state_dim must be >= 1 (proprio length); got {self.state_dim}.")
        if self.normaliser_mode not in ("q99", "meanstd", "minmax"):
            raise ValueError(
                f"PolicyConfig.normaliser_mode must be q99, meanstd or minmax; got {self.normaliser_mode!r}."
            )
        self.cameras = tuple(self.cameras)
        self.lora.target_modules = tuple(self.lora.target_modules)
        self.check_parts()
        if self.prompt_mode is not None:
            check_prompt_mode(self.prompt_mode, training=True)
        if (self.prompt_mode is not None) != bool(self.prompt_sources):
            raise ValueError(
                "PolicyConfig.prompt_mode must be set exactly when a token source reads prompts "
                f"(pixel_aware, visual_prompt); got prompt_mode={self.prompt_mode!r} with token sources "
                f"{[s.type for s in self.token_sources]}. Set policy.prompt_mode (e.g. mixed) or drop it."
            )

    @property
    def prompt_sources(self) -> tuple[str, ...]:
        """The token sources that read prompts: ``pixel_aware`` (pixel masks) and ``visual_prompt``."""
        return tuple(s.type for s in self.token_sources if s.type in PROMPT_SOURCES)

    @property
    def reads_target_masks(self) -> bool:
        """Whether an auxiliary loss reads the target masks (the data loader then adds them)."""
        return any(s.type in TARGET_MASK_LOSSES for s in self.aux_losses)

    def check_parts(self) -> None:
        """Check every part's name and options against its registry and options dataclass
        (an unknown or misspelt option, a wrong type: an error now, before any model is built)."""
        from vlaworks.models.backbones import resolve_backbone
        from vlaworks.models.heads import HEADS
        from vlaworks.models.policy import AUX_LOSSES
        from vlaworks.models.tokens import TOKEN_SOURCES

        resolve_backbone(self.backbone, self.backbone_options)
        HEADS.options(self.head.type, self.head.options)
        for spec in self.token_sources:
            TOKEN_SOURCES.options(spec.type, spec.options)
        for spec in self.aux_losses:
            AUX_LOSSES.options(spec.type, spec.options)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (tuples become lists)."""
        return json.loads(json.dumps(asdict(self)))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PolicyConfig:
        """Rebuild from :meth:`to_dict` output; unknown keys are an error, not ignored."""
        _check_keys(cls, data, "PolicyConfig")
        data = dict(data)
        data["head"] = _part(data["head"])
        data["token_sources"] = [_part(p) for p in data.get("token_sources", [])]
        data["aux_losses"] = [_part(p) for p in data.get("aux_losses", [])]
        if "lora" in data:
            _check_keys(LoraOptions, data["lora"], "PolicyConfig.lora")
            data["lora"] = LoraOptions(**data["lora"])
        if "augment" in data:
            _check_keys(AugmentOptions, data["augment"], "PolicyConfig.augment")
            data["augment"] = AugmentOptions(**data["augment"])
        return cls(**data)

    def save(self, path: str | Path) -> None:
        """Write ``config.json``-style JSON to ``path``."""
        Path(path).write_text(json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> PolicyConfig:
        """Read JSON written by :meth:`save`."""
        return cls.from_dict(json.loads(Path(path).read_text()))


def _part(data: PartSpec | dict[str, Any]) -> PartSpec:
    if isinstance(data, PartSpec):
        return data
    _check_keys(PartSpec, data, "part spec")
    return PartSpec(**data)


def _check_keys(cls: type, data: dict[str, Any], what: str) -> None:
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        hint = did_you_mean(unknown[0], known)
        raise ValueError(f"Unknown {what} key(s) {unknown};{hint} known keys: {sorted(known)}.")


@dataclass(frozen=True)
class Part:
    """A registered part: the dataclass of its options and its builder.

    The builder takes the part's context first (a head or token source: the backbone and
    the :class:`PolicyConfig`) and the validated options instance last.
    """

    options: type
    build: Callable[..., Any]


class Registry:
    """Maps names to objects, imported lazily from ``"module:attr"`` paths.

    Lazy paths keep ``import vlaworks.models`` cheap and free of import cycles. ``discover``
    (optional) returns further entries on first use, for parts that register themselves
    by living in a package (backbone families). ``entries`` is the name -> object-or-path map.
    """

    def __init__(
        self,
        kind: str,
        entries: Mapping[str, Any] | None = None,
        *,
        discover: Callable[[], Mapping[str, Any]] | None = None,
    ) -> None:
        self.kind = kind
        self.entries: dict[str, Any] = dict(entries or {})
        self._discover = discover

    def _load(self) -> dict[str, Any]:
        if self._discover is not None:
            found = self._discover()
            self._discover = None
            for name, entry in found.items():
                self.register(name, entry)
        return self.entries

    def register(self, name: str, entry: Any) -> None:
        """Add ``entry`` (the object or a ``"module:attr"`` path) under ``name``."""
        if name in self.entries:
            raise ValueError(f"{self.kind} {name!r} is already registered.")
        self.entries[name] = entry

    def names(self) -> list[str]:
        return sorted(self._load())

    def __contains__(self, name: object) -> bool:
        return name in self._load()

    def _unknown(self, name: str) -> str:
        """The message for an unknown ``name``: a "did you mean" hint and the known names."""
        hint = did_you_mean(name, self.names())
        known = ", ".join(self.names())
        return f"Unknown {self.kind} {name!r};{hint} {'Known' if hint else 'known'}: {known}."

    def resolve(self, name: str) -> Any:
        """The object registered as ``name``; an unknown name lists the known ones."""
        entries = self._load()
        if name not in entries:
            raise KeyError(self._unknown(name))
        entry = entries[name]
        if isinstance(entry, str):
            module_name, _, attr_path = entry.partition(":")
            obj: Any = importlib.import_module(module_name)
            for attr in attr_path.split("."):
                obj = getattr(obj, attr)
            entry = entries[name] = obj
        return entry


class PartRegistry(Registry):
    """A :class:`Registry` of :class:`Part` entries: options are validated against the
    part's dataclass (unknown keys and wrong types are errors) before it is built."""

    def options(self, name: str, raw: Mapping[str, Any]) -> Any:
        """The options dataclass of part ``name`` filled from the plain mapping ``raw``."""
        part: Part = self.resolve(name)
        return parse_options(part.options, raw, f"{self.kind} {name!r}")

    def build(self, spec: PartSpec, *context: Any) -> Any:
        """Build the part ``spec`` names: ``part.build(*context, options)``."""
        part: Part = self.resolve(spec.type)
        return part.build(*context, self.options(spec.type, spec.options))
