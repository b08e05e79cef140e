"""``vlaworks annotate`` end to end on generated episodes: an annotated copy that reads back,
ground-truth IoU, atomic and refusing writes, one-line errors."""

from __future__ import annotations

import filecmp

import numpy as np
import pytest
from typer.testing import CliRunner

from vlaworks.annotate.pipeline import AnnotateSettings, annotate_dataset
from vlaworks.cli import app
from vlaworks.data.annotations import read_annotations
from vlaworks.data.lerobot import LeRobotDataset

runner = CliRunner()


def _invoke(args: list[str], code: int = 0) -> str:
    result = runner.invoke(app, [str(a) for a in args])
    assert result.exit_code == code, f"{args}: {result.output}\n{result.exception!r}"
    return result.output


def test_cli_writes_a_copy_that_reads_back_with_its_annotations(spatial_demos, tmp_path):
    out, report = tmp_path / "annotated", tmp_path / "report.md"
    text = _invoke(["annotate", spatial_demos, "--out", out, "--backend", "oracle", "--report", report])
    assert "| oracle | oracle | 2 | 2 (100.0%) | 100.0% | 1.000 | 100.0% | 1.000 |" in text
    assert report.read_text() in text
    source, copy = LeRobotDataset(spatial_demos), LeRobotDataset(out)
    assert copy.num_episodes == 2 and copy.features == source.features
    for video in sorted((spatial_demos / "videos").rglob("*.mp4")):  # copied, not re-encoded
        assert filecmp.cmp(video, out / video.relative_to(spatial_demos), shallow=False)
    annotations = read_annotations(out)
    assert sorted(annotations) == [0, 1]
    for index, a in annotations.items():
        episode = copy.episode(index)
        assert a.valid and a.backend == "oracle" and a.camera == "base" and a.phrase == "red cube"
        assert episode["action"][a.key_frame, 6] > 0 >= episode["action"][a.key_frame - 1, 6]
        segmentation = episode["observation.segmentation.base"][a.key_frame]
        target = segmentation == episode["observation.segmentation.target"][a.key_frame]
        np.testing.assert_array_equal(a.pixel_mask(), target)
        assert a.mask.shape == (64, 64) and len(a.points) == 3
        x0, y0, x1, y1 = a.proposal
        assert x0 < a.box[0] + 1e-6 and a.box[2] < x1 + 1e-6  # the target lies in the proposal
        kinds = [p.kind for p in a.visual_prompts()]
        assert kinds == ["point", "point", "point", "line", "box", "mask"]


def test_classical_backend_with_motion_gripper_and_overwrite(spatial_demos, tmp_path):
    out = tmp_path / "annotated"
    settings = AnnotateSettings(backend="classical", gripper="motion", points=2, seed=3)
    report = annotate_dataset(spatial_demos, out, settings)
    assert report["episodes"] == 2 and report["gripper"] == "motion" and report["episodes_per_s"] > 0
    assert report["iou_segmented"] is not None and 0.0 <= report["iou_segmented"] <= 1.0
    first = read_annotations(out)
    assert all(a.backend == "classical" for a in first.values())
    assert sum(a.valid for a in first.values()) == report["kept"]
    with pytest.raises(FileExistsError, match="--overwrite"):
        annotate_dataset(spatial_demos, out, settings)
    annotate_dataset(spatial_demos, out, settings, overwrite=True)
    again = read_annotations(out)
    assert [a.points for a in again.values()] == [a.points for a in first.values()]  # seeded
    assert sorted(p.name for p in tmp_path.iterdir()) == ["annotated"]  # no leftovers


def test_bad_input_fails_in_one_line(spatial_demos, tmp_path):
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "todo.txt").write_text("keep me")
    cases = [
        (["--backend", "yolo"], "Unknown --backend 'yolo'"),
        (["--camera", "top"], "Camera 'top' is not in dataset"),
        (["--gripper", "magic"], "--gripper must be auto, oracle or motion"),
        (["--phrase", "gpt"], "Unknown phrase extractor 'gpt'"),
        (["--out", tmp_path / "notes"], "is not a dataset folder"),
        (["--out", spatial_demos], "--out must be a new folder"),
    ]
    for extra, message in cases:
        args = ["annotate", spatial_demos, "--out", tmp_path / "x", *extra]
        output = _invoke(args, code=2)
        assert message in output and "Traceback" not in output, output
    assert (tmp_path / "notes" / "todo.txt").read_text() == "keep me"
    missing = _invoke(["annotate", tmp_path / "nothing", "--out", tmp_path / "x"], code=2)
    assert "No dataset at" in missing
    assert not (tmp_path / "x").exists()


def test_oracle_needs_ground_truth(tmp_path):
    from vlaworks.sim.generate import generate

    plain = tmp_path / "plain"
    generate(["spatial"], episodes=1, out=plain, image_size=32, layout="fixed")
    output = _invoke(["annotate", plain, "--out", tmp_path / "x", "--backend", "oracle"], code=2)
    assert "generate --segmentation" in output
    text = _invoke(["annotate", plain, "--out", tmp_path / "x"])  # classical + motion needs none
    assert "| classical | motion | 1 |" in text and "n/a" in text
