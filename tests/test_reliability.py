"""Reliability of the command line as a careless user meets it: kill -9 during generate and
train, same seed -> same run in two processes, and a table of bad inputs, each of which
must exit with status 2 and a short message saying what is wrong and how to fix it.

The kill and determinism tests drive ``python -m vlaworks.cli`` in subprocesses; the table
runs the same entry point in-process (typer's runner) to stay fast, and a few of its rows
are repeated in a subprocess to pin the real exit status, stderr and ``--debug``.
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from vlaworks.cli import app
from vlaworks.data.lerobot import DatasetError, LeRobotDataset
from vlaworks.sim.generate import generate

pytestmark = pytest.mark.slow

CLI = [sys.executable, "-m", "vlaworks.cli"]
TIMEOUT = 1200  # seconds; a run takes ~10 s of CPU, but shared CI machines can starve it
ENV = {**os.environ, "MUJOCO_GL": os.environ.get("MUJOCO_GL", "egl")}
BASE_VIDEO = "videos/observation.images.base/chunk-000/file-000.mp4"
TINY = ["--recipe", "vlm4vla", "--image-size", "32", "--cameras", "base", "--batch-size", "2",
        "--set", "policy.chunk_size=4",
        "--set", "train.progress=false"]
# 6 steps, a checkpoint every 2, a CSV row every 3: a run killed after step 2 must carry
# steps 1-2 into the step-3 row to reproduce the uninterrupted CSV.
RUN = [*TINY, "--steps", "6", "--save-every", "2", "--set", "train.log_every=3", "--seed", "0"]


# -- helpers -----------------------------------------------------------------------------------


def _cli(*args: object, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    argv = [*CLI, *map(str, args)]
    return subprocess.run(argv, capture_output=True, text=True, env=env or ENV, timeout=TIMEOUT)


def _kill_when(args: list[object], ready: Callable[[], bool], log: Path) -> None:
    """Start the CLI with ``args``, SIGKILL it as soon as ``ready()`` holds."""
    with log.open("w") as err:
        proc = subprocess.Popen([*CLI, *map(str, args)], stdout=subprocess.DEVNULL, stderr=err, env=ENV)
    deadline = time.monotonic() + TIMEOUT
    try:
        while not ready():
            assert proc.poll() is None, f"ended before the kill point:\n{log.read_text()[-2000:]}"
            assert time.monotonic() < deadline, "the kill point was not reached in time"
            time.sleep(0.02)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _rows(run: Path) -> list[dict[str, str]]:
    """metrics.csv without samples_per_s, the wall-clock column (the one allowed to differ)."""
    with (run / "metrics.csv").open(newline="") as f:
        return [{k: v for k, v in row.items() if k != "samples_per_s"} for row in csv.DictReader(f)]


def _set_action_stats(root: Path, values: dict[tuple[str, int], float]) -> Path:
    """Overwrite single entries of ``meta/stats.json``'s action statistics: {(stat, dim): value}."""
    stats = json.loads((root / "meta/stats.json").read_text())
    for (name, dim), value in values.items():
        stats["action"][name][dim] = value
    (root / "meta/stats.json").write_text(json.dumps(stats))  # NaN is written as NaN, as careless tools do
    return root


# -- shared data and runs ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def home(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("reliability")


@pytest.fixture(scope="module")
def dataset(home) -> Path:
    generate(["spatial"], episodes=2, out=home / "data", image_size=32)
    return home / "data"


@pytest.fixture(scope="module")
def straight_run(home, dataset) -> Path:
    """The reference: the tiny run uninterrupted, in its own process."""
    result = _cli("train", *RUN, "--data", dataset, "--out", home / "straight")
    assert result.returncode == 0, result.stderr[-3000:]
    return home / "straight"


# -- kill -9 -----------------------------------------------------------------------------------


def test_killed_generate_leaves_no_dataset_and_the_rerun_recovers(tmp_path):
    out = tmp_path / "data"
    partial = lambda: any((p / "data").exists() for p in tmp_path.glob(".data.writing-*"))  # noqa: E731
    _kill_when(["generate", "--suite", "spatial", "--episodes", "50", "--out", out, "--image-size", "32"],
               partial, tmp_path / "generate.log")
    assert not out.exists()
    with pytest.raises(DatasetError, match="folder does not exist"):
        LeRobotDataset(out)
    assert _cli("check", out).returncode == 2
    rerun = _cli("generate", "--suite", "spatial", "--episodes", "1", "--out", out, "--image-size", "32")
    assert rerun.returncode == 0, rerun.stderr
    assert "removed partial dataset" in rerun.stderr and ".data.writing-" in rerun.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data", "generate.log"]
    assert _cli("check", out).returncode == 0


