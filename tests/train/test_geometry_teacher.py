"""Training the geometry teacher: back-projection by hand, world points of rendered frames on the
table and floor planes, a tiny training run with its report, and the cache that trains once."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
import torch

from vlaworks.miniature import TEACHER_SEED_OFFSET, teacher_seed
from vlaworks.models.geometry.teacher import BUILTIN_TEACHER, GeometryNet, GeometryNetConfig, load_teacher
from vlaworks.train import geometry_teacher
from vlaworks.train.geometry_teacher import TeacherSettings, cached_folder, render_frames, world_points

TINY = TeacherSettings(
    suites=("spatial",), episodes=1, heldout=1, stride=4, max_steps=12, steps=2, batch_size=2,
    image_size=32, net=GeometryNetConfig(image_size=32, width=16, layers=1, heads=2),
)


def test_world_points_back_project_by_hand() -> None:
    """Pixel (u, v) = (3, 1) of a 4 x 4 view at depth 2 through f = 2, c = (2, 2), a camera at
    (1, 0, 0) looking along world +x with OpenCV axes (x right = world -y, y down = world -z)."""
    depth = torch.full((4, 4), 2.0)
    k = torch.tensor([[2.0, 0, 2], [0, 2.0, 2], [0, 0, 1]])
    t = torch.eye(4)
    t[:3, :3] = torch.tensor([[0.0, 0, 1], [-1, 0, 0], [0, -1, 0]])
    t[:3, 3] = torch.tensor([1.0, 0, 0])
    points = world_points(depth, k, t)
    cam = torch.tensor([(3.5 - 2) / 2 * 2, (1.5 - 2) / 2 * 2, 2.0])  # (1.5, -0.5, 2)
    torch.testing.assert_close(points[:, 1, 3], t[:3, :3] @ cam + t[:3, 3])
    torch.testing.assert_close(points[:, 1, 3], torch.tensor([3.0, -1.5, 0.5]))


def test_rendered_points_lie_on_the_table_and_floor_in_both_views() -> None:
    frames = render_frames(TINY, heldout=False)
    assert frames.images.shape[1:] == (2, 32, 32, 3) and len(frames) == 3  # steps 0, 4, 8
    _, depth, points = frames.tensors(np.arange(len(frames)))
    assert points.shape == (3, 2, 3, 32, 32) and (depth > 0).all()
    assert frames.foreground.shape == (3, 2, 32, 32) and frames.foreground[:, 0].any()
    z = points[:, :, 2]
    on_plane = (z.abs() < 0.01) | ((z + 0.75).abs() < 0.01)  # table top at 0, floor at -0.75
    assert on_plane[:, 0].float().mean() > 0.6 and on_plane[:, 1].float().mean() > 0.3
    held = render_frames(TINY, heldout=True)
    assert not np.array_equal(held.images[0], frames.images[0])


def test_seeds_are_their_own_block() -> None:
    seeds = {
        teacher_seed(s, h, i, e) for s in (0, 1) for h in (False, True) for i in range(4) for e in range(50)
    }
    assert len(seeds) == 2 * 2 * 4 * 50 and min(seeds) >= TEACHER_SEED_OFFSET > 2**32


def test_tiny_training_writes_a_loadable_teacher_and_its_report(tmp_path) -> None:
    report = geometry_teacher.train_teacher(TINY, tmp_path / "teacher")
    assert report["train_frames"] == 3 and np.isfinite(report["final_loss"])
    for view in ("base", "wrist"):
        metrics = report["heldout"][view]
        assert set(metrics) == {
            "abs_rel", "rmse_m", "delta1", "point_error_cm", "baseline_abs_rel", "baseline_rmse_m",
            "foreground_share", "foreground_abs_rel", "foreground_baseline_abs_rel",
        }
        assert all(np.isfinite(v) and v >= 0 for v in metrics.values())
    assert json.loads((tmp_path / "teacher" / "report.json").read_text())["heldout"] == report["heldout"]
    assert "| base |" in (tmp_path / "teacher" / "report.md").read_text()
    teacher = load_teacher(str(tmp_path / "teacher"))
    assert isinstance(teacher, GeometryNet) and teacher.dim == 16


def test_the_cache_trains_once_per_settings(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("VLAWORKS_CACHE", str(tmp_path))
    calls = []

    def fake_train(settings, out):
        calls.append(settings)
        torch.manual_seed(0)
        GeometryNet(settings.net).save(out)

    monkeypatch.setattr(geometry_teacher, "train_teacher", fake_train)
    folder = geometry_teacher.cached_teacher(TINY)
    assert folder == cached_folder(TINY) and folder.parent == tmp_path / "geometry"
    assert folder.name == f"{BUILTIN_TEACHER}-{TINY.digest()}"
    assert geometry_teacher.cached_teacher(TINY) == folder and calls == [TINY]
    assert not list(tmp_path.glob("geometry/.*.tmp"))
    other = replace(TINY, steps=3)
    assert other.digest() != TINY.digest() and geometry_teacher.cached_teacher(other) != folder
    assert len(calls) == 2
    with pytest.raises(ValueError, match="must equal the frames'"):
        replace(TINY, image_size=64)
    with pytest.raises(ValueError, match="must be >= 1"):
        replace(TINY, steps=0)


def test_cli_trains_into_a_new_folder_only(tmp_path) -> None:
    from typer.testing import CliRunner

    from vlaworks.cli import app

    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "x").write_text("")
    result = CliRunner().invoke(app, ["geometry-teacher", "--out", str(tmp_path / "busy")])
    assert result.exit_code == 2 and "is not empty; name a new folder" in result.output
