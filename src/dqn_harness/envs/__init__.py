"""Environment construction: every backend is a gymnasium vector env (NEXT_STEP autoreset).

The collector and the evaluator only ever see ``VectorEnv``s, so one code path serves CartPole,
FrozenLake and Atari on either backend. :func:`make_env` is the one place a single env is made
from ``env.*`` (training, evaluation and filmed episodes all get the same preprocessing).
"""

from __future__ import annotations

import os
from typing import Any

import ale_py
import gymnasium as gym
import numpy as np
from gymnasium.vector import SyncVectorEnv, VectorEnv

from dqn_harness.envs.atari import ale_game, make_atari_env, make_atari_vector
from dqn_harness.errors import UsageError

gym.register_envs(ale_py)


def is_atari(env_id: str) -> bool:
    return env_id.startswith("ALE/")


def check_env_id(cfg: Any) -> None:
    """Fail early, with the key, on an env id gymnasium or ALE does not know."""
    try:
        gym.spec(cfg.id)
    except gym.error.Error as exc:
        raise UsageError("env.id", f"unknown environment '{cfg.id}' ({exc})") from None
    if is_atari(cfg.id):
        if ale_py.roms.get_rom_path(ale_game(cfg.id)) is None:
            raise UsageError("env.id", f"no ALE ROM for '{cfg.id}'")
    elif cfg.backend == "ale_vector":
        raise UsageError("env.backend", f"ale_vector runs Atari games only, not '{cfg.id}'")
    elif cfg.frame != "full":
        raise UsageError("env.frame", f"frame modes apply to Atari games only, not '{cfg.id}'")


def make_env(cfg: Any, render_mode: str | None = None, training: bool = True) -> gym.Env:
    """One env from ``env.*``: Atari games get the preprocessing, others ``gym.make`` as is."""
    if is_atari(cfg.id):
        return make_atari_env(cfg, render_mode=render_mode, training=training)
    if render_mode is not None:  # frames go to arrays, never a screen: SDL needs no display
        os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
    kwargs = dict(cfg.kwargs)
    if cfg.max_episode_steps is not None:
        kwargs["max_episode_steps"] = cfg.max_episode_steps
    return gym.make(cfg.id, render_mode=render_mode, **kwargs)


def make_vec_env(cfg: Any, num_envs: int, training: bool = True) -> VectorEnv:
    """Build ``num_envs`` copies of the configured env; seed it with ``reset(seed=...)``.

    ``training=False`` is an evaluation env: it always plays whole games (no life-loss ends).
    """
    if is_atari(cfg.id):
        return make_atari_vector(cfg, num_envs, training)
    return SyncVectorEnv([lambda: make_env(cfg) for _ in range(num_envs)])


# Solve thresholds of the games the harness has presets for, by id rather than by preset: a
# preset's threshold would follow ``env.id=`` to another game (Pong's 19 ended a SpaceInvaders run
# at its first evaluation). ALE specs carry none.
KNOWN_THRESHOLDS = {"ALE/Pong-v5": 19.0}


def reward_threshold(cfg: Any) -> float | None:
    """``env.reward_threshold`` if set, else the known one for the game, else the env spec's
    (CartPole 475, FrozenLake 0.70); ``None`` (train to total_steps) for any other game."""
    if cfg.reward_threshold is not None:
        return float(cfg.reward_threshold)
    if cfg.id in KNOWN_THRESHOLDS:
        return KNOWN_THRESHOLDS[cfg.id]
    threshold = gym.spec(cfg.id).reward_threshold
    return None if threshold is None else float(threshold)


# The best score one episode can reach, by id for the same reason: Pong ends at 21 points.
KNOWN_MAX_RETURNS = {"ALE/Pong-v5": 21.0}


def max_return(cfg: Any) -> float | None:
    """``env.max_return`` if set, else the known one for the game, else ``None`` (unknown)."""
    if cfg.max_return is not None:
        return float(cfg.max_return)
    return KNOWN_MAX_RETURNS.get(cfg.id)


def single_observation_space(cfg: Any) -> gym.Space:
    """The observation space an agent will see, without building the (possibly vector) env."""
    if is_atari(cfg.id):
        return gym.spaces.Box(0, 255, (cfg.frame_stack, 84, 84), dtype=np.uint8)
    env = make_env(cfg)
    space = env.observation_space
    env.close()
    return space
