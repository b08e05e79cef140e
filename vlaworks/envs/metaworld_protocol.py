"""The MT10 protocol: Meta-World's ten multi-task tasks as vlaworks generates, trains and evaluates them.

One frozen record, :data:`MT10`, fixes everything a number on MT10 depends on, so that two
runs (or two frameworks fed our datasets) are comparable:

* the ten tasks of Meta-World's MT10 (v3 environments, ``metaworld.env_dict.MT10_V3``);
* demonstrations: ``train_episodes_per_task`` successful expert episodes per task, reset
  seeds :func:`vlaworks.miniature.generation_seed` ``(train_seed, task index, attempt)``,
  the scripted expert's actions executed with Gaussian noise ``expert_noise`` on x, y, z and
  recorded clean (DART-style, as the tabletop's demonstrations);
* evaluation: ``eval_episodes_per_task`` episodes per task, reset seeds
  :func:`vlaworks.eval.rollout.episode_seed` ``(eval_seed, task id, k)``: a stream apart from
  the demonstrations', so evaluation positions are unseen in training;
* episodes end at success or after ``max_episode_steps`` = 500 steps, Meta-World's own
  ``max_path_length``; success is Meta-World's ``info["success"]`` at any step;
* observations: ``cameras`` at ``image_size`` pixels (``base``: Meta-World's ``corner4`` view,
  ``wrist``: its hand-mounted ``gripperPOV``; :mod:`vlaworks.envs.metaworld`).

Each reset draws the object and goal positions from the task's own random-reset space with
Meta-World's seeded sampler (``seeded_rand_vec``), the distribution ``metaworld.MT10`` draws
its 50 fixed goals per task from. Unlike Meta-World's multi-task RL protocol, which
evaluates on those same 50 goals, every episode here has fresh positions.
"""

from __future__ import annotations

from dataclasses import dataclass

from vlaworks.miniature import eval_seed


@dataclass(frozen=True)
class MetaWorldProtocol:
    """Tasks, seeds, episode length and observation settings of one Meta-World benchmark."""

    name: str
    tasks: tuple[str, ...]
    #: dataset seed of the demonstrations (``vlaworks generate --seed``)
    train_seed: int
    #: base seed of the evaluation episodes (``vlaworks eval --seed``)
    eval_seed: int
    max_episode_steps: int
    train_episodes_per_task: int
    eval_episodes_per_task: int
    image_size: int
    cameras: tuple[str, ...]
    expert_noise: float


MT10 = MetaWorldProtocol(
    name="mt10",
    tasks=(
        "reach-v3",
        "push-v3",
        "pick-place-v3",
        "door-open-v3",
        "drawer-open-v3",
        "drawer-close-v3",
        "button-press-topdown-v3",
        "peg-insert-side-v3",
        "window-open-v3",
        "window-close-v3",
    ),
    train_seed=0,
    eval_seed=eval_seed(0),
    max_episode_steps=500,
    train_episodes_per_task=50,
    eval_episodes_per_task=20,
    image_size=64,
    cameras=("base", "wrist"),
    expert_noise=0.1,
)

#: suite name -> protocol (``vlaworks generate / eval --env metaworld --suite mt10``)
PROTOCOLS: dict[str, MetaWorldProtocol] = {MT10.name: MT10}
