"""``RUN/metrics.csv``: one row per logged step, columns grow as new metrics appear.

Columns start with ``step, loss, lr, samples_per_s``; any other key a model reports
(``l1``, ``vl_loss``, ``grad_norm``, ...) becomes a column the first time it is seen
(the file is rewritten with the wider header; earlier rows get empty cells). On resume,
rows after the checkpoint's step are dropped, so the file matches an uninterrupted run;
so is a last line torn by a kill mid-write.
"""

from __future__ import annotations

import csv
from collections.abc import Mapping
from pathlib import Path

BASE_COLUMNS = ("step", "loss", "lr", "samples_per_s")


class MetricsCsv:
    """Append-only CSV of training metrics with a growing header."""

    def __init__(self, path: Path, *, keep_until_step: int | None = None) -> None:
        """Open ``path``; keep existing rows with ``step <= keep_until_step`` (all if None,
        none if the file is new)."""
        self.path = Path(path)
        self.columns: list[str] = list(BASE_COLUMNS)
        self.rows: list[dict[str, str]] = []
        if self.path.exists() and keep_until_step is not None:
            with self.path.open(newline="") as f:
                reader = csv.DictReader(f)
                for name in reader.fieldnames or []:
                    if name not in self.columns:
                        self.columns.append(name)
                self.rows = [r for r in reader if _complete(r) and int(r["step"]) <= keep_until_step]
        self._rewrite()

    def log(self, row: Mapping[str, float | int | str]) -> None:
        """Append one row (must contain ``step``)."""
        if "step" not in row:
            raise ValueError(f"A metrics row needs a 'step'; got keys {sorted(row)}.")
        text = {k: _fmt(v) for k, v in row.items()}
        self.rows.append(text)
        new = [k for k in row if k not in self.columns]
        if new:
            self.columns.extend(new)
            self._rewrite()
            return
        with self.path.open("a", newline="") as f:
            csv.DictWriter(f, fieldnames=self.columns).writerow(text)

    def _rewrite(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".csv.tmp")
        with tmp.open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=self.columns)
            writer.writeheader()
            writer.writerows(self.rows)
        tmp.replace(self.path)


def _fmt(value: float | int | str) -> str:
    if isinstance(value, float):
        return repr(value)
    return str(value)


def _complete(row: dict) -> bool:
    """A row with every column (empty cells allowed) and an integer step: not a torn line."""
    return None not in row and None not in row.values() and row["step"].isdigit()
