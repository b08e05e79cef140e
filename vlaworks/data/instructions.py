"""Training-time instruction augmentation: rule-based rewordings of an instruction string.

Seed 004 trains its π0 baseline "with instruction augmentation, as omitting it led to
substantially poorer performance" (its footnote 1). Datasets store only the instruction
string, possibly written for another world, so the rewriter works on strings, not on the
miniature world's task structure. :func:`rewrite_instruction` applies a random non-empty
subset of the rules that find something to rewrite:

* joiners: a clause boundary ("and then", ", then", "and" before a known verb) becomes one
  of :data:`JOINERS` (same clause order);
* verbs: the verb that opens a clause (at the start, after a joining word or a comma)
  becomes a synonym from :data:`VERB_SYNONYMS` ("put the red cube in the bowl" -> "position
  the red cube in the bowl");
* wrappers: the request is wrapped in one of :data:`WRAPPERS` ("kindly {x}", "{x}, if possible");
* style: the first letter capitalised and / or a final "." or "!".

Only those words change: the object, colour, spatial and direction words that say which
object goes where are kept verbatim, so a rewrite never changes the task.

Held out on purpose: the evaluation's language perturbation (``vlaworks.sim.language``'s
paraphrase templates, spatial paraphrases, noun synonyms, wrappers, descriptions, contexts
and joiners) shares no word with these tables beyond the words training instructions
already contain, so a policy trained with this augmentation has still never seen a
paraphrase of the evaluation (``tests/data/test_instructions.py`` checks it). Seed 004's
Table IV likewise keeps the augmentation's paraphrases disjoint from the evaluation's.

Randomness comes from torch's global generator, which the sampler seeds per sample, as
for the image augmentation (:mod:`vlaworks.data.augment`); only training windows apply it.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import torch

#: clause-opening verb (lower case) -> replacements with the same meaning in context
VERB_SYNONYMS: dict[str, tuple[str, ...]] = {
    "pick up": ("take", "collect", "lift"),
    "put": ("position", "get", "lay"),
    "place": ("position", "lay", "put"),
    "stack": ("pile", "position", "put"),
    "lift": ("hoist", "elevate", "pick up"),
    "push": ("shift", "scoot", "slide"),
    "slide": ("shift", "scoot", "push"),
    "reach": ("approach", "go to"),
    "open": ("pull open",),
    "close": ("shut",),
    "press": ("hit", "push"),
    "insert": ("fit", "slot"),
    "turn on": ("switch on", "activate"),
    "turn off": ("deactivate",),
}
#: replacements of a clause boundary (``{a}`` then ``{b}``: the order is kept)
JOINERS: tuple[str, ...] = (", and later ", ", subsequently ", " and subsequently ", ", later ")
#: wrappers around the whole request ``{x}``
WRAPPERS: tuple[str, ...] = (
    "kindly {x}",
    "{x}, if possible",
    "go ahead and {x}",
    "robot, {x}",
    "carefully {x}",
    "{x} now",
    "would it be possible to {x}?",
)

_VERBS = "|".join(sorted(VERB_SYNONYMS, key=len, reverse=True)).replace(" ", r"\s+")
#: a clause-opening verb: at the start, after a joining word or after a comma / semicolon
_VERB = re.compile(rf"(^|\b(?:and|then|later|subsequently)\s+|[,;]\s*)({_VERBS})\b", re.IGNORECASE)
#: a clause boundary: "and then", ", then", or "and" directly before a known verb
_JOINER = re.compile(rf"\s+and\s+then\s+|\s*,\s*then\s+|\s+and\s+(?=(?:{_VERBS})\b)", re.IGNORECASE)


def _pick(options: tuple[str, ...] | list[str]) -> str:
    return options[int(torch.randint(len(options), ()))]


def _swap_verb(match: re.Match[str]) -> str:
    lead, verb = match.group(1), match.group(2)
    word = _pick(VERB_SYNONYMS[" ".join(verb.lower().split())])
    return lead + (word[0].upper() + word[1:] if verb[0].isupper() else word)


def _swap_joiner(match: re.Match[str]) -> str:
    current = match.group(0)
    return _pick([j for j in JOINERS if j != current])


def _decapitalise(text: str) -> str:
    """``text`` with its first letter lower-cased unless its first word is "I" or an acronym."""
    return text if text.split(" ", 1)[0].isupper() else text[:1].lower() + text[1:]


def _wrap(text: str) -> str:
    return _pick(WRAPPERS).format(x=_decapitalise(text.rstrip(" .!?")))


def _styles(text: str) -> list[str]:
    """The case / punctuation variants of ``text`` that differ from it."""
    bodies = {text, text[:1].upper() + text[1:]}
    ends = ("",) if text.endswith((".", "!", "?")) else ("", ".", "!")
    return sorted({body + end for body in bodies for end in ends} - {text})


def _style(text: str) -> str:
    styles = _styles(text)
    return _pick(styles) if styles else text


def rewrite_instruction(text: str) -> str:
    """``text`` reworded by a random non-empty subset of the applicable rules (module doc),
    applied in the order joiners, verbs, wrapper, style; draws from torch's global generator."""
    rules: list[Callable[[str], str]] = []
    if _JOINER.search(text):
        rules.append(lambda s: _JOINER.sub(_swap_joiner, s))
    if _VERB.search(text):
        rules.append(lambda s: _VERB.sub(_swap_verb, s))
    rules.append(_wrap)
    if _styles(text):
        rules.append(_style)
    chosen = int(torch.randint(1, 1 << len(rules), ()))
    for bit, rule in enumerate(rules):
        if chosen >> bit & 1:
            text = rule(text)
    return text


def augment_instruction(text: str, probability: float) -> str:
    """``text`` rewritten with ``probability`` (:func:`rewrite_instruction`), else unchanged;
    draws nothing when ``probability`` is 0."""
    if probability <= 0.0 or float(torch.rand(())) >= probability:
        return text
    return rewrite_instruction(text)