def test_killed_overwrite_keeps_the_old_dataset(dataset, tmp_path):
    out = tmp_path / "data"
    shutil.copytree(dataset, out)
    before = {p.relative_to(out): _sha(p) for p in out.rglob("*") if p.is_file()}
    partial = lambda: any((p / "data").exists() for p in tmp_path.glob(".data.writing-*"))  # noqa: E731
    _kill_when(["generate", "--suite", "goal", "--episodes", "50", "--out", out, "--image-size", "32",
                "--overwrite"], partial, tmp_path / "generate.log")
    assert {p.relative_to(out): _sha(p) for p in out.rglob("*") if p.is_file()} == before
    assert LeRobotDataset(out).num_episodes == 2


def test_same_seed_gives_the_same_run_in_another_process(straight_run, dataset, tmp_path):
    again = _cli("train", *RUN, "--data", dataset, "--out", tmp_path / "again")
    assert again.returncode == 0, again.stderr[-3000:]
    weights = "policy/model.safetensors"
    assert _sha(tmp_path / "again" / weights) == _sha(straight_run / weights)
    assert _rows(tmp_path / "again") == _rows(straight_run) and len(_rows(straight_run)) == 2


def test_training_killed_mid_run_resumes_to_the_same_weights_and_csv(straight_run, dataset, tmp_path):
    run = tmp_path / "run"
    args = ["train", *RUN, "--data", dataset, "--out", run]
    _kill_when(args, lambda: (run / "checkpoints/step-000002").is_dir(), tmp_path / "train.log")
    assert not (run / "policy").exists()  # killed mid-run, not after it finished
    resumed = _cli(*args)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert _sha(run / "policy/model.safetensors") == _sha(straight_run / "policy/model.safetensors")
    assert _rows(run) == _rows(straight_run)


def test_rerunning_a_finished_run_reports_its_final_loss(straight_run, dataset, tmp_path):
    run = shutil.copytree(straight_run, tmp_path / "run")
    result = CliRunner().invoke(app, ["train", *RUN, "--data", str(dataset), "--out", str(run)])
    assert result.exit_code == 0, result.output
    loss = float(re.search(r"final loss ([0-9.naninf]+)", result.output).group(1))
    assert "had already trained vlm4vla for 6 steps" in result.output and math.isfinite(loss)


def test_a_damaged_latest_checkpoint_falls_back_with_a_warning(straight_run, dataset, tmp_path):
    run = shutil.copytree(straight_run, tmp_path / "run", symlinks=True)
    weights = run / "checkpoints/step-000006/model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    result = CliRunner().invoke(app, ["train", *RUN, "--data", str(dataset), "--out", str(run)])
    assert result.exit_code == 0, result.output
    assert "step-000006/model.safetensors is truncated or corrupt" in result.stderr
    assert "Resuming from" in result.stderr and "step-000004" in result.stderr
    assert _sha(run / "policy/model.safetensors") == _sha(straight_run / "policy/model.safetensors")


