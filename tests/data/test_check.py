"""The dataset integrity pass: each kind of damage is reported with its file, episodes and fix."""

from __future__ import annotations

import json
import math

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from vlaworks.data import layout
from vlaworks.data.check import check_dataset, recompute_stats
from vlaworks.data.lerobot import DatasetError, LeRobotDataset
from vlaworks.data.normalize import Normalizer

DATA = "data/chunk-000/file-000.parquet"
BASE = "videos/observation.images.base/chunk-000/file-000.mp4"
EPISODES = "meta/episodes/chunk-000/file-000.parquet"


def _edit_stats(root, key, name, dim, value):
    path = root / "meta/stats.json"
    stats = json.loads(path.read_text())
    stats[key][name][dim] = value
    path.write_text(json.dumps(stats))  # json writes NaN as NaN, as a careless tool would


def _only_problem(root):
    report = check_dataset(root)
    assert len(report.problems) == 1, [str(p) for p in report.problems]
    return report.problems[0]


def test_clean_dataset_passes(write_dataset):
    root, _ = write_dataset()
    report = check_dataset(root)
    assert report.ok and report.episodes == 3 and report.frames == 19
    report.raise_for_problems()


def test_truncated_video_names_file_episodes_and_fix(write_dataset):
    root, _ = write_dataset()
    path = root / BASE
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    problem = _only_problem(root)
    assert problem.file == path and problem.episodes == (0, 1, 2)
    assert "truncated or corrupt" in str(problem) and "regenerate the dataset" in str(problem)
    with pytest.raises(DatasetError, match=r"fails the integrity check: .*file-000.mp4 \(episodes 0, 1, 2\)"):
        check_dataset(root).raise_for_problems()


def test_video_frames_must_match_episode_lengths(write_dataset):
    root, _ = write_dataset()
    rows = pq.read_table(root / EPISODES).to_pylist()
    rows[1]["videos/observation.images.base/from_timestamp"] = 5.0  # a span the file does not hold
    pq.write_table(pa.Table.from_pylist(rows), root / EPISODES)
    problem = _only_problem(root)
    assert problem.episodes == (1,) and "holds 0 frames for episode 1 of length 9" in problem.what


@pytest.mark.parametrize(("name", "value"), [("mean", math.nan), ("std", math.inf), ("q01", math.nan)])
def test_non_finite_stats_are_reported_and_recomputed(write_dataset, name, value):
    root, _ = write_dataset()
    _edit_stats(root, "action", name, 2, value)
    problem = _only_problem(root)
    assert problem.file == root / "meta/stats.json"
    assert f"'action' {name} is NaN or inf at dims [2]" in problem.what and "--recompute-stats" in problem.fix
    recompute_stats(root)
    assert check_dataset(root).ok


def test_zero_spread_is_an_error_unless_the_dimension_is_constant(write_dataset):
    root, _ = write_dataset()
    _edit_stats(root, "observation.state", "std", 3, 0.0)
    assert "'observation.state' std is <= 0 at dims [3] although the values vary" in _only_problem(root).what
    stats = json.loads((root / "meta/stats.json").read_text())
    for name in ("min", "max", "q01", "q99", "mean"):
        stats["observation.state"][name][3] = 0.5
    (root / "meta/stats.json").write_text(json.dumps(stats))
    report = check_dataset(root)
    assert report.ok and any("'observation.state' is constant at dims [3]" in n for n in report.notes)


def test_missing_action_stats_and_unparsable_stats(write_dataset):
    root, _ = write_dataset()
    stats = json.loads((root / "meta/stats.json").read_text())
    (root / "meta/stats.json").write_text(json.dumps({"observation.state": stats["observation.state"]}))
    assert "no statistics for 'action'" in _only_problem(root).what
    (root / "meta/stats.json").write_text("{broken")
    with pytest.raises(DatasetError, match="stats.json is not valid JSON"):
        check_dataset(root)
    recompute_stats(root)
    assert check_dataset(root).ok


def test_non_finite_actions_and_wrong_row_counts_name_the_episodes(write_dataset):
    root, _ = write_dataset()
    table = pq.read_table(root / DATA)
    action = layout.from_arrow(table.column("action"), (7,)).copy()
    action[8, 1] = np.nan  # frame 2 of episode 1
    episode = table.column("episode_index").to_numpy().copy()
    episode[15] = 1  # a frame of episode 2 relabelled: totals still match, per-episode counts do not
    columns = {"action": layout.to_arrow({"shape": [7]}, action), "episode_index": pa.array(episode)}
    for key, column in columns.items():
        table = table.set_column(table.column_names.index(key), key, column)
    pq.write_table(table, root / DATA)
    problems = {p.what.split(" ")[0]: p for p in check_dataset(root).problems}
    assert problems["'action'"].episodes == (1,) and problems["'action'"].file == root / DATA
    assert "NaN or inf in 1 frame(s)" in problems["'action'"].what
    assert problems["holds"].episodes == (1, 2) and "holds 10 rows for episode 1" in problems["holds"].what


def test_normalizer_refuses_non_finite_bounds(write_dataset):
    root, _ = write_dataset(lengths=(3,))
    stats = LeRobotDataset(root).stats
    stats["action"]["q01"][4] = math.nan
    with pytest.raises(ValueError, match=r"'action': q01 is NaN or inf at dims \[4\]; recompute"):
        Normalizer(stats, keys=("action",))
    Normalizer(stats, mode="meanstd", keys=("action",))  # q01 is not used in this mode
