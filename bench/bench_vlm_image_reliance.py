"""Whether a pretrained VLM's answers depend on its image.

Asks held-out grounding questions (:func:`vlaworks.eval.grounding.grounding_items`, pointing
and spatial relations by default) three times: with each question's own image, with the images
permuted across the questions, and with black images. Prints, per backbone folder, the share of
questions answered correctly, the share of distinct answers, and the share of answers that change
when the images are permuted or blacked out. A VLM that answers from the text prior gives one
answer per question template (few distinct answers) and keeps it whatever the image.

    MUJOCO_GL=egl .venv/bin/python bench/bench_vlm_image_reliance.py --vlm FOLDER [FOLDER ...]
"""

from __future__ import annotations

import argparse

import numpy as np
from bench_input_reliance import print_table  # this script's sibling (bench/ is the script's path)

from vlaworks.eval.grounding import grounding_items, score_item
from vlaworks.eval.vqa import answer_questions
from vlaworks.models.backbones import build_backbone


def reliance(folder: str, items: list, max_new_tokens: int) -> dict[str, float]:
    """Accuracy, distinct answers and answer changes under permuted / black images."""
    backbone = build_backbone(folder).eval()
    prompts = [it.prompt for it in items]
    images = np.stack([it.image for it in items])
    perm = np.random.default_rng(0).permutation(len(items))
    own = answer_questions(backbone, images, prompts, max_new_tokens)
    permuted = answer_questions(backbone, images[perm], prompts, max_new_tokens)
    black = answer_questions(backbone, np.zeros_like(images), prompts, max_new_tokens)
    n = len(items)
    return {
        "correct": sum(score_item(it, a) for it, a in zip(items, own, strict=True)) / n,
        "distinct answers": len(set(own)) / n,
        "changed, images permuted": sum(a != b for a, b in zip(own, permuted, strict=True)) / n,
        "changed, black images": sum(a != b for a, b in zip(own, black, strict=True)) / n,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--vlm", nargs="+", required=True, help="backbone folders (a pretrain run's vlm/)")
    parser.add_argument("--questions", type=int, default=120, help="held-out questions (spread over --kinds)")
    parser.add_argument("--kinds", default="point,spatial")
    parser.add_argument("--image-size", type=int, default=64)
    args = parser.parse_args()
    kinds = tuple(args.kinds.split(","))
    items = grounding_items(args.questions, image_size=args.image_size, kinds=kinds)
    print(f"{len(items)} held-out questions ({', '.join(kinds)})")
    print_table({folder: reliance(folder, items, max_new_tokens=24) for folder in args.vlm}, "VLM")


if __name__ == "__main__":
    main()