# -- bad inputs --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def bad(home, dataset, straight_run) -> dict[str, Path]:
    """Folders for the table: damaged datasets, a foreign folder, runs and damaged policies."""
    paths = {"data": dataset}

    def copy(name: str) -> Path:
        return shutil.copytree(dataset, home / name)

    nan = math.nan
    paths["nan_meanstd"] = _set_action_stats(copy("nan_meanstd"), {("mean", 0): nan, ("std", 1): nan})
    paths["nan_q01"] = _set_action_stats(copy("nan_q01"), {("q01", 2): nan})
    paths["other"] = _set_action_stats(copy("other"), {("q99", 0): 0.5})
    truncated = copy("truncated")
    video = truncated / BASE_VIDEO
    video.write_bytes(video.read_bytes()[: video.stat().st_size // 2])
    paths["truncated"] = truncated
    foreign = home / "thesis"
    (foreign / "important").mkdir(parents=True)
    (foreign / "important/notes.txt").write_text("keep")
    (foreign / "thesis.tex").write_text("keep")
    paths["foreign"] = foreign
    paths["run"] = straight_run
    paths["run_copy"] = shutil.copytree(straight_run, home / "run_copy", symlinks=True)
    broken = shutil.copytree(straight_run, home / "broken_run", symlinks=True)
    for step in ("step-000004", "step-000006"):
        (broken / "checkpoints" / step / "optimizer.pt").write_bytes(b"PK\x03\x04 cut short")
    paths["broken_run"] = broken
    policy = shutil.copytree(straight_run / "policy", home / "bad_policy")
    weights = policy / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    paths["bad_policy"] = policy
    return paths


T = ["train", *TINY, "--steps", "2"]
TD = [*T, "--data", "{data}", "--out", "{missing}"]
GEN = ["generate", "--suite", "spatial", "--episodes", "1", "--out"]
EV = ["eval", "--policy", "expert", "--suite", "spatial", "--out", "{missing}"]
CMP = ["compare", "--recipe", "vlm4vla", "--data", "{data}", "--suite", "spatial", "--out", "{missing}"]
INVALID = "Invalid value for "
# (id, argv with {name} placeholders for the `bad` folders, message the output must hold)
BAD_INPUTS = [
    ("generate-overwrite-foreign", [*GEN, "{foreign}", "--overwrite"],
     "{foreign} is not a dataset folder (it holds important/, thesis.tex); --overwrite only"),
    ("generate-existing", [*GEN, "{data}"], "already holds a dataset; rerun with --overwrite"),
    ("generate-episodes-0", [*GEN, "{missing}", "--episodes", "0"], INVALID + "'--episodes'"),
    ("generate-suite", [*GEN, "{missing}", "--suite", "kitchen"], "unknown suite(s) ['kitchen']"),
    ("generate-image-size-0", [*GEN, "{missing}", "--image-size", "0"], INVALID + "'--image-size'"),
    ("generate-noise-negative", [*GEN, "{missing}", "--noise", "-1"], INVALID + "'--noise'"),
    ("generate-perturb", [*GEN, "{missing}", "--perturb", "fog"], "unknown perturbation family 'fog'"),
    ("generate-seed-negative", [*GEN, "{missing}", "--seed", "-1"], INVALID + "'--seed'"),
    ("render-image-size-0", ["render", "--out", "{missing}.png", "--image-size", "0"], INVALID + "'--image-"),
    ("check-problems", ["check", "{truncated}"], "1 problem(s) in {truncated}"),
    ("check-missing", ["check", "{missing}"], "No dataset at {missing}: the folder does not exist"),
    ("train-image-size-0", [*TD, "--image-size", "0"], INVALID + "'--image-size'"),
    ("train-lora-0", [*TD, "--lora", "0"], INVALID + "'--lora'"),
    ("train-lora-negative", [*TD, "--lora", "-4"], INVALID + "'--lora'"),
    ("train-cameras-empty", [*TD, "--cameras", ""], INVALID + "'--cameras': give distinct names"),
    ("train-cameras-blank-item", [*TD, "--cameras", "base,,wrist"], INVALID + "'--cameras'"),
    ("train-camera-unknown", [*TD, "--cameras", "side"], "Camera 'side' is not in dataset"),
    ("train-steps-0", [*TD, "--steps", "0"], INVALID + "'--steps'"),
    ("train-batch-size-0", [*TD, "--batch-size", "0"], INVALID + "'--batch-size'"),
    ("train-lr-0", [*TD, "--lr", "0"], "'--lr': must be a number > 0"),
    ("train-lr-negative", [*TD, "--lr", "-0.001"], "must be a number > 0"),
    ("train-save-every-negative", [*TD, "--save-every", "-1"], INVALID + "'--save-every'"),
    ("train-seed-negative", [*TD, "--seed", "-1"], INVALID + "'--seed'"),
    ("train-out-is-data", [*T, "--data", "{data}", "--out", "{data}"],
     "--out {data} is the dataset folder {data}; checkpoints would mix with the data"),
    ("train-out-in-data", [*T, "--data", "{data}", "--out", "{data}/run"], "is inside the dataset folder"),
    ("train-out-foreign", [*T, "--data", "{data}", "--out", "{foreign}"],
     "--out {foreign} is not a run folder (it holds important/, thesis.tex)"),
    ("train-data-missing", [*T, "--data", "{missing}", "--out", "{missing}-run"], "No dataset at {missing}"),
    ("train-nan-mean-std", [*T, "--data", "{nan_meanstd}", "--out", "{missing}"],
     "fails the integrity check: {nan_meanstd}/meta/stats.json: 'action' mean is NaN or inf at dims [0]"),
    ("train-nan-q01", [*T, "--data", "{nan_q01}", "--out", "{missing}"],
     "'action' q01 is NaN or inf at dims [2]; recompute them from the data with `vlaworks check"),
    ("train-truncated-video", [*T, "--data", "{truncated}", "--out", "{missing}"],
     f"{{truncated}}/{BASE_VIDEO} (episodes 0, 1): cannot be read: truncated or corrupt"),
    ("train-resume-other-data", ["train", *RUN, "--data", "{other}", "--out", "{run_copy}"],
     "Run {run_copy} was trained on {data} (fingerprint"),
    ("train-resume-other-seed", ["train", *RUN[:-1], "3", "--data", "{data}", "--out", "{run_copy}"],
     "trained with seed 0 but this run uses 3; resume with --seed 0, or pass --fresh"),
    ("train-corrupt-checkpoints", ["train", *RUN, "--data", "{data}", "--out", "{broken_run}"],
     "No usable checkpoint in {broken_run}/checkpoints: {broken_run}/checkpoints/step-000006/optimizer.pt is "
     "truncated or corrupt"),
    ("train-recipe", ["train", "--recipe", "nope", "--data", "{data}", "--out", "{missing}"],
     "Unknown recipe 'nope'; known: bc-cnn"),
    ("train-backbone", [*TD, "--backbone", "nope"], "'nope' is neither a registry name"),
    ("train-set-unknown", [*TD, "--set", "policy.nope=1"], "Unknown PolicyConfig key(s) ['nope']"),
    ("train-set-type", [*TD, "--set", "train.log_every=abc"], "TrainConfig.log_every must be an integer"),
    ("train-set-form", [*TD, "--set", "chunk"], "--set expects KEY=VALUE"),
    ("train-freeze", [*TD, "--freeze", "x"], "--freeze takes vision and/or embeddings"),
    ("eval-policy-missing", [*EV[:2], "{missing}", *EV[3:]], "is neither 'expert' nor a checkpoint folder"),
    ("eval-policy-truncated", [*EV[:2], "{bad_policy}", *EV[3:]],
     "{bad_policy}/model.safetensors is truncated or corrupt"),
    ("eval-episodes-0", [*EV, "--episodes", "0"], INVALID + "'--episodes'"),
    ("eval-workers-0", [*EV, "--workers", "0"], INVALID + "'--workers'"),
    ("eval-envs-per-worker-0", [*EV, "--envs-per-worker", "0"], INVALID + "'--envs-per-worker'"),
    ("eval-videos-negative", [*EV, "--videos", "-1"], INVALID + "'--videos'"),
    ("eval-chunk-exec", [*EV, "--chunk-exec", "twice"], "twice"),
    ("eval-suite", [*EV[:4], "nosuch", *EV[5:]], "unknown suite 'nosuch'"),
    ("compare-steps-0", [*CMP, "--steps", "0"], INVALID + "'--steps'"),
    ("compare-cameras-empty", [*CMP, "--cameras", ""], INVALID + "'--cameras'"),
    ("pretrain-samples-0", ["pretrain", "--out", "{missing}", "--samples", "0"], INVALID + "'--samples'"),
    ("pretrain-lr-0", ["pretrain", "--out", "{missing}", "--lr", "0"], "must be a number > 0"),
    ("probe-n-train-0", ["probe", "--policy", "{run}", "--out", "{missing}", "--n-train", "0"],
     INVALID + "'--n-train'"),
    ("demo-episodes-0", ["demo", "--out", "{missing}", "--episodes", "0"], INVALID + "'--episodes'"),
]


def _fill(text: str, paths: dict[str, Path]) -> str:
    return text.format(**{k: str(v) for k, v in paths.items()})


def _flat(text: str) -> str:
    """Output without rich's box drawing and line wrapping, for substring checks."""
    return " ".join(re.sub(r"[│╭╮╰╯─]", " ", text).split())


@pytest.mark.parametrize(("argv", "message"), [c[1:] for c in BAD_INPUTS], ids=[c[0] for c in BAD_INPUTS])
def test_bad_input_exits_2_with_a_short_message(bad, tmp_path, argv, message):
    paths = {**bad, "missing": tmp_path / "missing"}
    before = {p: sorted(q.name for q in p.rglob("*")) for p in (bad["foreign"], bad["data"])}
    result = CliRunner().invoke(app, [_fill(a, paths) for a in argv])
    assert result.exit_code == 2, f"{result.output}\n{result.exception!r}"
    assert _flat(_fill(message, paths)) in _flat(result.output)
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    if errors:  # our own errors: one line (usage errors are typer's own box)
        assert len(errors) == 1 and "Traceback" not in result.output
    assert {p: sorted(q.name for q in p.rglob("*")) for p in before} == before  # nothing touched
    assert list(tmp_path.iterdir()) == []  # nothing written


def test_subprocess_errors_are_one_line_and_debug_shows_the_traceback(bad, tmp_path):
    args = ["train", *TINY, "--data", bad["nan_q01"], "--out", tmp_path / "run"]
    plain = _cli(*args)
    assert plain.returncode == 2 and len(plain.stderr.strip().splitlines()) == 1
    assert plain.stderr.startswith("error: Dataset ") and plain.stdout == ""
    for debug in (_cli("--debug", *args), _cli(*args, env={**ENV, "VLAWORKS_DEBUG": "1"})):
        assert debug.returncode == 1 and "Traceback" in debug.stderr and "DatasetError" in debug.stderr
