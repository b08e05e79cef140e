"""Task suites: ids, referent resolution, success predicates (true after the expert, false otherwise)."""

from __future__ import annotations

import numpy as np
import pytest

from vlaworks.envs.tabletop import TabletopEnv
from vlaworks.sim.tasks import (
    SUITES,
    TASKS,
    Episode,
    ObjRef,
    ResolvedGoal,
    get_task,
    resolve,
    success,
    suite_tasks,
)


def _run_expert(env: TabletopEnv, seed: int, noise: float = 0.0) -> dict:
    obs, info = env.reset(seed=seed)
    assert not info["success"], "a task must not be solved at reset"
    expert = env.expert(noise=noise)
    expert.reset()
    for _ in range(env.max_episode_steps):
        obs, reward, terminated, truncated, info = env.step(expert.act(obs))
        if terminated or truncated:
            break
    return info


def test_every_suite_has_several_tasks_with_stable_ids():
    for suite in SUITES:
        ids = suite_tasks(suite)
        assert 4 <= len(ids) <= 10
        assert all(t.startswith(f"{suite}/") and TASKS[t].suite == suite for t in ids)
    assert get_task("spatial", "pick_leftmost_place_bowl").id == "spatial/pick_leftmost_place_bowl"


def test_unknown_suite_and_task_name_the_choices():
    with pytest.raises(ValueError, match="choose one of"):
        suite_tasks("kitchen")
    with pytest.raises(ValueError, match="spatial/pick_leftmost_place_bowl"):
        get_task("spatial", "fly_away")


@pytest.mark.parametrize("task", list(TASKS))
def test_expert_solves_every_task(task):
    env = TabletopEnv(task.split("/")[0], task=task, image_size=32, cameras=("base",))
    try:
        info = _run_expert(env, seed=3, noise=0.1)
    finally:
        env.close()
    assert info["success"] and info["task"] == task


def test_spatial_referents_follow_positions():
    env = TabletopEnv("spatial", task="pick_leftmost_place_bowl", image_size=32, cameras=("base",))
    try:
        for seed in range(3):
            env.reset(seed=seed)
            scene, ep = env.scene, env.episode
            cubes = [o for o in ep.objects if o.kind == "cube" and o.color == "red"]
            assert ep.goals[0].obj is min(cubes, key=lambda o: scene.pos(o)[0])
            rightmost, margin = resolve(ObjRef("cube", "red", "rightmost"), scene, ep.objects)
            assert rightmost is max(cubes, key=lambda o: scene.pos(o)[0]) and margin >= 0
    finally:
        env.close()


def test_wrong_behaviour_does_not_count_as_success():
    # Putting the blue cube on the plate leaves the red-cube-in-bowl goal unsolved (same layout).
    env = TabletopEnv("goal", task="put_blue_cube_on_plate", image_size=32, cameras=("base",))
    try:
        assert _run_expert(env, seed=5)["success"]
        red_in_bowl = get_task("goal", "put_red_cube_in_bowl")
        goal, own = red_in_bowl.goals[0], env.episode.objects
        obj, dest = resolve(goal.obj, env.scene, own)[0], resolve(goal.dest, env.scene, own)[0]
        rg = ResolvedGoal(goal, obj, dest, np.zeros(2))
        assert not success(Episode(red_in_bowl, [rg], own, 0), env.scene)
        # Random flailing does not solve a task either.
        env.reset(seed=6)
        rng = np.random.default_rng(0)
        for _ in range(40):
            _, _, terminated, _, info = env.step(rng.uniform(-1, 1, 7).astype(np.float32))
            assert not terminated and not info["success"]
    finally:
        env.close()


def test_goal_held_in_the_air_is_not_placed():
    env = TabletopEnv("goal", task="put_red_cube_in_bowl", image_size=32, cameras=("base",))
    try:
        obs, _ = env.reset(seed=2)
        expert = env.expert()
        expert.reset()
        # run until the cube is carried above the bowl, then stop before release
        scene, rg = env.scene, env.episode.goals[0]
        for _ in range(env.max_episode_steps):
            obs, _, terminated, _, info = env.step(expert.act(obs))
            over_bowl = np.hypot(*(scene.pos(rg.obj)[:2] - scene.pos(rg.dest)[:2])) < 0.01
            if over_bowl and scene.touching_gripper(rg.obj):
                break
            assert not terminated
        assert scene.touching_gripper(rg.obj) and not info["success"]
    finally:
        env.close()


