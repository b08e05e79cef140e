"""Result records of a closed-loop evaluation and their aggregation into rates with CIs.

An :class:`EvalResult` holds every :class:`EpisodeResult` plus the settings that produced
them; per-task and per-suite summaries (:class:`RateSummary`) are derived from the
episodes, never stored separately, so they cannot drift apart.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from vlaworks.eval.stats import wilson_interval


@dataclass(frozen=True)
class EpisodeResult:
    """One rollout: which task and seed, whether it succeeded and how many env steps it took."""

    suite: str
    task: str
    episode: int
    seed: int
    success: bool
    length: int
    instruction: str = ""
    predictions: int = 0
    video: str | None = None


@dataclass(frozen=True)
class RateSummary:
    """Success rate of a group of episodes with its Wilson 95% interval and mean length."""

    name: str
    n: int
    successes: int
    rate: float
    ci_low: float
    ci_high: float
    mean_length: float

    @classmethod
    def of(cls, name: str, episodes: Iterable[EpisodeResult], confidence: float = 0.95) -> RateSummary:
        eps = list(episodes)
        n = len(eps)
        k = sum(e.success for e in eps)
        low, high = wilson_interval(k, n, confidence)
        return cls(
            name=name,
            n=n,
            successes=k,
            rate=k / n if n else 0.0,
            ci_low=low,
            ci_high=high,
            mean_length=sum(e.length for e in eps) / n if n else 0.0,
        )


@dataclass
class EvalResult:
    """All episodes of one evaluation run and the settings that produced them."""

    policy: str
    suites: list[str]
    episodes_per_task: int
    chunk_exec: str
    perturbations: list[str]
    seed: int
    image_size: int
    episodes: list[EpisodeResult] = field(default_factory=list)
    #: the visual prompt each episode gave the policy (:mod:`vlaworks.prompts`)
    prompt_mode: str = "text"

    def tasks(self, suite: str) -> list[str]:
        """Task ids of ``suite`` in first-seen order."""
        return list(dict.fromkeys(e.task for e in self.episodes if e.suite == suite))

    def task_summary(self, suite: str, task: str) -> RateSummary:
        return RateSummary.of(task, (e for e in self.episodes if e.suite == suite and e.task == task))

    def suite_summary(self, suite: str) -> RateSummary:
        return RateSummary.of(suite, (e for e in self.episodes if e.suite == suite))

    def overall(self) -> RateSummary:
        return RateSummary.of("all", self.episodes)

    @property
    def setting(self) -> str:
        """Short human description of the run's settings (chunk mode, perturbations and, when
        not text only, the prompt mode)."""
        perturb = ", ".join(self.perturbations) if self.perturbations else "none"
        prompt = f", prompt={self.prompt_mode}" if self.prompt_mode != "text" else ""
        return f"chunk={self.chunk_exec}, perturb={perturb}{prompt}"

    def to_dict(self) -> dict:
        """JSON-ready dict: settings, per-suite and per-task summaries, and every episode."""
        return {
            "policy": self.policy,
            "suites": self.suites,
            "episodes_per_task": self.episodes_per_task,
            "chunk_exec": self.chunk_exec,
            "perturbations": self.perturbations,
            "seed": self.seed,
            "image_size": self.image_size,
            "prompt_mode": self.prompt_mode,
            "overall": asdict(self.overall()),
            "summary": {
                suite: {
                    "suite": asdict(self.suite_summary(suite)),
                    "tasks": {t: asdict(self.task_summary(suite, t)) for t in self.tasks(suite)},
                }
                for suite in self.suites
            },
            "episodes": [asdict(e) for e in self.episodes],
        }

    def save(self, path: Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict(), indent=2))
        return path

    @classmethod
    def from_dict(cls, data: dict) -> EvalResult:
        return cls(
            policy=data["policy"],
            suites=list(data["suites"]),
            episodes_per_task=int(data["episodes_per_task"]),
            chunk_exec=data["chunk_exec"],
            perturbations=list(data["perturbations"]),
            seed=int(data["seed"]),
            image_size=int(data["image_size"]),
            episodes=[EpisodeResult(**e) for e in data["episodes"]],
            prompt_mode=str(data.get("prompt_mode", "text")),
        )

    @classmethod
    def load(cls, path: Path) -> EvalResult:
        """Read a ``results.json`` written by :meth:`save` (a folder holding one also works)."""
        path = Path(path)
        if path.is_dir():
            path = path / "results.json"
        if not path.is_file():
            raise FileNotFoundError(f"No evaluation results at {path}; run `vlaworks eval --out DIR` first.")
        return cls.from_dict(json.loads(path.read_text()))
