"""Checks of ``env.*``, beside the envs they describe: for training (through ``validate``) and
for ``evaluate.py``'s protocol overrides, which may change only how episodes are played."""

from __future__ import annotations

from typing import Any

from dqn_harness.envs import check_env_id, is_atari, make_env, single_observation_space
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
    if env.repeat_action_probability > 0 and not is_atari(env.id):
        raise UsageError(
            "env.repeat_action_probability", f"sticky actions are an ALE setting; {env.id} has none"
        )
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
