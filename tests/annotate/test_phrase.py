"""Target phrases: every training instruction of the world, other wordings, the LM backend."""

from __future__ import annotations

import pytest

from vlaworks.annotate.phrase import LMPhrase, candidate_spans, phrase_extractor, rule_phrase
from vlaworks.sim.language import all_training_instructions
from vlaworks.sim.tasks import TASKS, Episode, ResolvedGoal


def test_rules_name_the_first_grasped_object_of_every_training_instruction():
    checked = 0
    for task in TASKS.values():
        goals = [ResolvedGoal(goal, None, None, None) for goal in task.goals]
        episode = Episode(task, goals, [], template_index=0)
        for text in all_training_instructions(episode):
            assert rule_phrase(text) == task.goals[0].obj.label, text
            checked += 1
    assert checked == 76  # every template x joiner x task wording (ambiguous suite included)


@pytest.mark.parametrize(
    ("instruction", "phrase"),
    [
        ("Put the Eggplant in Yellow Basket", "eggplant"),  # the seed's example
        ("pick up red cube", "red cube"),  # no determiner
        ("could you please set the green block down on the dish?", "green block"),
        ("first drop the yellow block into the basin; after that, stack the red block", "yellow block"),
        ("place the red block atop the blue block", "red block"),
    ],
)
def test_rules_on_other_wordings(instruction, phrase):
    assert rule_phrase(instruction) == phrase


def test_rules_and_specs_fail_with_a_fix():
    with pytest.raises(ValueError, match="--phrase lm:PATH"):
        rule_phrase("pick up the")
    with pytest.raises(ValueError, match="'rules' or 'lm:PATH'"):
        phrase_extractor("llama")
    with pytest.raises(FileNotFoundError, match="config.json is missing"):
        phrase_extractor("lm:/nonexistent/model")
    assert phrase_extractor("rules") is rule_phrase


def test_candidate_spans_cover_the_first_clause():
    spans = candidate_spans("lift the red cube, then push the bowl")
    assert spans[:4] == ["lift", "lift the", "lift the red", "lift the red cube"]
    assert "red cube" in spans and "bowl" not in spans


def test_lm_backend_loads_a_saved_causal_lm_and_answers_with_a_span(tiny_lm):
    extract = phrase_extractor(f"lm:{tiny_lm}")
    assert isinstance(extract, LMPhrase)
    text = "pick up the red cube and place it in the bowl"
    answer = extract(text)
    assert answer in candidate_spans(text)  # never free text, whatever the (random) weights
    assert extract(text) == answer
