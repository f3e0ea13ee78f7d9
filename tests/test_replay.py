"""Replay: rebuilt stacks equal the env's own, across wrap-around and episode ends."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.vector import SyncVectorEnv
from omegaconf import OmegaConf

from dqn_harness.collector import Collector
from dqn_harness.config import EnvConfig
from dqn_harness.dqn.stream import ReplayStream
from dqn_harness.envs import make_vec_env
from dqn_harness.replay.storage import nbytes_for
from tests.conftest import make_buffer

FRAME_BYTES = 84 * 84


class CounterEnv(gym.Env):
    """Frames encode (env tag, episode, step); episodes end by termination or the time limit."""

    def __init__(self, tag: int, lengths: list[int]) -> None:
        self.tag, self.lengths = tag, lengths
        self.observation_space = gym.spaces.Box(0, 255, (1, 3), np.uint8)
        self.action_space = gym.spaces.Discrete(3)
        self.episode = -1

    def _frame(self):
        return np.array([[self.tag + 1, self.episode + 1, self.t + 1]], dtype=np.uint8)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.episode += 1
        self.t = 0
        return self._frame(), {}

    def step(self, action):
        self.t += 1
        terminated = self.t >= self.lengths[self.episode % len(self.lengths)]
        return self._frame(), float(self.t * 10 + action), terminated, False, {}


def counter_vec_env(n: int) -> SyncVectorEnv:
    def make(tag):
        def thunk():
            env = CounterEnv(tag, lengths=[2, 9, 5, 1, 12, 3][tag:] + [2, 9, 5, 1, 12, 3][:tag])
            env = gym.wrappers.TimeLimit(env, max_episode_steps=7)
            return gym.wrappers.FrameStackObservation(env, 4, padding_type="zero")

        return thunk

    return SyncVectorEnv([make(tag) for tag in range(n)])


def random_policy(obs):
    return np.zeros(len(obs), dtype=np.int64)


@pytest.mark.parametrize("num_envs", [1, 3])
def test_samples_match_the_env_transitions_across_wraparound(num_envs):
    env = counter_vec_env(num_envs)
    buffer = make_buffer(40, num_envs, (4, 1, 3), np.uint8, stack=4, seed=0)
    collector = Collector(
        env=env, policy=random_policy, epsilon_schedule=lambda _: 1.0, buffer=buffer, seed=0
    )
    recorded = {}
    for _ in range(150):  # ~150 steps per env through a ring of ~18 slots per env: many wraps
        t = collector.step()
        for e in np.flatnonzero(t.real):
            key = t.obs[e][-1].tobytes()
            recorded[key] = (
                t.obs[e],
                t.actions[e],
                t.rewards[e],
                t.terminated[e],
                t.truncated[e],
                t.next_obs[e],
            )
    assert buffer.storage.written == buffer.storage.slots, "the ring must have wrapped"
    batch = buffer.sample(3000)
    assert batch["obs"].dtype == torch.uint8 and batch["obs"].shape == (3000, 4, 1, 3)
    seen_terminal = seen_truncated = seen_padding = False
    newest_episode = {}
    for i in range(3000):
        key = batch["obs"][i, -1].numpy().tobytes()
        obs, action, reward, terminated, truncated, next_obs = recorded[key]
        np.testing.assert_array_equal(batch["obs"][i].numpy(), obs)
        np.testing.assert_array_equal(batch["next_obs"][i].numpy(), next_obs)
        assert batch["actions"][i] == action
        assert batch["rewards"][i] == pytest.approx(reward)
        assert bool(batch["terminated"][i]) == bool(terminated)
        assert bool(batch["truncated"][i]) == bool(truncated)
        seen_terminal |= bool(terminated)
        seen_truncated |= bool(truncated)
        seen_padding |= bool((obs[0] == 0).all())
        tag, episode = int(obs[-1, 0, 0]), int(obs[-1, 0, 1])
        newest_episode[tag] = max(newest_episode.get(tag, 0), episode)
    assert seen_terminal and seen_truncated and seen_padding
    # a truncated transition's next_obs is the final observation, not the next episode's reset
    truncated_rows = batch["truncated"].bool()
    assert (batch["next_obs"][truncated_rows][:, -1, 0, 2] == 8).all()  # step 7 encoded as 8


@pytest.mark.parametrize("num_envs", [1, 3])
def test_n_step_windows_stop_at_episode_ends_and_the_newest_step(num_envs):
    env = counter_vec_env(num_envs)
    buffer = make_buffer(40, num_envs, (4, 1, 3), np.uint8, stack=4, seed=2)
    collector = Collector(
        env=env, policy=random_policy, epsilon_schedule=lambda _: 1.0, buffer=buffer, seed=0
    )
    streams: list[list] = [[] for _ in range(num_envs)]  # each env's transitions, in order
    where = {}
    for _ in range(130):
        t = collector.step()
        for e in np.flatnonzero(t.real):
            where[t.obs[e][-1].tobytes()] = (e, len(streams[e]))
            streams[e].append((t.rewards[e], t.terminated[e], t.truncated[e], t.next_obs[e]))
    assert buffer.storage.written == buffer.storage.slots, "the ring must have wrapped"
    n = 3
    batch = buffer.sample(2000, n_step=n)
    assert batch["rewards"].shape == (2000, n)
    ends = {"full": 0, "terminated": 0, "truncated": 0, "newest": 0}
    for i in range(2000):
        e, k = where[batch["obs"][i, -1].numpy().tobytes()]
        window = []
        for reward, terminated, truncated, next_obs in streams[e][k : k + n]:
            window.append((reward, terminated, truncated, next_obs))
            if terminated or truncated:
                break
        m = len(window)
        assert int(batch["n_steps"][i]) == m
        np.testing.assert_allclose(batch["rewards"][i, :m].numpy(), [w[0] for w in window])
        assert (batch["rewards"][i, m:] == 0).all()
        assert bool(batch["terminated"][i]) == bool(window[-1][1])
        assert bool(batch["truncated"][i]) == bool(window[-1][2])
        np.testing.assert_array_equal(batch["next_obs"][i].numpy(), window[-1][3])
        if window[-1][1]:
            ends["terminated"] += 1
        elif window[-1][2]:
            ends["truncated"] += 1
        elif m == n:
            ends["full"] += 1
        else:
            ends["newest"] += 1
    assert all(count > 0 for count in ends.values()), ends
    # n_step=1 through the same path gives the one-step batch
    flat, _ = buffer.sampler.sample(buffer.storage, 64, 0)
    envs, slots = flat // buffer.storage.slots, flat % buffer.storage.slots
    one, n1 = buffer.storage.gather(envs, slots), buffer.storage.gather(envs, slots, n_step=1)
    for key in one:
        assert torch.equal(one[key], n1[key])


def test_only_recent_transitions_survive():
    env = counter_vec_env(1)
    buffer = make_buffer(30, 1, (4, 1, 3), np.uint8, stack=4, seed=1)
    collector = Collector(
        env=env, policy=random_policy, epsilon_schedule=lambda _: 1.0, buffer=buffer, seed=0
    )
    history = []
    for _ in range(200):
        t = collector.step()
        if t.real[0]:
            history.append(t.obs[0][-1].tobytes())
    keep = set(history[-30:])
    batch = buffer.sample(2000)
    sampled = {batch["obs"][i, -1].numpy().tobytes() for i in range(2000)}
    assert sampled <= keep
    assert len(sampled) >= 20  # and (nearly) all of the retained ones do get sampled


@pytest.mark.parametrize("backend", ["gymnasium", "ale_vector"])
def test_compact_stacks_equal_real_pong_stacks(backend):
    cfg = OmegaConf.structured(
        EnvConfig(name="pong", id="ALE/Pong-v5", backend=backend, max_episode_steps=120)
    )
    env = make_vec_env(cfg, 2)
    buffer = make_buffer(500, 2, (4, 84, 84), np.uint8, stack=4, seed=0)
    rng = np.random.default_rng(0)
    collector = Collector(
        env=env,
        policy=lambda o: rng.integers(6, size=len(o)),
        epsilon_schedule=lambda _: 1.0,
        buffer=buffer,
        seed=0,
    )
    steps = []
    for _ in range(700):
        steps.append(collector.step())
    assert sum(t.truncated.sum() for t in steps) >= 4, "episodes must end inside the test"
    checked = 0
    slots = buffer.storage.slots
    for t_index, t in enumerate(steps[-slots + 4 :], start=len(steps) - slots + 4):
        slot = t_index % slots
        for e in np.flatnonzero(t.real):
            got = buffer.storage.gather(np.array([e]), np.array([slot]))
            np.testing.assert_array_equal(got["obs"][0].numpy(), t.obs[e])
            np.testing.assert_array_equal(got["next_obs"][0].numpy(), t.next_obs[e])
            assert got["actions"][0] == t.actions[e]
            assert bool(got["truncated"][0]) == bool(t.truncated[e])
            checked += 1
    assert checked > 400
    env.close()


def test_atari_buffer_stores_one_frame_per_transition():
    """Measured on a real 20k buffer (~140 MB, fits any CI machine), then scaled to 1M by the
    same arithmetic the memory check uses, without allocating 6.6 GiB."""
    buffer = make_buffer(20_000, 2, (4, 84, 84), np.uint8, stack=4)
    storage = buffer.storage
    assert storage.frames.shape == (2, storage.slots, 84, 84)  # one frame per slot, not a stack
    assert storage.slots * 2 - 20_000 <= 2 * (1 + 3)  # capacity + newest + stack history per env
    per_transition = buffer.nbytes / 20_000
    assert FRAME_BYTES < per_transition <= FRAME_BYTES + 16 + 0.01 * FRAME_BYTES, per_transition
    million = nbytes_for(1_000_004, (84, 84), np.dtype(np.uint8))
    assert buffer.nbytes == nbytes_for(2 * storage.slots, (84, 84), np.dtype(np.uint8))
    assert 7.0e9 < million < 7.1e9  # the README's 1M-transition figure: ~7.07 KB each, 6.6 GiB


def test_buffer_refuses_what_the_machine_cannot_hold():
    from dqn_harness.errors import UsageError

    with pytest.raises(UsageError, match="buffer.capacity"):
        make_buffer(100_000_000, 1, (4, 84, 84), np.uint8, stack=4)


def test_dataset_streams_nothing_before_learning_starts():
    env = make_vec_env(OmegaConf.structured(EnvConfig(name="cp", id="CartPole-v1")), 2)
    buffer = make_buffer(1000, 2, (4,), np.float32, stack=None, seed=0)
    collector = Collector(
        env=env, policy=random_policy, epsilon_schedule=lambda _: 1.0, buffer=buffer, seed=0
    )
    dataset = ReplayStream(
        buffer=buffer,
        collector=collector,
        batch_size=32,
        learning_starts=300,
        train_freq=4,
        total_steps=600,
    )
    batches, steps_at = [], []
    for batch in dataset:
        steps_at.append(collector.env_steps)
        batches.append(batch)
    assert steps_at[0] >= 300
    assert batches[0]["obs"].shape == (32, 4) and batches[0]["obs"].dtype == torch.float32
    assert batches[0]["actions"].dtype == torch.int64
    keys = {"obs", "actions", "rewards", "next_obs", "terminated", "truncated", "env_steps"}
    assert set(batches[0]) == keys
    # each batch carries the agent step it was sampled at: the clock of its update
    assert [b["env_steps"] for b in batches] == steps_at
    # train_freq 4: one gradient step per 4 agent steps between learning_starts and total_steps
    assert len(batches) == pytest.approx((collector.env_steps - 300) / 4, abs=2)
    assert collector.env_steps >= 600


def test_gradient_steps_sample_several_batches_per_update_and_resume_mid_update():
    """A replay ratio above one (``gradient_steps`` batches per update): each update's batches
    carry the same agent step and are fresh samples, and a stream saved between two of them
    finishes that update after a resume instead of skipping to the next one."""
    env = make_vec_env(OmegaConf.structured(EnvConfig(name="cp", id="CartPole-v1")), 1)
    buffer = make_buffer(1000, 1, (4,), np.float32, stack=None, seed=0)
    collector = Collector(
        env=env, policy=random_policy, epsilon_schedule=lambda _: 1.0, buffer=buffer, seed=0
    )
    args = dict(batch_size=16, learning_starts=100, train_freq=4, total_steps=300)
    stream = ReplayStream(buffer=buffer, collector=collector, gradient_steps=3, **args)
    stamps, obs = [], []
    for batch in stream:
        stamps.append(batch["env_steps"])
        obs.append(batch["obs"])
    # updates at 100, 104, ..., 300: 51 of them, three batches each
    assert stamps == [s for s in range(100, 301, 4) for _ in range(3)]
    for i in range(0, len(obs), 3):  # three different samples, not one batch three times
        assert not torch.equal(obs[i], obs[i + 1]) and not torch.equal(obs[i + 1], obs[i + 2])

    stream = ReplayStream(buffer=buffer, collector=collector, gradient_steps=3, **args)
    stream.next_update, stream.total_steps = collector.env_steps, collector.env_steps + 8
    batches = iter(stream)
    next(batches)  # the first of an update's three batches
    state = stream.state_dict()
    assert state["burst_left"] == 2
    resumed = ReplayStream(buffer=buffer, collector=collector, gradient_steps=3, **args)
    resumed.total_steps = stream.total_steps
    resumed.load_state_dict(state)
    at = collector.env_steps
    assert [b["env_steps"] for b in resumed] == [at, at] + [at + 4] * 3 + [at + 8] * 3
    # a stream state saved before gradient_steps existed resumes between two updates
    old = ReplayStream(buffer=buffer, collector=collector, gradient_steps=3, **args)
    old.load_state_dict({"next_update": 7})
    assert (old.next_update, old.burst_left) == (7, 0)
