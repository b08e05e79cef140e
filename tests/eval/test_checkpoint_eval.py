"""A saved tiny VLA checkpoint evaluated through ``evaluate(path)`` on the fake env, in
process and served (``evaluate("ws://...")``)."""

from pathlib import Path

import pytest
from eval_fakes import make_fake_env

from vlaworks.eval.run import evaluate
from vlaworks.serve.process import ServerProcess

pytestmark = pytest.mark.slow
STEPS = 6


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    torch = pytest.importorskip("torch")
    from vlaworks.data.normalize import Normalizer
    from vlaworks.models.checkpoint import save_policy
    from vlaworks.models.config import PartSpec, PolicyConfig
    from vlaworks.models.policy import build_policy

    bounds = {"q01": [-1.0] * 7, "q99": [1.0] * 7, "min": [-1.0] * 7, "max": [1.0] * 7}
    stats = {"action": bounds, "observation.state": bounds}
    config = PolicyConfig(
        backbone="prismatic-tiny",
        head=PartSpec("query_mlp", {"mlp_width": 16}),
        chunk_size=4,
        image_size=32,
        cameras=("base", "wrist"),
    )
    torch.manual_seed(0)
    return save_policy(build_policy(config, normalizer=Normalizer(stats)), tmp_path_factory.mktemp("ckpt"))


def test_checkpoint_policy_runs_in_closed_loop(checkpoint, tmp_path):
    def run(name, chunk_exec):
        return evaluate(
            str(checkpoint),
            ["toy"],
            2,
            chunk_exec=chunk_exec,
            out=tmp_path / name,
            env_factory=make_fake_env,
            image_size=16,
            videos=0,
            envs_per_worker=2,
            device="cpu",
            quiet=True,
            env_kwargs={"max_episode_steps": STEPS},
        )

    full, again, half = run("full", "full"), run("again", "full"), run("half", "half")
    assert full.episodes == again.episodes
    assert full.policy == str(checkpoint)
    for r, stride in ((full, 4), (half, 2)):
        for e in r.episodes:
            assert 1 <= e.length <= STEPS
            assert e.predictions == -(-e.length // stride)
    assert (tmp_path / "full" / "report.md").exists()


def test_served_checkpoint_evaluates_like_the_in_process_one(checkpoint, tmp_path):
    """Same episodes, and every executed action identical, through ``ws://`` as in process."""
    import numpy as np

    actions: dict[str, list] = {"served": [], "local": []}

    def run(name, policy):
        def recording_env(suite, task, **kwargs):
            env = make_fake_env(suite, task, **kwargs)
            step = env.step
            env.step = lambda action: actions[name].append(np.array(action)) or step(action)
            return env

        return evaluate(
            policy,
            ["toy"],
            2,
            out=tmp_path / name,
            env_factory=recording_env,
            image_size=16,
            videos=0,
            device="cpu",
            quiet=True,
            env_kwargs={"max_episode_steps": STEPS},
        )

    with ServerProcess(checkpoint, log=tmp_path / "server.log") as server:
        served = run("served", server.uri)
    local = run("local", str(checkpoint))
    assert served.policy == server.uri
    assert served.episodes == local.episodes
    np.testing.assert_array_equal(np.stack(actions["served"]), np.stack(actions["local"]))
    assert len(actions["local"]) == sum(e.length for e in local.episodes)


def test_a_visual_prompt_mode_is_refused_for_a_policy_that_cannot_read_it(checkpoint, tmp_path):
    from vlaworks.eval.run import check_policy_reads_prompts
    from vlaworks.models.checkpoint import CONFIG_FILE
    from vlaworks.models.config import PartSpec, PolicyConfig

    with pytest.raises(ValueError, match="has no prompt token source"):
        evaluate(str(checkpoint), ["toy"], 1, out=tmp_path / "mask", env_factory=make_fake_env,
                 prompt_mode="mask", quiet=True)
    assert not (tmp_path / "mask").exists()  # refused before any episode or report
    prompted = PolicyConfig(
        backbone="prismatic-tiny",
        head=PartSpec("query_mlp"),
        chunk_size=4,
        token_sources=(PartSpec("pixel_aware"),),
        prompt_mode="mixed",
    )
    prompted.save(tmp_path / CONFIG_FILE)
    check_policy_reads_prompts(str(tmp_path), "mask")  # a prompted policy's config passes
    check_policy_reads_prompts("expert", "mask")  # the expert needs no token source
