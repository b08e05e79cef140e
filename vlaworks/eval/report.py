"""Evaluation reports: ``results.json``, a markdown table and a bar plot with 95% CIs.

:func:`write_report` documents one run; :func:`compare_report` sets several runs
(policies, perturbation settings, chunk modes) side by side in one table and one chart.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from vlaworks.eval.results import EvalResult, RateSummary  # noqa: E402

SUITE_ROW_SUFFIX = " (all tasks)"


def _pct(x: float) -> str:
    return f"{100.0 * x:.1f}"


def rate_cell(s: RateSummary) -> str:
    """One table cell: ``rate% [low, high] (n=N)`` with the 95 % Wilson interval."""
    return f"{_pct(s.rate)}% [{_pct(s.ci_low)}, {_pct(s.ci_high)}] (n={s.n})"


def _rows(result: EvalResult) -> list[tuple[str, str | None, RateSummary]]:
    """(suite, task or None for the suite row, summary) in report order: each suite, then its tasks."""
    rows: list[tuple[str, str | None, RateSummary]] = []
    for suite in result.suites:
        rows.append((suite, None, result.suite_summary(suite)))
        rows.extend((suite, task, result.task_summary(suite, task)) for task in result.tasks(suite))
    return rows


def markdown_table(result: EvalResult) -> str:
    """Per-suite (bold) and per-task rows: success %, Wilson 95% CI, n and mean episode length."""
    lines = [
        "| suite | task | success % | 95% CI | n | mean length |",
        "|---|---|---:|---|---:|---:|",
    ]
    for suite, task, s in _rows(result):
        name = f"**{suite}**" if task is None else suite
        label = "**all tasks**" if task is None else task
        rate = f"**{_pct(s.rate)}**" if task is None else _pct(s.rate)
        ci = f"[{_pct(s.ci_low)}, {_pct(s.ci_high)}]"
        lines.append(f"| {name} | {label} | {rate} | {ci} | {s.n} | {s.mean_length:.1f} |")
    return "\n".join(lines)


def _bar_chart(
    labels: Sequence[str],
    series: Sequence[tuple[str, Sequence[RateSummary]]],
    title: str,
    path: Path,
) -> Path:
    """Horizontal grouped bars (one group per label, one bar per series) with CI error bars."""
    n_rows, n_series = len(labels), len(series)
    height = 0.8 / max(n_series, 1)
    fig, ax = plt.subplots(
        figsize=(8.0 + (1.5 if n_series > 1 else 0.0), 1.2 + 0.3 * n_rows * max(1.0, 0.6 * n_series))
    )
    y = np.arange(n_rows)
    for k, (name, summaries) in enumerate(series):
        rates = np.array([100 * s.rate for s in summaries])
        err = np.array(
            [[100 * (s.rate - s.ci_low) for s in summaries], [100 * (s.ci_high - s.rate) for s in summaries]]
        )
        offset = (k - (n_series - 1) / 2) * height
        ax.barh(
            y + offset,
            rates,
            height=height * 0.9,
            xerr=err,
            capsize=3,
            label=name,
            error_kw={"elinewidth": 1},
        )
    ax.set_yticks(y, labels)
    ax.set_ylim(n_rows - 0.5, -0.5)  # first row on top, no empty margins
    ax.set_xlim(0, 100)
    ax.set_xlabel("success rate (%) with Wilson 95% CI")
    ax.set_title(title)
    ax.grid(axis="x", alpha=0.3)
    for tick in ax.get_yticklabels():
        if tick.get_text().endswith(SUITE_ROW_SUFFIX):
            tick.set_fontweight("bold")
    if n_series > 1:
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def _row_label(suite: str, task: str | None) -> str:
    return f"{suite}{SUITE_ROW_SUFFIX}" if task is None else task


def write_report(result: EvalResult, out: Path) -> dict[str, Path]:
    """Write ``results.json``, ``report.md`` and ``success.png`` into ``out``; return their paths."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"json": result.save(out / "results.json")}
    rows = _rows(result)
    paths["plot"] = _bar_chart(
        [_row_label(s, t) for s, t, _ in rows],
        [(result.policy, [r for _, _, r in rows])],
        f"{result.policy} ({result.setting})",
        out / "success.png",
    )
    overall = result.overall()
    videos = [e for e in result.episodes if e.video]
    text = [
        f"# Evaluation: {result.policy}",
        "",
        f"* suites: {', '.join(result.suites)}; episodes per task: {result.episodes_per_task}",
        f"* chunk execution: {result.chunk_exec}",
        f"* perturbations: {', '.join(result.perturbations) or 'none'}",
        f"* base seed: {result.seed}; image size: {result.image_size}",
        f"* overall success: {rate_cell(overall)}",
        "",
        markdown_table(result),
        "",
        f"![success rates]({paths['plot'].name})",
    ]
    if videos:
        text += ["", "## Videos", ""]
        text += [
            f"* [{e.task} episode {e.episode} ({'success' if e.success else 'failure'})]({e.video})"
            for e in videos
        ]
    paths["markdown"] = out / "report.md"
    paths["markdown"].write_text("\n".join(text) + "\n")
    return paths


def compare_report(
    results: Sequence[EvalResult], labels: Sequence[str], out: Path, title: str = "Comparison"
) -> dict[str, Path]:
    """Side-by-side table (``compare.md``) and grouped bar chart (``compare.png``) of several runs.

    Rows are the union of suites and tasks over all runs; a run without episodes for a
    row shows ``-``. Use it for policy vs expert, robustness under perturbations, or
    chunk execution modes.
    """
    if len(results) != len(labels) or not results:
        raise ValueError(
            f"compare_report needs one label per result; got {len(results)} results and {len(labels)} labels."
        )
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    keys: dict[tuple[str, str | None], None] = {}
    for r in results:
        for suite in r.suites:
            keys[(suite, None)] = None
            for task in r.tasks(suite):
                keys[(suite, task)] = None

    def summary(r: EvalResult, suite: str, task: str | None) -> RateSummary:
        return r.suite_summary(suite) if task is None else r.task_summary(suite, task)

    header = "| suite | task | " + " | ".join(labels) + " |"
    lines = [f"# {title}", "", header, "|---|---|" + "---|" * len(labels)]
    for suite, task in keys:
        cells = []
        for r in results:
            s = summary(r, suite, task)
            cells.append(rate_cell(s) if s.n else "-")
        name = f"**{suite}**" if task is None else suite
        lines.append(f"| {name} | {'**all tasks**' if task is None else task} | " + " | ".join(cells) + " |")
    lines += ["", "Runs:", ""]
    lines += [
        f"* **{label}**: policy `{r.policy}`, {r.setting}, seed {r.seed}"
        for label, r in zip(labels, results, strict=True)
    ]
    lines += ["", "![comparison](compare.png)"]
    md = out / "compare.md"
    md.write_text("\n".join(lines) + "\n")
    png = _bar_chart(
        [_row_label(s, t) for s, t in keys],
        [(label, [summary(r, s, t) for s, t in keys]) for label, r in zip(labels, results, strict=True)],
        title,
        out / "compare.png",
    )
    return {"markdown": md, "plot": png}
