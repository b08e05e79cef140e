"""Instructions from templates, and held-out paraphrases for the language perturbation.

Training instructions come from :data:`TRAIN_TEMPLATES`; the paraphrase pools
(:data:`PARAPHRASE_TEMPLATES`, :data:`SYNONYMS`, :data:`WRAPPERS`) share no template
with them, so a paraphrased instruction is never one seen in training. Severity picks a
tier (:func:`severity_tier`): tier 1 swaps nouns for synonyms, tier 2 also rewrites the verb
phrase, tier 3 also wraps the request in conversational filler, and tier 4 (the top of the
LIBERO-Plus calibration, whose strongest rewrites name objects by description and add
irrelevant context) names objects by :data:`DESCRIPTIONS` and prefixes a :data:`CONTEXTS`
sentence.
"""

from __future__ import annotations

from vlaworks.sim.tasks import Episode, Goal, ObjRef

TRAIN_TEMPLATES: dict[str, tuple[str, ...]] = {
    "place_in": ("put the {obj} in the {dest}", "pick up the {obj} and place it in the {dest}"),
    "place_on": ("put the {obj} on the {dest}", "pick up the {obj} and place it on the {dest}"),
    "stack": ("stack the {obj} on the {dest}", "put the {obj} on top of the {dest}"),
    "lift": ("pick up the {obj}", "lift the {obj}"),
    "push": ("push the {obj} to the {direction}", "slide the {obj} to the {direction}"),
}
TRAIN_JOINERS = ("{a} and then {b}", "{a}, then {b}")
SPATIAL_PHRASES = {
    "leftmost": "leftmost {label}",
    "rightmost": "rightmost {label}",
    "front": "{label} at the front",
    "back": "{label} at the back",
    "nearest_bowl": "{label} closest to the bowl",
    "left_of": "{label} left of the {anchor}",
    "this": "{label} that I am pointing at",
}

PARAPHRASE_TEMPLATES: dict[str, tuple[str, ...]] = {
    "place_in": ("drop the {obj} into the {dest}", "move the {obj} so that it ends up inside the {dest}"),
    "place_on": ("set the {obj} down on the {dest}", "transfer the {obj} onto the {dest}"),
    "stack": ("place the {obj} atop the {dest}", "build a tower with the {obj} above the {dest}"),
    "lift": ("grab the {obj} and raise it", "raise the {obj} off the table"),
    "push": ("nudge the {obj} toward the {direction}", "shove the {obj} over to the {direction} side"),
}
PARAPHRASE_JOINERS = ("first {a}; after that, {b}", "{a}. Once done, {b}")
SPATIAL_PARAPHRASES = {
    "leftmost": "{label} furthest to the left",
    "rightmost": "{label} furthest to the right",
    "front": "{label} nearest to you",
    "back": "{label} farthest from you",
    "nearest_bowl": "{label} next to the bowl",
    "left_of": "{label} on the left side of the {anchor}",
    "this": "{label} that I am showing you",
}
SYNONYMS = {"cube": "block", "cylinder": "can", "bowl": "basin", "plate": "dish"}
WRAPPERS = ("could you please {x}?", "your job: {x}.", "I need you to {x}, thanks.")
DESCRIPTIONS = {
    "cube": "small square {color} block",
    "cylinder": "short round {color} can",
    "bowl": "deep round container",
    "plate": "flat round dish",
}
CONTEXTS = (
    "The table got messy after lunch.",
    "We are tidying up before the guests arrive.",
    "Thanks for your help earlier today.",
)


def _noun(ref: ObjRef, tier: int) -> str:
    if tier >= 4:
        return " ".join(DESCRIPTIONS[ref.kind].format(color=ref.color).split())
    kind = SYNONYMS[ref.kind] if tier >= 1 else ref.kind
    return f"{ref.color} {kind}" if ref.color else kind


def describe(ref: ObjRef, tier: int = 0) -> str:
    """The phrase naming ``ref`` (tier 0: training wording; >= 1: synonyms; >= 2: paraphrased;
    >= 4: described)."""
    label = _noun(ref, tier)
    if not ref.spatial:
        return label
    table = SPATIAL_PARAPHRASES if tier >= 2 else SPATIAL_PHRASES
    anchor = _noun(ref.anchor, tier) if ref.anchor is not None else ""
    return table[ref.spatial].format(label=label, anchor=anchor)


def _goal_text(goal: Goal, choice: int, tier: int) -> str:
    templates = (PARAPHRASE_TEMPLATES if tier >= 2 else TRAIN_TEMPLATES)[goal.verb]
    dest = describe(goal.dest, tier) if goal.dest is not None else ""
    return templates[choice % len(templates)].format(
        obj=describe(goal.obj, tier), dest=dest, direction=goal.direction
    )


def instruction(episode: Episode, tier: int = 0, choice: int | None = None) -> str:
    """The episode's instruction; ``choice`` (default: the episode's) picks among templates."""
    pick = episode.template_index if choice is None else choice
    parts = [_goal_text(rg.goal, pick >> (3 * i), tier) for i, rg in enumerate(episode.goals)]
    if len(parts) == 1:
        text = parts[0]
    else:
        joiners = PARAPHRASE_JOINERS if tier >= 2 else TRAIN_JOINERS
        text = joiners[(pick >> 9) % len(joiners)].format(a=parts[0], b=parts[1])
    if tier >= 3:
        text = WRAPPERS[(pick >> 12) % len(WRAPPERS)].format(x=text)
    if tier >= 4:
        text = f"{CONTEXTS[(pick >> 14) % len(CONTEXTS)]} {text[0].upper()}{text[1:]}"
    return text


def severity_tier(severity: float, calibration: str) -> int:
    """Paraphrase tier for a language-perturbation severity in [0, 1] (0 = training wording):
    v2 splits (0, 1] into quarters for tiers 1-4, v1 into thirds for tiers 1-3."""
    if severity <= 0.0:
        return 0
    tiers = 3 if calibration == "v1" else 4
    return next(t for t in range(1, tiers + 1) if severity <= t / tiers or t == tiers)


def all_training_instructions(episode: Episode) -> set[str]:
    """Every instruction the training templates can produce for ``episode`` (for tests / checks)."""
    return {instruction(episode, 0, c) for c in range(1 << 13)}
