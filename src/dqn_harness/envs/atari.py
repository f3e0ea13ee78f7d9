"""Atari preprocessing: the classic DQN pipeline on two backends.

gymnasium backend: ``AtariPreprocessing`` (no-op reset, max-and-skip with max-pooling of the last
two frames, grayscale, resize) + :class:`FireReset` + ``FrameStackObservation``. Gymnasium has
maintained wrappers for everything except FIRE on reset, so that is the only one written here.

ale_vector backend: ``ale_py.vector_env.AtariVectorEnv`` does the same preprocessing in C++
threads. Both pad the frame stack with zeros at episode start, so observations from either
backend mean the same thing to the replay buffer and the network.

Rewards are never clipped here: episode returns must be the game score. DQN clips for training
when ``algo.reward_clip`` is set.
"""

from __future__ import annotations

import re
from typing import Any

import ale_py
import gymnasium as gym
import numpy as np
from gymnasium.vector import SyncVectorEnv, VectorEnv, VectorObservationWrapper

gym.register_envs(ale_py)

# The seed's frame step: resize to 84 wide x 110 high, keep rows 18..101 (drops the score bar).
SEED_RESIZE = (84, 110)
SEED_ROWS = slice(18, 102)
ALE_MAX_FRAMES = 108_000  # ALE's own cap on an episode: 30 minutes at 60 frames/s


class FireReset(gym.Wrapper):
    """Press FIRE (then UP) after reset: games like Breakout and Pong wait for it to start.

    Without it an agent can sit in a never-starting game for the whole episode, which looks like
    a learning failure but is a preprocessing one.
    """

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        meanings = env.unwrapped.get_action_meanings()  # type: ignore[attr-defined]
        if len(meanings) < 3 or meanings[1] != "FIRE":
            raise ValueError("FireReset needs a game whose action 1 is FIRE")

    def reset(self, **kwargs: Any) -> tuple[Any, dict[str, Any]]:
        self.env.reset(**kwargs)
        for action in (1, 2):
            obs, _, terminated, truncated, info = self.env.step(action)
            if terminated or truncated:
                obs, info = self.env.reset(**kwargs)
        return obs, info