def _layout(env: TabletopEnv) -> dict[tuple[str, str], np.ndarray]:
    """(kind, colour) -> xy of each active object; spatial tasks repeat red cubes, so number them."""
    out: dict[tuple[str, str], np.ndarray] = {}
    for o in env.episode.objects:
        n = sum(1 for k in out if k[0].startswith(o.kind) and k[1] == o.color)
        out[(f"{o.kind}{n}", o.color)] = env.scene.pos(o)[:2].copy()
    return out


@pytest.mark.parametrize("suite", ["spatial", "object"])
def test_fixed_layouts_keep_each_tasks_objects_within_the_jitter(suite):
    from vlaworks.sim.tasks import LAYOUT_JITTER

    env = TabletopEnv(suite, task=suite_tasks(suite)[0], image_size=32, layout="fixed")
    layouts = []
    for seed in range(4):
        env.reset(seed=seed)
        layouts.append(_layout(env))
    assert all(set(lay) == set(layouts[0]) for lay in layouts)  # same objects, distractors included
    for key in layouts[0]:
        xy = np.stack([lay[key] for lay in layouts])
        assert np.ptp(xy, axis=0).max() <= 2 * LAYOUT_JITTER + 0.01  # settling adds a few mm at most
    assert any(not np.allclose(layouts[0][k], layouts[1][k]) for k in layouts[0])  # but jittered
    other = TabletopEnv(suite, task=suite_tasks(suite)[1], image_size=32, layout="fixed")
    other.reset(seed=0)
    far = [np.linalg.norm(xy - layouts[0][k]) for k, xy in _layout(other).items() if k in layouts[0]]
    assert max(far, default=1.0) > 4 * LAYOUT_JITTER  # another task has another layout
    env.close()
    other.close()


def test_random_layouts_move_objects_anywhere_and_unknown_layouts_are_errors():
    env = TabletopEnv("spatial", task="pick_leftmost_place_bowl", image_size=32)
    env.reset(seed=0)
    a = _layout(env)
    env.reset(seed=1)
    b = _layout(env)
    assert max(np.linalg.norm(a[k] - b[k]) for k in a) > 0.1
    with pytest.raises(ValueError, match="unknown layout 'grid'"):
        TabletopEnv("spatial", layout="grid")
    env.close()


def test_expert_solves_fixed_layouts_of_every_suite():
    for suite in SUITES:
        env = TabletopEnv(suite, image_size=32, layout="fixed")
        for seed in range(len(env.tasks)):
            assert _run_expert(env, seed)["success"], f"{suite} seed {seed}"
        env.close()


def test_ambiguous_tasks_name_the_target_only_through_a_prompt():
    env = TabletopEnv("ambiguous", task="this_red_cube_in_bowl", image_size=64, prompt_mode="point")
    try:
        target_left = set()
        for seed in range(8):
            obs, _ = env.reset(seed=seed)
            assert obs["instruction"] in {
                "put the red cube that I am pointing at in the bowl",
                "pick up the red cube that I am pointing at and place it in the bowl",
            }
            cubes = [o for o in env.episode.objects if o.label == "red cube"]
            target = env.episode.goals[0].obj
            other = next(o for o in cubes if o is not target)
            assert len(cubes) == 2 and target in cubes
            target_left.add(bool(env.scene.pos(target)[0] < env.scene.pos(other)[0]))
            ((x, y),) = obs["visual_prompts"][0].coords
            seg = env.scene.render("base", segmentation=True)[2]
            assert seg[int(y * 64), int(x * 64)] == target.seg_id  # the point is on the target, not its twin
        assert target_left == {True, False}  # neither the words nor the place say which cube
    finally:
        env.close()


def test_fixed_ambiguous_layouts_swap_the_twins_so_the_place_does_not_name_the_target():
    env = TabletopEnv("ambiguous", task="this_red_cube_in_bowl", image_size=32, layout="fixed")
    try:
        places = set()
        for seed in range(12):
            env.reset(seed=seed)
            cubes = sorted(env.scene.pos(o)[0] for o in env.episode.objects if o.label == "red cube")
            target_x = env.scene.pos(env.episode.goals[0].obj)[0]
            places.add(bool(target_x == cubes[0]))
            assert cubes[1] - cubes[0] > 0.05  # still the task's two canonical places, only swapped
        assert places == {True, False}
    finally:
        env.close()
