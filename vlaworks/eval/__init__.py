"""Closed-loop evaluation: rollouts with chunk execution modes, success statistics, reports."""

from vlaworks.eval.expert import ExpertPolicy
from vlaworks.eval.report import compare_report, write_report
from vlaworks.eval.results import EpisodeResult, EvalResult, RateSummary
from vlaworks.eval.run import evaluate
from vlaworks.eval.stats import wilson_interval

__all__ = [
    "EpisodeResult",
    "EvalResult",
    "ExpertPolicy",
    "RateSummary",
    "compare_report",
    "evaluate",
    "wilson_interval",
    "write_report",
]
