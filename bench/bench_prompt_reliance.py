"""Whether a prompted policy's actions follow its visual prompt (PixelVLA's prompt modes).

On the ``ambiguous`` suite (two identical objects, only a visual prompt names the target),
each held-out episode's first observation is given to the policy three ways per prompt mode:
prompting the target, prompting its twin (the same prompt derived from the twin's
ground-truth mask), and text only. Prints, per mode, the mean absolute change of the predicted
chunk's translation (env units, all steps of the chunk) between target and twin prompts, and
between the target prompt and no prompt. A policy that reads a mode's prompt moves its chunk
towards whichever twin the prompt names; one that ignores it predicts the same chunk for both.

    MUJOCO_GL=egl .venv/bin/python bench/bench_prompt_reliance.py --policy RUN [RUN ...]
"""

from __future__ import annotations

import argparse

import numpy as np
from bench_input_reliance import print_table  # this script's sibling (bench/ is the script's path)

from vlaworks.envs.tabletop import TabletopEnv
from vlaworks.models.checkpoint import load_policy
from vlaworks.prompts import PROMPT_MODES, prompt_inputs
from vlaworks.sim.tasks import TASKS


def twin_masks(env: TabletopEnv) -> tuple[np.ndarray, np.ndarray]:
    """The target's and its twin's ground-truth masks on the env's prompt camera."""
    target = env.episode.goals[0].obj
    (twin,) = [o for o in env.episode.objects if o.kind == target.kind and o.seg_id != target.seg_id]
    seg = env.scene.render(env.prompt_camera, segmentation=True)[2]
    return seg == target.seg_id, seg == twin.seg_id


def reliance(folder: str, episodes: int, seed: int, image_size: int) -> dict[str, dict[str, float]]:
    """Per prompt mode: mean |Δ translation| target vs twin prompt, and target prompt vs text."""
    policy = load_policy(folder)
    modes = [m for m in PROMPT_MODES if m != "text"]
    twin_change: dict[str, list[float]] = {m: [] for m in modes}
    text_change: dict[str, list[float]] = {m: [] for m in modes}
    for task in (t for t in TASKS if t.startswith("ambiguous/")):
        env = TabletopEnv(suite="ambiguous", task=task, image_size=image_size, layout="fixed")
        for k in range(episodes):
            obs, _ = env.reset(seed=seed + k)
            target, twin = twin_masks(env)
            text = policy.predict_chunk([obs])[..., :3]
            for mode in modes:
                on_target = policy.predict_chunk([{**obs, **prompt_inputs(mode, target, env.prompt_camera)}])
                on_twin = policy.predict_chunk([{**obs, **prompt_inputs(mode, twin, env.prompt_camera)}])
                twin_change[mode].append(float(np.abs(on_target[..., :3] - on_twin[..., :3]).mean()))
                text_change[mode].append(float(np.abs(on_target[..., :3] - text).mean()))
        env.close()
    return {
        m: {
            "target vs twin prompt": float(np.mean(twin_change[m])),
            "target prompt vs text": float(np.mean(text_change[m])),
        }
        for m in modes
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--policy", nargs="+", required=True, help="policy or training-run folders")
    parser.add_argument("--episodes", type=int, default=5, help="held-out episodes per ambiguous task")
    parser.add_argument("--seed", type=int, default=10000)
    parser.add_argument("--image-size", type=int, default=64)
    args = parser.parse_args()
    for folder in args.policy:
        print(f"\n{folder}: mean |change| of the predicted translation")
        print_table(reliance(folder, args.episodes, args.seed, args.image_size), "prompt mode")


if __name__ == "__main__":
    main()
