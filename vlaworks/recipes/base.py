"""``Recipe``: a policy config plus the training hyper-parameters of one system or baseline.

A recipe never forks the core: it only picks parts in a
:class:`~vlaworks.models.config.PolicyConfig` and sets training values. ``train`` holds
overrides of :class:`vlaworks.train.config.TrainConfig` fields (``lr``, ``batch_size`` per
process, ``steps``, ...). :meth:`Recipe.override` applies dotted-key changes such as
``{"policy.chunk_size": 8, "train.lr": 1e-4}`` (what a CLI ``--set`` flag maps to).
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vlaworks.models.config import PolicyConfig

if TYPE_CHECKING:
    from vlaworks.train.config import TrainConfig


@dataclass
class Recipe:
    """A named, described policy config + training hyper-parameters."""

    name: str
    description: str
    policy: PolicyConfig
    train: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "policy": self.policy.to_dict(),
            "train": dict(self.train),
        }

    def override(self, changes: dict[str, Any]) -> Recipe:
        """A copy with dotted keys replaced: ``policy.<field>[.<sub>...]`` or ``train.<field>``.

        Policy keys are validated by ``PolicyConfig.from_dict`` (unknown ones are errors);
        train keys by :meth:`train_config`.
        """
        data = self.to_dict()
        for key, value in changes.items():
            section, _, rest = key.partition(".")
            if section not in ("policy", "train") or not rest:
                raise KeyError(f"Override key {key!r} must start with 'policy.' or 'train.'.")
            if section == "train":
                data["train"][rest] = value
                continue
            node = data["policy"]
            *parents, leaf = rest.split(".")
            for part in parents:
                if not isinstance(node.get(part), dict):
                    raise KeyError(f"Override key {key!r}: {part!r} is not a nested config section.")
                node = node[part]
            node[leaf] = value
        return Recipe(
            name=self.name,
            description=self.description,
            policy=PolicyConfig.from_dict(data["policy"]),
            train=data["train"],
        )

    def train_config(self, out_dir: str | Path, **overrides: Any) -> TrainConfig:
        """The trainer's config: this recipe's values, then ``overrides``, for ``out_dir``."""
        from vlaworks.train.config import TrainConfig

        values = {**self.train, **overrides}
        known = {f.name for f in fields(TrainConfig)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise KeyError(
                f"Recipe {self.name!r}: unknown training key(s) {unknown}; known: {sorted(known)}."
            )
        return TrainConfig(out_dir=Path(out_dir), **values)