class EpisodicLife(gym.Wrapper):
    """A lost life ends the episode for the learner, not the game (``env.terminal_on_life_loss``).

    As the Nature paper trained, and as SB3's ``EpisodicLifeEnv`` and ALE's vector env
    (``episodic_life``) do: the step that loses a life returns ``terminated`` (no bootstrap
    past it), and the reset that follows only steps a no-op, so the agent plays on from where
    the game is; the emulator is reset only at game over. gymnasium's own
    ``AtariPreprocessing(terminal_on_life_loss=True)`` resets the whole game instead, so an
    agent would never see a later life.
    """

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        self.lives = 0
        self.game_over = True

    def step(self, action: Any) -> tuple[Any, Any, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, info = self.env.step(action)
        self.game_over = bool(terminated or truncated)
        lives = self.env.unwrapped.ale.lives()  # type: ignore[attr-defined]
        if 0 < lives < self.lives:
            terminated = True
        self.lives = lives
        return obs, reward, terminated, truncated, info

    def reset(self, **kwargs: Any) -> tuple[Any, dict[str, Any]]:
        if self.game_over:
            obs, info = self.env.reset(**kwargs)
        else:
            obs, _, terminated, truncated, info = self.env.step(0)
            if terminated or truncated:
                obs, info = self.env.reset(**kwargs)
        self.game_over = False
        self.lives = self.env.unwrapped.ale.lives()  # type: ignore[attr-defined]
        return obs, info


class CropRows(gym.ObservationWrapper):
    """Keep rows 18..101 of an 84x110 frame: the seed's crop that removes the score bar."""

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        self.observation_space = gym.spaces.Box(0, 255, (84, 84), np.uint8)

    def observation(self, observation: np.ndarray) -> np.ndarray:
        return observation[SEED_ROWS]


class VectorCropRows(VectorObservationWrapper):
    """CropRows for a vector env whose observations are (N, stack, 110, 84)."""

    def __init__(self, env: VectorEnv) -> None:
        super().__init__(env)
        stack = env.single_observation_space.shape[0]  # type: ignore[index]
        self.single_observation_space = gym.spaces.Box(0, 255, (stack, 84, 84), np.uint8)
        self.observation_space = gym.vector.utils.batch_space(
            self.single_observation_space, env.num_envs
        )

    def observations(self, observations: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(observations[:, :, SEED_ROWS])


def ale_game(env_id: str) -> str:
    """ALE/MsPacman-v5 -> ms_pacman, the ROM name AtariVectorEnv expects."""
    match = re.fullmatch(r"ALE/(\w+)-v\d+", env_id)
    if not match:
        raise ValueError(f"'{env_id}' is not an ALE id like ALE/Pong-v5")
    return re.sub(r"(?<!^)(?=[A-Z])", "_", match.group(1)).lower()


def has_fire(env: gym.Env) -> bool:
    meanings = env.unwrapped.get_action_meanings()  # type: ignore[attr-defined]
    return len(meanings) >= 3 and meanings[1] == "FIRE"


def max_frames(cfg: Any) -> int:
    """Emulator frames an episode may last: ``env.max_num_frames_per_episode`` (ALE's 108,000
    by default) or ``env.max_episode_steps`` agent steps, whichever is shorter."""
    frames = cfg.max_num_frames_per_episode or ALE_MAX_FRAMES
    if cfg.max_episode_steps is not None:
        frames = min(frames, cfg.max_episode_steps * cfg.frame_skip)
    return int(frames)


def make_atari_env(cfg: Any, render_mode: str | None = None, training: bool = True) -> gym.Env:
    """One preprocessed Atari env (the gymnasium backend's building block). ``training=False``
    (evaluation) always plays whole games, whatever ``env.terminal_on_life_loss`` says."""
    env = gym.make(
        cfg.id,
        frameskip=1,
        repeat_action_probability=cfg.repeat_action_probability,
        full_action_space=cfg.full_action_space,
        max_num_frames_per_episode=max_frames(cfg),
        render_mode=render_mode,
        **dict(cfg.kwargs),
    )
    crop = cfg.frame == "seed_crop"
    env = gym.wrappers.AtariPreprocessing(
        env,
        noop_max=cfg.noop_max,
        frame_skip=cfg.frame_skip,
        screen_size=SEED_RESIZE if crop else 84,
    )
    if crop:
        env = CropRows(env)
    if training and cfg.terminal_on_life_loss:
        env = EpisodicLife(env)
    if cfg.fire_reset and has_fire(env):
        env = FireReset(env)
    return gym.wrappers.FrameStackObservation(env, cfg.frame_stack, padding_type="zero")


def make_atari_vector(cfg: Any, num_envs: int, training: bool = True) -> VectorEnv:
    """``num_envs`` preprocessed games: ALE's C++ vector env (``env.backend=ale_vector``), or
    gymnasium's wrappers in a SyncVectorEnv. Both honour every ``env.*`` key alike."""
    if cfg.backend == "ale_vector":
        crop = cfg.frame == "seed_crop"
        width, height = SEED_RESIZE if crop else (84, 84)
        venv: VectorEnv = ale_py.vector_env.AtariVectorEnv(
            ale_game(cfg.id),
            num_envs,
            frameskip=cfg.frame_skip,
            stack_num=cfg.frame_stack,
            img_height=height,
            img_width=width,
            noop_max=cfg.noop_max,
            use_fire_reset=cfg.fire_reset,
            reward_clipping=False,
            repeat_action_probability=cfg.repeat_action_probability,
            full_action_space=cfg.full_action_space,
            episodic_life=bool(training and cfg.terminal_on_life_loss),
            max_num_frames_per_episode=max_frames(cfg),
            **dict(cfg.kwargs),
        )
        return VectorCropRows(venv) if crop else venv
    return SyncVectorEnv([lambda: make_atari_env(cfg, training=training) for _ in range(num_envs)])
