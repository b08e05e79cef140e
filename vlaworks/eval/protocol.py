"""The evaluation side of the comparison protocol (``vlaworks compare``, :mod:`vlaworks.compare`).

Every trained policy is evaluated closed-loop on the same seeded episodes under named
*conditions* (seed 004 Tables II-IV):

* ``clean``: the training distribution (SimplerEnv "visual matching");
* ``masked``: background masking, everything but the objects and the gripper blanked;
* ``variant``: visual variant aggregation, new table / floor textures, lighting, extra
  distractors and a moved base camera at once;
* ``paraphrase``: instructions from held-out paraphrase templates never seen in training.

:func:`protocol_table` lines the results up (success with 95 % Wilson intervals, one row
per recipe, one column per condition, the final train loss and, when measured, the
open-loop action error on held-out demonstrations, ``vlaworks.eval.offline``: a score
that still ranks recipes where closed-loop success is at the floor).

:func:`representation` adds seed 004's representation measurements (Fig. 4-5) against the
backbone a policy started from: a linear probe of its vision features (object kind and
colour; a dual encoder's frozen and trained halves separately) and VQA accuracy on
held-out generated questions; :func:`representation_table` lines those up.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from vlaworks.eval.report import rate_cell
from vlaworks.eval.results import EvalResult

#: condition name -> perturbations ("FAMILY@CALIBRATION:SEVERITY") applied at evaluation; pinned to
#: the v1 ranges the seed 004 tables in BENCHMARKS.md were measured with (:mod:`vlaworks.sim.perturb`)
CONDITIONS: dict[str, tuple[str, ...]] = {
    "clean": (),
    "masked": ("mask_background:1",),
    "variant": ("background@v1:0.6", "lighting@v1:0.6", "layout@v1:0.67", "camera@v1:0.3"),
    "paraphrase": ("language@v1:1",),
}


def condition_perturbations(name: str) -> tuple[str, ...]:
    """The perturbations of condition ``name``; a clear error for an unknown one."""
    if name not in CONDITIONS:
        raise ValueError(f"unknown evaluation condition {name!r}; choose from {sorted(CONDITIONS)}")
    return CONDITIONS[name]


def representation(policy_dir: Path, out: Path, questions: int, image_size: int) -> dict[str, dict]:
    """Linear probe and VQA of a trained policy against its initial backbone (seed 004
    Fig. 4-5), at the policy's image size; reports in ``out``."""
    from vlaworks.eval.probes import run_probe_comparison
    from vlaworks.eval.vqa import run_vqa_comparison

    out.mkdir(parents=True, exist_ok=True)
    probe = run_probe_comparison(policy_dir, out / "probe.md", image_size=image_size)
    vqa = run_vqa_comparison(policy_dir, out / "vqa.md", n=questions, image_size=image_size)
    return {"probe": {k: probe[k] for k in ("before", "after")}, "vqa": vqa}


def representation_table(results: dict[str, dict[str, dict]]) -> str:
    """Markdown: per recipe, VQA accuracy and linear-probe accuracy (object kind, colour)
    before -> after VLA training; a dual encoder's frozen half is shown apart."""
    from vlaworks.eval.probes import starting_features

    tasks = ("kind", "color")
    head = ["VQA"] + [f"{t} probe" for t in tasks] + [f"{t} probe, frozen half" for t in tasks]
    lines = ["| recipe | " + " | ".join(head) + " |", "|---|" + "---|" * len(head)]

    def pct(value: float | None) -> str:
        return "-" if value is None else f"{100 * value:.1f}"

    for name, per in results.items():
        vqa, before, after = per["vqa"], per["probe"]["before"], per["probe"]["after"]
        start = starting_features(before)
        trained = after.get("trained", after.get("vision", next(iter(after.values()))))
        frozen = after.get("frozen", {})
        cells = [f"{pct(vqa['before']['overall'])} -> {pct(vqa['after']['overall'])}"]
        cells += [f"{pct(start.get(t))} -> {pct(trained.get(t))}" for t in tasks]
        cells += [pct(frozen.get(t)) for t in tasks]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def protocol_table(results: dict[str, dict[str, dict]], conditions: Sequence[str]) -> str:
    """Markdown: one row per recipe, success % [95 % CI] (n) per condition, the final train
    loss and, when measured, the held-out open-loop error (translation / rotation L1, gripper
    sign agreement %)."""
    offline = all("offline" in per for per in results.values())
    extra = ["final loss"] + (["held-out L1 xyz / rot, gripper %"] if offline else [])
    head = "| recipe | " + " | ".join([*conditions, *extra]) + " |"
    lines = [head, "|" + "---|" * (len(conditions) + len(extra) + 1)]
    for name, per in results.items():
        cells = [rate_cell(EvalResult.from_dict(per[c]).overall()) for c in conditions]
        cells.append(f"{per['train']['final_loss']:.4f}")
        if offline:
            o = per["offline"]
            cells.append(
                f"{o['translation_l1']:.3f} / {o['rotation_l1']:.3f}, {100 * o['gripper_agreement']:.1f}"
            )
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
