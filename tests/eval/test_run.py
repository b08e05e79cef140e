import json
from dataclasses import replace

import pytest
from eval_fakes import greedy_policy, make_fake_env, noisy_policy

from vlaworks.eval.results import EvalResult
from vlaworks.eval.run import evaluate


def _eval(tmp_path, name, policy=noisy_policy, **kw):
    kw = {"episodes": 3, "videos": 0, "image_size": 8, **kw}
    return evaluate(policy, ["toy"], out=tmp_path / name, env_factory=make_fake_env, quiet=True, **kw)


def test_evaluate_writes_report_with_the_numbers(tmp_path):
    result = _eval(tmp_path, "run", policy="expert", episodes=4, videos=1, perturb=["lighting:0.5"])
    out = tmp_path / "run"
    assert [e.task for e in result.episodes] == ["toy/reach"] * 4 + ["toy/reach_far"] * 4
    assert result.suite_summary("toy").n == 8
    assert result.overall().rate == 1.0  # the fake expert always reaches the goal
    data = json.loads((out / "results.json").read_text())
    assert data["perturbations"] == ["lighting:0.5"]
    assert data["summary"]["toy"]["tasks"]["toy/reach"]["successes"] == 4
    assert EvalResult.load(out) == result
    report = (out / "report.md").read_text()
    low, high = result.suite_summary("toy").ci_low, result.suite_summary("toy").ci_high
    assert f"[{100 * low:.1f}, {100 * high:.1f}]" in report
    assert "| toy | toy/reach_far | 100.0 |" in report
    assert "lighting:0.5" in report
    assert (out / "success.png").stat().st_size > 0
    videos = sorted(p.relative_to(out).as_posix() for p in out.glob("videos/**/*.mp4"))
    assert videos == sorted(e.video for e in result.episodes if e.video)
    assert len(videos) == 2  # first episode of each task


def test_same_seed_same_results_and_other_seed_differs(tmp_path):
    a = _eval(tmp_path, "a", seed=3)
    b = _eval(tmp_path, "b", seed=3)
    c = _eval(tmp_path, "c", seed=4)
    assert a.episodes == b.episodes
    assert [e.seed for e in a.episodes] != [e.seed for e in c.episodes]


def test_multi_worker_results_identical_to_single_worker(tmp_path):
    one = _eval(tmp_path, "w1", workers=1, envs_per_worker=2)
    two = _eval(tmp_path, "w2", workers=2, envs_per_worker=2)
    assert one.episodes == two.episodes
    assert any(not e.success for e in one.episodes) or any(e.length > 10 for e in one.episodes)


def test_batched_inference_matches_one_env_at_a_time_for_a_deterministic_policy(tmp_path):
    single = _eval(tmp_path, "s", policy=greedy_policy, envs_per_worker=1)
    batched = _eval(tmp_path, "b", policy=greedy_policy, envs_per_worker=3)
    assert single.episodes == batched.episodes


def test_chunk_mode_is_recorded_and_changes_predictions(tmp_path):
    full = _eval(tmp_path, "full", policy=greedy_policy, chunk_exec="full")
    single = _eval(tmp_path, "one", policy=greedy_policy, chunk_exec="1")
    assert (full.chunk_exec, single.chunk_exec) == ("full", "1")

    def strip(r):
        return [replace(e, predictions=0) for e in r.episodes]

    assert strip(full) == strip(single)  # a constant greedy chunk: same trajectory, fewer predictions
    assert all(e.predictions == e.length for e in single.episodes)
    assert all(e.predictions == -(-e.length // 4) for e in full.episodes)


def test_bad_arguments_name_the_fix(tmp_path):
    with pytest.raises(ValueError, match="FAMILY:SEVERITY"):
        _eval(tmp_path, "x", perturb=["lighting"])
    with pytest.raises(ValueError, match="'full', 'half'"):
        _eval(tmp_path, "x", chunk_exec="all")
    with pytest.raises(FileNotFoundError, match="neither .expert."):
        _eval(tmp_path, "x", policy=str(tmp_path / "missing"))


def test_task_filter_accepts_full_ids_and_short_names(tmp_path):
    result = _eval(tmp_path, "f", episodes=2, tasks=["reach_far"])
    assert {e.task for e in result.episodes} == {"toy/reach_far"}
    assert _eval(tmp_path, "g", episodes=1, tasks=["toy/reach"]).tasks("toy") == ["toy/reach"]
    with pytest.raises(ValueError, match=r"Unknown task\(s\) \['nope'\]"):
        _eval(tmp_path, "h", tasks=["reach", "nope"])


def test_progress_is_printed_line_by_line_when_the_output_is_not_a_terminal(tmp_path, capsys):
    kw = {"episodes": 2, "videos": 0, "image_size": 8, "envs_per_worker": 2}
    evaluate("expert", ["toy"], out=tmp_path / "log", env_factory=make_fake_env, **kw)
    lines = capsys.readouterr().out.splitlines()
    assert [line for line in lines if line.endswith("successes")] == [
        "2/4 episodes, 2 successes",
        "4/4 episodes, 4 successes",
    ]
