"""The Atari pipeline on real Pong frames, both backends, both frame modes."""

from __future__ import annotations

import cv2
import gymnasium as gym
import numpy as np
import pytest
from omegaconf import OmegaConf

from dqn_harness.config import EnvConfig
from dqn_harness.envs import make_vec_env
from dqn_harness.envs.atari import FireReset, ale_game, make_atari_env


def pong_cfg(**kw):
    return OmegaConf.structured(EnvConfig(name="pong", id="ALE/Pong-v5", **kw))


@pytest.mark.parametrize("backend", ["gymnasium", "ale_vector"])
@pytest.mark.parametrize("frame", ["full", "seed_crop"])
def test_observations_are_stacked_uint8_channels_first(backend, frame):
    env = make_vec_env(pong_cfg(backend=backend, frame=frame), 2)
    obs, _ = env.reset(seed=0)
    assert obs.shape == (2, 4, 84, 84) and obs.dtype == np.uint8
    assert env.single_observation_space.shape == (4, 84, 84)
    # reset pads the stack with zeros: only the newest frame holds the screen
    assert (obs[:, :3] == 0).all() and (obs[:, 3] > 0).any()
    prev = obs
    for _ in range(6):
        obs, *_ = env.step(np.zeros(2, dtype=np.int64))
        # stacking order: oldest first, each step shifts the stack left by one frame
        np.testing.assert_array_equal(obs[:, :3], prev[:, 1:])
        prev = obs
    assert (obs > 0).all(axis=(2, 3)).all(), "after 4+ steps every slot holds a real frame"
    # reset clears the stack again
    obs, _ = env.reset(seed=1)
    assert (obs[:, :3] == 0).all()
    env.close()


class RecordActions(gym.Wrapper):
    def __init__(self, env):
        super().__init__(env)
        self.actions: list[int] = []

    def step(self, action):
        self.actions.append(int(action))
        return self.env.step(action)


def test_fire_reset_presses_fire_then_up_on_real_pong():
    base = gym.make("ALE/Pong-v5", frameskip=1, repeat_action_probability=0.0)
    recorder = RecordActions(gym.wrappers.AtariPreprocessing(base, noop_max=0))
    env = FireReset(recorder)
    env.reset(seed=0)
    assert recorder.actions == [1, 2]
    assert env.unwrapped.get_action_meanings()[1] == "FIRE"
    # and the configured pipeline includes it for Pong
    wrappers = []
    e = make_atari_env(pong_cfg())
    while isinstance(e, gym.Wrapper):
        wrappers.append(type(e).__name__)
        e = e.env
    assert "FireReset" in wrappers and "AtariPreprocessing" in wrappers


@pytest.mark.parametrize("frame", ["full", "seed_crop"])
def test_frames_are_max_pooled_over_the_last_two_skipped_frames(frame):
    """Re-derive the preprocessed frame from raw grayscale screens of an identical emulator."""
    cfg = pong_cfg(noop_max=0, fire_reset=False, frame=frame)
    env = make_atari_env(cfg)
    raw = gym.make("ALE/Pong-v5", frameskip=1, repeat_action_probability=0.0, obs_type="grayscale")
    obs, _ = env.reset(seed=3)
    raw.reset(seed=3)
    rng = np.random.default_rng(0)
    saw_difference = False
    for _ in range(40):
        action = int(rng.integers(6))
        obs, *_ = env.step(action)
        screens = [raw.step(action)[0] for _ in range(4)]
        pooled = np.maximum(screens[2], screens[3])
        saw_difference |= not np.array_equal(pooled, screens[3])
        if frame == "full":
            expected = cv2.resize(pooled, (84, 84), interpolation=cv2.INTER_AREA)
        else:
            expected = cv2.resize(pooled, (84, 110), interpolation=cv2.INTER_AREA)[18:102]
        np.testing.assert_array_equal(obs[-1], expected)
    assert saw_difference, "the test must cover steps where max-pooling changes the frame"


@pytest.mark.parametrize("backend", ["gymnasium", "ale_vector"])
def test_rewards_are_the_unclipped_game_score(backend):
    """SpaceInvaders scores 5-30 per kill: clipping here would show up as rewards of 1."""
    cfg = OmegaConf.structured(EnvConfig(name="si", id="ALE/SpaceInvaders-v5", backend=backend))
    env = make_vec_env(cfg, 1)
    env.reset(seed=0)
    rng = np.random.default_rng(0)
    rewards = [float(env.step(np.array([rng.integers(6)]))[1][0]) for _ in range(400)]
    assert max(rewards) >= 5
    env.close()


def test_ale_game_names():
    assert ale_game("ALE/Pong-v5") == "pong"
    assert ale_game("ALE/MsPacman-v5") == "ms_pacman"
    assert ale_game("ALE/SpaceInvaders-v5") == "space_invaders"
