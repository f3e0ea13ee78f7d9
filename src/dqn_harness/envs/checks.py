"""Checks of ``env.*``, beside the envs they describe: for training (through ``validate``) and
for ``evaluate.py``'s protocol overrides, which may change only how episodes are played."""

from __future__ import annotations

import inspect
from typing import Any

from dqn_harness.envs import (
    check_env_id,
    is_atari,
    make_env,
    reward_threshold,
    single_observation_space,
)
from dqn_harness.errors import UsageError


def validate_env(env: Any) -> Any:
    """Check ``env.*`` alone; returns the observation space of the env it builds (once)."""
    for key in ("frame_skip", "frame_stack"):
        if not env[key] > 0:
            raise UsageError(f"env.{key}", f"must be > 0, got {env[key]}")
    if not 0.0 <= env.repeat_action_probability <= 1.0:
        raise UsageError(
            "env.repeat_action_probability",
            f"must be in [0, 1], got {env.repeat_action_probability}",
        )
    if env.max_episode_steps is not None and not env.max_episode_steps > 0:
        raise UsageError("env.max_episode_steps", f"must be > 0, got {env.max_episode_steps}")
    if env.noop_max < 0:
        raise UsageError("env.noop_max", f"must be >= 0, got {env.noop_max}")
    check_env_id(env)
    check_kwarg_types(env)
    threshold = reward_threshold(env)
    if env.max_return is not None and threshold is not None and env.max_return < threshold:
        raise UsageError(
            "env.max_return",
            f"{env.max_return} is below the solve threshold {threshold}: no episode could solve",
        )
    if env.max_num_frames_per_episode is not None and not env.max_num_frames_per_episode > 0:
        raise UsageError(
            "env.max_num_frames_per_episode", f"must be > 0, got {env.max_num_frames_per_episode}"
        )
    if env.terminal_on_life_loss and env.backend == "ale_vector":
        raise UsageError(
            "env.terminal_on_life_loss",
            "env.backend=ale_vector resets the whole game at a lost life (its episodic_life), "
            "so no later life would ever be played; use env.backend=gymnasium, which plays on",
        )
    if not is_atari(env.id):
        ale_only = {  # key: (set?, what it is)
            "repeat_action_probability": (env.repeat_action_probability > 0, "sticky actions are"),
            "full_action_space": (env.full_action_space, "the full action set is"),
            "terminal_on_life_loss": (env.terminal_on_life_loss, "a life signal is"),
            "max_num_frames_per_episode": (
                env.max_num_frames_per_episode is not None,
                "an emulator frame cap is",
            ),
        }
        for key, (used, what) in ale_only.items():
            if used:
                raise UsageError(f"env.{key}", f"{what} an ALE setting; {env.id} has none")
    return built_space(env)


def built_space(env_cfg: Any) -> Any:
    """The observation space, from an env built once with ``env.*``: gymnasium and ALE reject
    bad arguments (``env.kwargs.map_name=9x9``) with their own exceptions, which become one line
    naming the key here instead of a traceback from inside the run."""
    try:
        if is_atari(env_cfg.id) and env_cfg.kwargs:
            make_env(env_cfg).close()  # Atari's space is known without an env; its kwargs are not
        return single_observation_space(env_cfg)
    except UsageError:
        raise
    except Exception as exc:  # noqa: BLE001 (whatever the env's constructor raises)
        key = "env.kwargs" if env_cfg.kwargs else "env"
        args = ", ".join(f"{k}={v!r}" for k, v in env_cfg.kwargs.items())
        reason = str(exc).splitlines()[0] if str(exc) else ""
        raise UsageError(
            key,
            f"{env_cfg.id} could not be built{f' with {args}' if args else ''} "
            f"({type(exc).__name__}: {reason[:160]})",
        ) from None


def check_kwarg_types(env_cfg: Any) -> None:
    """``env.kwargs.*`` of the type the env's constructor declares by its default: gymnasium
    passes them on unchecked, so ``is_slippery=maybe`` would build a slippery lake (any
    non-empty string is true) instead of saying the value means nothing."""
    import gymnasium as gym
    from gymnasium.envs.registration import load_env_creator

    if not env_cfg.kwargs or is_atari(env_cfg.id):
        return
    try:
        creator = load_env_creator(gym.spec(env_cfg.id).entry_point)  # type: ignore[arg-type]
        params = inspect.signature(creator).parameters
    except (TypeError, ValueError, AttributeError, ImportError):  # not introspectable: left to it
        return
    for key, value in env_cfg.kwargs.items():
        param = params.get(str(key))
        if param is None or param.default is inspect.Parameter.empty or param.default is None:
            continue
        expected = type(param.default)
        if expected is bool and not isinstance(value, bool):
            raise UsageError(f"env.kwargs.{key}", f"expects true or false, got {value!r}")
        numeric = expected in (int, float) and not isinstance(value, bool)
        if numeric and not isinstance(value, (int, float)):
            raise UsageError(f"env.kwargs.{key}", f"expects a number, got {value!r}")
