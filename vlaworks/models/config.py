"""``PolicyConfig``: everything needed to rebuild a policy, serialisable to JSON.

A policy is *backbone + token sources + head (+ auxiliary losses)*; the config names each
part by its registry name plus an options dict, so recipes pick parts without forking the
core and a checkpoint's ``config.json`` rebuilds the exact module tree before its weights
are loaded.
"""

from __future__ import annotations

import importlib
import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

from vlaworks.data.augment import AugmentOptions

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
    backbone weight (seed 003's lower-bound baseline). ``augment`` names the image
    augmentations training applies (``vlaworks.data.augment``; never at inference).
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
        raise ValueError(f"Unknown {what} key(s) {unknown}; known keys: {sorted(known)}.")


class PartRegistry:
    """Maps registry names to part builders, imported lazily from ``"module:attr"`` paths.

    Lazy paths keep ``import vlaworks.models`` cheap and free of import cycles; a later head
    or token source is one more entry (or one :meth:`register` call). A builder is called
    as ``builder(backbone, config, **spec.options)`` and returns an ``nn.Module``.
    """

    def __init__(self, kind: str, entries: dict[str, str]) -> None:
        self.kind = kind
        self._entries: dict[str, Any] = dict(entries)

    def register(self, name: str, builder: Any) -> None:
        """Add ``builder`` (a callable or a ``"module:attr"`` path) under ``name``."""
        if name in self._entries:
            raise ValueError(f"{self.kind} {name!r} is already registered.")
        self._entries[name] = builder

    def names(self) -> list[str]:
        return sorted(self._entries)

    def resolve(self, name: str) -> Any:
        """The builder registered as ``name``; an unknown name lists the known ones."""
        if name not in self._entries:
            raise KeyError(f"Unknown {self.kind} {name!r}; known: {', '.join(self.names())}.")
        entry = self._entries[name]
        if isinstance(entry, str):
            module_name, _, attr_path = entry.partition(":")
            obj: Any = importlib.import_module(module_name)
            for attr in attr_path.split("."):
                obj = getattr(obj, attr)
            entry = self._entries[name] = obj
        return entry
