"""VQA accuracy: scoring rules on hand examples, greedy decoding, accuracy and report."""

import numpy as np
import pytest
import torch
from torch import nn

from vlaworks.eval.vqa import (
    box_iou,
    parse_numbers,
    score_answer,
    vqa_accuracy,
    write_vqa_report,
)
from vlaworks.models.text_tokenizer import build_tiny_tokenizer
from vlaworks.processing import PolicyProcessor

torch.set_num_threads(1)



def random_images(n: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, 1, 3, 32, 32), dtype=torch.uint8, generator=g)

def test_exact_match_kinds_ignore_case_space_and_full_stop():
    assert score_answer("count", " 3 ", "3")
    assert not score_answer("count", "4", "3")
    assert score_answer("spatial", "Yes.", "yes")
    assert score_answer(
        "caption", "from left to right: a red cube  and a bowl", "From left to right: a red cube and a bowl."
    )
    assert not score_answer("spatial", "the blue cube", "the red cube")


def test_point_answers_within_tolerance():
    assert score_answer("point", "(0.45, 0.52)", "(0.40, 0.60)")
    assert score_answer("affordance", "at (0.30, 0.30)", "(0.40, 0.20)")  # exactly 0.1 away
    assert not score_answer("point", "(0.45, 0.75)", "(0.40, 0.60)")
    assert not score_answer("point", "(0.45", "(0.40, 0.60)")  # malformed
    assert not score_answer("point", "the red cube", "(0.40, 0.60)")


def test_box_answers_by_iou():
    truth = "[0.20, 0.20, 0.60, 0.60]"
    assert score_answer("box", "[0.22, 0.21, 0.61, 0.58]", truth)
    assert not score_answer("box", "[0.40, 0.40, 0.80, 0.80]", truth)  # IoU 1/7
    assert not score_answer("box", "[0.60, 0.60, 0.20, 0.20]", truth)  # inverted
    assert not score_answer("box", "[0.2, 0.2, 0.6]", truth)  # too few numbers
    assert box_iou([0, 0, 1, 1], [0, 0, 1, 1]) == 1.0
    assert box_iou([0, 0, 1, 1], [0.5, 0, 1.5, 1]) == pytest.approx(1 / 3)


def test_plan_answers_need_words_and_points():
    truth = "First grasp the red cube at (0.41, 0.52), then carry it to the bowl at (0.60, 0.47)."
    assert score_answer("plan", truth.replace("0.41", "0.45"), truth)
    assert not score_answer("plan", truth.replace("red", "blue"), truth)
    assert not score_answer("plan", truth.replace("0.47", "0.77"), truth)
    assert not score_answer("plan", "First grasp the red cube at (0.41, 0.52)", truth)
    assert parse_numbers("at (0.41, .5) and -2") == [0.41, 0.5, -2.0]




def test_policy_answers_match_backbone_decoding(chatty_backbone):
    from vlaworks.eval.vqa import answer_questions
    from vlaworks.models.config import PartSpec, PolicyConfig
    from vlaworks.models.heads import build_head
    from vlaworks.models.policy import VLAPolicy

    config = PolicyConfig(
        backbone="prismatic-tiny", head=PartSpec("query_mlp", {"mlp_width": 8}), chunk_size=2, image_size=32
    )
    policy = VLAPolicy(config, chatty_backbone, build_head(config.head, chatty_backbone, config)).eval()
    images = random_images(2, 1)[:, 0].permute(0, 2, 3, 1).numpy()
    prompts = ["point to the blue cube", "is the bowl left of the plate?"]
    assert answer_questions(policy, images, prompts, 6) == answer_questions(
        chatty_backbone, images, prompts, 6
    )


class OraclePolicy(nn.Module):
    """Answers from a lookup table: a policy that knows every true answer."""

    def __init__(self, answers: dict[str, str], cameras: tuple[str, ...]) -> None:
        super().__init__()
        self.answers = answers
        self.processor = PolicyProcessor(cameras, image_size=16)
        self.backbone = type("Backbone", (), {"tokenizer": build_tiny_tokenizer()})()
        self.seen_shapes: list[tuple[int, ...]] = []

    @property
    def device(self) -> torch.device:
        return torch.device("cpu")

    def answer(self, batch, max_new_tokens: int = 32) -> list[str]:
        self.seen_shapes.append(tuple(batch.images.shape))
        assert batch.images[:, 1:].eq(0).all()  # non-base views are black
        return [self.answers[p] for p in batch.vl_prompt]


def test_vqa_accuracy_per_kind_and_report(tmp_path):
    rng = np.random.default_rng(0)
    samples = [
        {
            "image": rng.integers(0, 255, (24, 24, 3), dtype=np.uint8),
            "prompt": f"q{i}",
            "answer": a,
            "kind": k,
        }
        for i, (a, k) in enumerate(
            [("3", "count"), ("yes", "spatial"), ("(0.10, 0.20)", "point"), ("2", "count")]
        )
    ]
    answers = {"q0": "3", "q1": "no", "q2": "(0.15, 0.25)", "q3": "1"}
    oracle = OraclePolicy(answers, ("base", "wrist"))
    result = vqa_accuracy(oracle, samples=samples, batch_size=3)
    assert result == {"count": 0.5, "point": 1.0, "spatial": 0.0, "overall": 0.5}
    assert oracle.seen_shapes == [(3, 2, 3, 16, 16), (1, 2, 3, 16, 16)]
    text = write_vqa_report(
        {"before": result, "after": {"count": 1.0, "overall": 1.0}}, tmp_path / "v.md"
    ).read_text()
    assert "| kind | before | after |" in text
    assert "| point | 100.0% | n/a |" in text and "| overall | 50.0% | 100.0% |" in text


def test_vqa_accuracy_on_generated_questions_runs(chatty_backbone):
    result = vqa_accuracy(chatty_backbone, n=4, image_size=32, max_new_tokens=4)
    assert "overall" in result and all(0.0 <= v <= 1.0 for v in result.values())


def test_run_vqa_comparison_scores_before_and_after(tmp_path):
    from vlaworks.data.normalize import Normalizer
    from vlaworks.eval.vqa import run_vqa_comparison
    from vlaworks.models.config import PartSpec, PolicyConfig
    from vlaworks.models.policy import build_policy

    config = PolicyConfig(
        backbone="prismatic-tiny",
        backbone_options={"image_size": 32},
        head=PartSpec("query_mlp", {"mlp_width": 8}),
        chunk_size=2,
        image_size=32,
        cameras=("base", "wrist"),
    )
    bounds = {"q01": [-1.0] * 7, "q99": [1.0] * 7}
    policy = build_policy(config, normalizer=Normalizer({"action": bounds}, keys=("action",)))
    results = run_vqa_comparison(policy, tmp_path / "vqa.md", n=3, image_size=32)
    assert set(results) == {"before", "after"}
    assert all("overall" in r for r in results.values())
    assert "| kind | before | after |" in (tmp_path / "vqa.md").read_text()
