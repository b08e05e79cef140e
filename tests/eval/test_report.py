from vlaworks.eval.report import compare_report, markdown_table, write_report
from vlaworks.eval.results import EpisodeResult, EvalResult


def _result(policy, successes, perturb=()):
    episodes = [
        EpisodeResult("spatial", task, k, seed=k, success=ok, length=10 + k)
        for task, oks in successes.items()
        for k, ok in enumerate(oks)
    ]
    return EvalResult(policy, ["spatial"], 4, "full", list(perturb), 0, 64, episodes)


def test_markdown_table_rows_and_numbers():
    r = _result("p", {"spatial/a": [True, True, False, True], "spatial/b": [False] * 4})
    table = markdown_table(r)
    assert "| **spatial** | **all tasks** | **37.5** | [13.7, 69.4] | 8 | 11.5 |" in table
    assert "| spatial | spatial/a | 75.0 | [30.1, 95.4] | 4 | 11.5 |" in table
    assert "| spatial | spatial/b | 0.0 | [0.0, 49.0] | 4 | 11.5 |" in table


def test_write_report_files(tmp_path):
    r = _result("p", {"spatial/a": [True, False]})
    paths = write_report(r, tmp_path)
    assert {p.name for p in paths.values()} == {"results.json", "success.png", "report.md"}
    assert (tmp_path / "success.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "overall success: 50.0% [9.5, 90.5] (n=2)" in (tmp_path / "report.md").read_text()


def test_compare_report_side_by_side(tmp_path):
    expert = _result("expert", {"spatial/a": [True] * 4, "spatial/b": [True] * 4})
    policy = _result("ckpt", {"spatial/a": [True, False, False, False]}, perturb=["camera:1.0"])
    paths = compare_report([expert, policy], ["expert", "policy"], tmp_path, title="policy vs expert")
    md = paths["markdown"].read_text()
    assert "| suite | task | expert | policy |" in md
    assert "| spatial | spatial/a | 100.0% [51.0, 100.0] (n=4) | 25.0% [4.6, 69.9] (n=4) |" in md
    assert "| spatial | spatial/b | 100.0% [51.0, 100.0] (n=4) | - |" in md
    assert "perturb=camera:1.0" in md
    assert paths["plot"].read_bytes()[:4] == b"\x89PNG"
