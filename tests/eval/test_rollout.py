import numpy as np
import pytest
from eval_fakes import FakeReachEnv, GreedyChunkPolicy

from vlaworks.eval.expert import ExpertPolicy
from vlaworks.eval.rollout import EpisodeSpec, episode_seed, run_episodes


class StepRecordingPolicy(GreedyChunkPolicy):
    """Greedy policy that records each env's step count whenever it is asked for a chunk."""

    def __init__(self, envs, chunk_size):
        super().__init__(chunk_size=chunk_size)
        self.envs = envs
        self.steps_at_call: list[list[int]] = []

    def predict_chunk(self, observations):
        self.steps_at_call.append([e.steps for e in self.envs])
        return super().predict_chunk(observations)


def _specs(n, task="toy/reach_far", record=False):
    return [EpisodeSpec("toy", task, k, episode_seed(0, task, k), record) for k in range(n)]


@pytest.mark.parametrize(
    ("mode", "stride"), [("full", 6), ("half", 3), ("1", 1), ("4", 4), ("ensemble", 1), ("ensemble:0.1", 1)]
)
def test_chunk_modes_execute_the_right_number_of_actions_between_predictions(mode, stride):
    envs = [FakeReachEnv("toy", "toy/reach_far")]
    policy = StepRecordingPolicy(envs, chunk_size=6)
    [result] = run_episodes(envs, policy, _specs(1), chunk_exec=mode)
    steps = [row[0] for row in policy.steps_at_call]
    assert steps == list(range(0, result.length, stride))
    assert result.predictions == len(steps) == -(-result.length // stride)
    assert result.success


def test_lockstep_batch_keeps_size_and_stops_finished_envs():
    envs = [FakeReachEnv("toy", "toy/reach_far") for _ in range(3)]
    policy = StepRecordingPolicy(envs, chunk_size=2)
    results = run_episodes(envs, policy, _specs(3), chunk_exec="full")
    assert set(policy.calls) == {3}
    for env, r in zip(envs, results, strict=True):
        assert env.steps == r.length
        assert r.predictions == -(-r.length // 2)
    assert len({r.length for r in results}) > 1  # different goals, different lengths


def test_episode_runs_until_max_steps_without_success(fake_env):
    class Idle(GreedyChunkPolicy):
        def predict_chunk(self, observations):
            return np.zeros((len(observations), 5, 7), dtype=np.float32)

    [r] = run_episodes([fake_env], Idle(), _specs(1, "toy/reach"))
    assert (r.success, r.length, r.predictions) == (False, fake_env.max_episode_steps, 6)


def test_episode_seeds_are_stable_and_distinct():
    assert episode_seed(0, "toy/reach", 3) == episode_seed(0, "toy/reach", 3)
    seeds = {episode_seed(s, t, k) for s in (0, 1) for t in ("a/x", "a/y") for k in range(20)}
    assert len(seeds) == 80
    assert all(0 <= s < 2**31 for s in seeds)


def test_same_seeds_give_same_initial_states_and_results():
    def run():
        envs = [FakeReachEnv("toy", "toy/reach") for _ in range(2)]
        return run_episodes(envs, GreedyChunkPolicy(3, noise=0.5), _specs(2, "toy/reach"))

    assert run() == run()


def test_expert_policy_drives_each_env_with_its_own_expert():
    envs = [FakeReachEnv("toy", "toy/reach_far") for _ in range(2)]
    policy = ExpertPolicy(envs)
    results = run_episodes(envs, policy, _specs(2))
    assert all(r.success for r in results)
    assert all(r.predictions == r.length for r in results)  # chunk of one action
    assert [ex.resets for ex in policy._experts] == [1, 1]
    with pytest.raises(ValueError, match="bound to 2 envs"):
        policy.predict_chunk([{}])


def test_expert_policy_needs_an_env_with_an_expert():
    with pytest.raises(TypeError, match="expert"):
        ExpertPolicy([object()])


def test_bad_chunk_shape_is_reported(fake_env):
    class Wrong(GreedyChunkPolicy):
        def predict_chunk(self, observations):
            return np.zeros((len(observations), 7), dtype=np.float32)

    with pytest.raises(ValueError, match=r"\[B=1, T, 7\]"):
        run_episodes([fake_env], Wrong(), _specs(1, "toy/reach"))


def test_recorded_episode_writes_side_by_side_video(tmp_path):
    import av

    env = FakeReachEnv("toy", "toy/reach", image_size=16)
    [r] = run_episodes([env], GreedyChunkPolicy(4), _specs(1, "toy/reach", record=True), video_root=tmp_path)
    assert r.video == "videos/toy/toy__reach_ep000_success.mp4"
    with av.open(str(tmp_path / r.video)) as container:
        frames = list(container.decode(video=0))
    assert len(frames) == r.length + 1
    assert (frames[0].height, frames[0].width) == (16, 32)
