"""``Recipe``: a policy config plus the training hyper-parameters of one system or baseline.

A recipe never forks the core: it only picks parts in a
:class:`~vlaworks.models.config.PolicyConfig` and sets training values. ``train`` holds
overrides of :class:`vlaworks.train.config.TrainConfig` fields (``lr``, ``batch_size`` per
process, ``steps``, ...). :meth:`Recipe.override` applies dotted-key changes such as
``{"policy.chunk_size": 8, "train.lr": 1e-4}`` (what a CLI ``--set`` flag maps to).

``cotrain`` configures vision-language co-training (seed 004, III-C): empty for robot-only
training, else ``{"vl_fraction": f}`` (the probability that a training batch is a VL batch;
seed 004 uses 0.5) plus optional ``vl_samples`` (how many VL samples to render) and
``vl_seed``. ``vlaworks.recipes.training.training_source`` reads it; override it with
``cotrain.<key>`` dotted keys.

``stages`` (empty for one-stage recipes) lists training stages run in order, each from the
previous stage's weights (seed 000's continuous-action training then pixel-level
understanding enhancement): a :class:`Stage` holds dotted overrides of the recipe's policy
(which parts exist, freezing, LoRA) and its own trainer values (steps, lr).
:meth:`Recipe.stage_recipe` is the one-stage recipe a stage trains;
``vlaworks.train.pipeline.train_policy`` runs them. ``stages.<name>.policy.<key>`` and
``stages.<name>.train.<key>`` override one stage.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vlaworks.models.config import PolicyConfig

if TYPE_CHECKING:
    from vlaworks.train.config import TrainConfig


@dataclass
class Stage:
    """One training stage: ``policy`` holds dotted overrides of the recipe's policy config
    (``"token_sources"``, ``"lora.enabled"``, ``"freeze_backbone"``, ...), ``train`` this
    stage's trainer values on top of the recipe's (``steps``, ``lr``, ...)."""

    name: str
    description: str
    policy: dict[str, Any] = field(default_factory=dict)
    train: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.name or "/" in self.name:
            raise ValueError(
                f"A stage needs a name without '/' (it names the stage's folder); got {self.name!r}."
            )

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "policy": dict(self.policy),
            "train": dict(self.train),
        }


@dataclass
class Recipe:
    """A named, described policy config + training hyper-parameters (+ training stages)."""

    name: str
    description: str
    policy: PolicyConfig
    train: dict[str, Any] = field(default_factory=dict)
    cotrain: dict[str, Any] = field(default_factory=dict)
    stages: list[Stage] = field(default_factory=list)

    def __post_init__(self) -> None:
        check_cotrain(self.cotrain)
        names = [s.name for s in self.stages]
        if len(set(names)) != len(names):
            raise ValueError(f"Recipe {self.name!r} repeats stage names {names}; name each stage once.")
        for stage in self.stages:
            self.stage_recipe(stage)  # every stage's policy config is valid now, not at its turn

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "policy": self.policy.to_dict(),
            "train": dict(self.train),
            "cotrain": dict(self.cotrain),
            "stages": [s.to_dict() for s in self.stages],
        }

    def stage_recipe(self, stage: Stage) -> Recipe:
        """The one-stage recipe ``stage`` trains: this recipe's policy with the stage's policy
        overrides, its trainer values updated by the stage's."""
        changes = {f"policy.{k}": v for k, v in stage.policy.items()}
        base = Recipe(self.name, self.description, self.policy, dict(self.train), dict(self.cotrain))
        staged = base.override(changes)
        return Recipe(
            name=f"{self.name}/{stage.name}",
            description=f"{self.description}; stage {stage.name}: {stage.description}",
            policy=staged.policy,
            train={**self.train, **stage.train},
            cotrain=dict(self.cotrain),
        )

    def override(self, changes: dict[str, Any]) -> Recipe:
        """A copy with dotted keys replaced: ``policy.<field>[.<sub>...]``, ``train.<field>``,
        ``cotrain.<key>`` or ``stages.<stage>.policy.<key>`` / ``stages.<stage>.train.<key>``.

        Policy keys are validated by ``PolicyConfig.from_dict`` (unknown ones are errors);
        train keys by :meth:`train_config`.
        """
        data = self.to_dict()
        stages = {s["name"]: s for s in data["stages"]}
        for key, value in changes.items():
            section, _, rest = key.partition(".")
            if section not in ("policy", "train", "cotrain", "stages") or not rest:
                raise KeyError(
                    f"Override key {key!r} must start with 'policy.', 'train.', 'cotrain.' or 'stages.'."
                )
            if section in ("train", "cotrain"):
                data[section][rest] = value
                continue
            if section == "stages":
                name, _, inner = rest.partition(".")
                part, _, leaf = inner.partition(".")
                if name not in stages or part not in ("policy", "train") or not leaf:
                    raise KeyError(
                        f"Override key {key!r} must be stages.<stage>.policy.<key> or "
                        f"stages.<stage>.train.<key> with a stage of {sorted(stages)}."
                    )
                stages[name][part][leaf] = value
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
            cotrain=data["cotrain"],
            stages=[Stage(**s) for s in data["stages"]],
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


#: keys a recipe's ``cotrain`` dict may hold
COTRAIN_KEYS = ("vl_fraction", "vl_samples", "vl_seed")


def check_cotrain(cotrain: dict[str, Any]) -> None:
    """Validate a ``cotrain`` dict: known keys, ``0 < vl_fraction < 1``, ``vl_samples >= 1``."""
    unknown = sorted(set(cotrain) - set(COTRAIN_KEYS))
    if unknown:
        raise KeyError(f"Unknown cotrain key(s) {unknown}; known: {list(COTRAIN_KEYS)}.")
    if not cotrain:
        return
    if "vl_fraction" not in cotrain:
        raise KeyError("A cotrain dict needs vl_fraction (the share of VL batches, e.g. 0.5).")
    fraction = float(cotrain["vl_fraction"])
    if not 0.0 < fraction < 1.0:
        raise ValueError(
            f"cotrain vl_fraction must be in (0, 1); got {fraction}. Use {{}} for no co-training."
        )
    if int(cotrain.get("vl_samples", 1)) < 1:
        raise ValueError(f"cotrain vl_samples must be >= 1; got {cotrain['vl_samples']}.")
