"""Instruction rewording: seeded, always a change, meaning-preserving on the world's training
instructions, and held out from the evaluation's language perturbation."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from functools import cache

import pytest
import torch

from vlaworks.data.instructions import (
    JOINERS,
    VERB_SYNONYMS,
    WRAPPERS,
    augment_instruction,
    rewrite_instruction,
)
from vlaworks.sim import language
from vlaworks.sim.tasks import DIRECTIONS, TASKS, Episode, ResolvedGoal

#: draws per training instruction in the sampled checks
DRAWS = 40


def _words(texts: Iterable[str]) -> set[str]:
    return {w for t in texts for w in re.findall(r"[a-z']+", re.sub(r"\{\w+\}", " ", t.lower()))}


def _episodes() -> Iterator[Episode]:
    for task in TASKS.values():
        goals = [ResolvedGoal(goal, None, None, None) for goal in task.goals]
        yield Episode(task, goals, [], template_index=0)


@cache
def _training_instructions() -> tuple[tuple[Episode, str], ...]:
    return tuple((ep, text) for ep in _episodes() for text in sorted(language.all_training_instructions(ep)))


def _paraphrases(episode: Episode) -> set[str]:
    """Every wording of the language perturbation (tiers 1-4) for ``episode``: the choice bits
    ``instruction`` reads (template per goal, joiner, wrapper, context) over all their values."""
    choices = [
        t0 | t1 << 3 | j << 9 | w << 12 | c << 14
        for t0 in range(2) for t1 in range(2) for j in range(2) for w in range(3) for c in range(3)
    ]
    return {language.instruction(episode, tier, c) for tier in range(1, 5) for c in choices}


def _rewrites(text: str) -> list[str]:
    out = []
    for seed in range(DRAWS):
        torch.manual_seed(seed)
        out.append(rewrite_instruction(text))
    return out


#: words of the evaluation's paraphrase pools (vlaworks.sim.language)
EVAL_WORDS = _words(
    [
        *(t for ts in language.PARAPHRASE_TEMPLATES.values() for t in ts),
        *language.PARAPHRASE_JOINERS,
        *language.SPATIAL_PARAPHRASES.values(),
        *language.SYNONYMS.values(),
        *language.WRAPPERS,
        *language.DESCRIPTIONS.values(),
        *language.CONTEXTS,
    ]
)
#: words the training instructions already contain (templates, joiners, spatial phrases, names)
TRAIN_WORDS = _words(
    [
        *(t for ts in language.TRAIN_TEMPLATES.values() for t in ts),
        *language.TRAIN_JOINERS,
        *language.SPATIAL_PHRASES.values(),
        *(text for _, text in _training_instructions()),
        *DIRECTIONS,
    ]
)


def test_rewording_is_seeded_and_always_a_change() -> None:
    text = "pick up the leftmost red cube and place it in the bowl"
    assert _rewrites(text) == _rewrites(text)
    assert len(set(_rewrites(text))) > DRAWS // 2
    assert text not in _rewrites(text)
    assert _rewrites("Put the Eggplant in Yellow Basket.")[0] != "Put the Eggplant in Yellow Basket."


def test_probability_zero_draws_nothing_and_one_always_rewords() -> None:
    torch.manual_seed(3)
    state = torch.get_rng_state()
    assert augment_instruction("lift the red cube", 0.0) == "lift the red cube"
    assert torch.equal(torch.get_rng_state(), state)
    assert all(augment_instruction("lift the red cube", 1.0) != "lift the red cube" for _ in range(20))


def test_rewording_keeps_the_object_destination_and_direction_words() -> None:
    """Every training instruction of the world: the phrases naming the objects (colour,
    spatial word, anchor) and the push direction survive verbatim and in order."""
    checked = 0
    for episode, text in _training_instructions():
        for goal in (rg.goal for rg in episode.goals):
            phrases = [language.describe(goal.obj)]
            if goal.dest is not None:
                phrases.append(language.describe(goal.dest))
            if goal.direction:
                phrases.append(f"the {goal.direction}")
            pattern = re.compile(".*".join(rf"\b{re.escape(p)}\b" for p in phrases))
            for rewritten in _rewrites(text):
                assert pattern.search(rewritten), (text, rewritten)
                checked += 1
    assert checked > 76 * DRAWS


def test_rewordings_are_never_an_evaluation_paraphrase() -> None:
    def plain(text: str) -> str:
        return text.lower().rstrip(" .!?")

    for episode in _episodes():
        paraphrases = {plain(p) for p in _paraphrases(episode)}
        for text in language.all_training_instructions(episode):
            rewritten = {plain(r) for r in _rewrites(text)}
            assert not rewritten & paraphrases, text


def test_rewording_words_are_disjoint_from_the_evaluation_pools() -> None:
    """The rewriter's tables and everything it wrote for the world's instructions bring no word
    of the evaluation's paraphrase pools that training instructions do not already have."""
    tables = [*(w for ws in VERB_SYNONYMS.values() for w in ws), *JOINERS, *WRAPPERS]
    assert not (_words(tables) - TRAIN_WORDS) & EVAL_WORDS
    written = _words(r for _, text in _training_instructions() for r in _rewrites(text))
    new = written - TRAIN_WORDS
    assert new and not new & EVAL_WORDS, sorted(new & EVAL_WORDS)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("put the red cube in the bowl", {"position", "get", "lay"}),
        ("push the green cylinder to the left", {"shift", "scoot", "slide"}),
        ("open the drawer", {"pull"}),
    ],
)
def test_verbs_are_swapped_at_clause_starts(text: str, expected: set[str]) -> None:
    first = {r.lower().split()[0].strip(",") for r in _rewrites(text)}
    assert first & expected


def test_and_between_objects_is_not_a_clause_boundary() -> None:
    for rewritten in _rewrites("put both the soup and the sauce in the basket"):
        assert "the soup and the sauce" in rewritten
