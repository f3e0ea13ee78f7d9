"""Range and cross-key checks: what types and choices cannot say, one section at a time.

:func:`validate` is called once per run (by the command that starts it: ``train.py``, a sweep
trial, a ``-m`` job) before anything is built or written, and raises the first problem as a
``UsageError`` naming its key. The checks of a component that needs building to be checked live
beside it and are called from here: ``env.*`` in ``envs/checks.py`` (it builds the env once),
the trainer in ``perf.py``, the replay's memory in ``replay/storage.py``, the W&B key in
``tracking/wandb_mode.py``, a user's network class in ``nets.py``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium.spaces import Discrete
from omegaconf import DictConfig, OmegaConf

from dqn_harness.config.compose import check_choices
from dqn_harness.config.schema import MOVED_KEYS, Config
from dqn_harness.errors import UsageError

# Counts that must be > 0, by section (agent steps unless the name says otherwise).
POSITIVE = (
    "schedule.epsilon.steps",
    "algo.target_sync",
    "algo.n_step",
    "algo.n_step_steps",
    "buffer.capacity",
    "batch_size",
    "train_freq",
    "gradient_steps",
    "total_steps",
    "env.num_envs",
    "eval.every",
    "eval.episodes",
    "eval.num_envs",
    "eval.video_every",
    "eval.trigger_gap",
    "checkpoint.every",
    "optim.lr",
    "optim.eps",
    "buffer.eps",
)
UNIT = (  # probabilities and exponents in [0, 1]
    "schedule.epsilon.start",
    "schedule.epsilon.end",
    "eval.epsilon",
    "buffer.alpha",
    "buffer.beta",
)


def positive(key: str, value: float) -> None:
    if not value > 0:
        raise UsageError(key, f"must be > 0, got {value}")


def unit(key: str, value: float) -> None:
    if not 0.0 <= value <= 1.0:
        raise UsageError(key, f"must be in [0, 1], got {value}")


def validate(cfg: DictConfig) -> None:
    """Check every section; raise UsageError naming the first bad key. Builds one env."""
    check_known_keys(cfg, OmegaConf.to_container(OmegaConf.structured(Config)), "")
    check_choices(cfg)
    check_numbers(cfg)
    check_algo(cfg)
    check_model(cfg)
    from dqn_harness.perf import check_trainer
    from dqn_harness.tracking.wandb_mode import check_wandb_login

    check_trainer(cfg.trainer)
    check_wandb_login(cfg.logger)
    from dqn_harness.envs import is_atari, reward_threshold
    from dqn_harness.envs.checks import validate_env

    if cfg.protocol.name not in ("preset", "legacy") and not is_atari(cfg.env.id):
        raise UsageError(
            "protocol", f"'{cfg.protocol.name}' is an Atari protocol; {cfg.env.id} is no ALE game"
        )
    space = validate_env(cfg.env)
    check_env_fits_algo(cfg, space)
    if cfg.eval.robust_epsilon is not None and reward_threshold(cfg.env) is None:
        raise UsageError(
            "eval.robust_epsilon",
            f"{cfg.env.id} has no solve threshold (env.reward_threshold) for it to test",
        )


def check_lr(cfg: DictConfig) -> None:
    """The learning-rate keys against each other and the warm-up: a setting that would be
    silently ignored, or a decay that would end before it begins, is refused instead."""
    optim = cfg.optim
    if optim.lr_steps is not None and optim.lr_end is None:
        raise UsageError("optim.lr_steps", "needs optim.lr_end, the rate reached at that step")
    if optim.lr_steps is not None and optim.lr_steps <= cfg.learning_starts:
        raise UsageError(
            "optim.lr_steps",
            f"{optim.lr_steps} is not after learning_starts ({cfg.learning_starts}), "
            "where the decay begins",
        )
    for key, other in (("lr_drop_score", "lr_drop_to"), ("lr_drop_to", "lr_drop_score")):
        if optim[key] is not None and optim[other] is None:
            raise UsageError(f"optim.{key}", f"needs optim.{other} too")
    if optim.lr_drop_score is not None and optim.lr_end is not None:
        raise UsageError(
            "optim.lr_drop_score",
            "choose one of a decay over agent steps (optim.lr_end) and a drop on an "
            "evaluation's score (optim.lr_drop_score)",
        )


def check_robust(eval_cfg: DictConfig) -> None:
    """The robustness test of a solve needs both of its numbers: one alone would be ignored."""
    for key, other in (
        ("robust_epsilon", "robust_threshold"),
        ("robust_threshold", "robust_epsilon"),
        ("robust_episodes", "robust_epsilon"),
    ):
        if eval_cfg[key] is not None and eval_cfg[other] is None:
            raise UsageError(f"eval.{key}", f"needs eval.{other} too")
    if eval_cfg.robust_epsilon is not None:
        unit("eval.robust_epsilon", eval_cfg.robust_epsilon)


def check_numbers(cfg: DictConfig) -> None:
    """Counts > 0, probabilities in [0, 1], and the optional numbers when set."""
    for key in POSITIVE:
        positive(key, OmegaConf.select(cfg, key))
    for key in UNIT:
        unit(key, OmegaConf.select(cfg, key))
    for key in (
        "buffer.beta_steps",
        "trainer.threads",
        "algo.max_grad_norm",
        "algo.n_step_end",
        "optim.lr_end",
        "optim.lr_steps",
        "optim.lr_drop_to",
        "eval.min_episodes",
        "eval.robust_episodes",
    ):
        if OmegaConf.select(cfg, key) is not None:
            positive(key, OmegaConf.select(cfg, key))
    check_lr(cfg)
    check_robust(cfg.eval)
    if cfg.schedule.epsilon.kind == "exponential" and cfg.schedule.epsilon.end <= 0:
        raise UsageError("schedule.epsilon.end", "must be > 0 for an exponential schedule")
    if not 0 <= cfg.seed < 2**31:  # NumPy seeds are < 2**32; evaluation adds offsets
        raise UsageError("seed", f"must be in [0, 2**31), got {cfg.seed}")
    for key in ("learning_starts", "eval.trigger_episodes", "eval.trigger_margin"):
        if OmegaConf.select(cfg, key) < 0:
            raise UsageError(key, f"must be >= 0, got {OmegaConf.select(cfg, key)}")
    slots = cfg.buffer.capacity // cfg.env.num_envs  # each env's share of the replay
    for key in ("algo.n_step", "algo.n_step_end"):
        n = OmegaConf.select(cfg, key)
        if n is not None and n > slots:
            raise UsageError(
                key,
                f"{n}-step windows do not fit a replay of {slots} steps per env "
                f"(buffer.capacity {cfg.buffer.capacity} over env.num_envs {cfg.env.num_envs})",
            )
    if cfg.batch_size > cfg.buffer.capacity:
        raise UsageError(
            "batch_size", f"{cfg.batch_size} is larger than buffer.capacity ({cfg.buffer.capacity})"
        )


def check_algo(cfg: DictConfig) -> None:
    if not 0.0 < cfg.algo.gamma <= 1.0:
        raise UsageError("algo.gamma", f"must be in (0, 1], got {cfg.algo.gamma}")
    if not 0.0 < cfg.algo.alpha <= 1.0:
        raise UsageError("algo.alpha", f"must be in (0, 1], got {cfg.algo.alpha}")
    if cfg.algo.name == "dqn" and cfg.learning_starts < cfg.batch_size:
        raise UsageError(
            "learning_starts",
            f"{cfg.learning_starts} is smaller than batch_size ({cfg.batch_size})",
        )


def check_model(cfg: DictConfig) -> None:
    if any(h <= 0 for h in cfg.model.hidden):
        raise UsageError("model.hidden", f"widths must be > 0, got {list(cfg.model.hidden)}")
    if cfg.model.dueling and not cfg.model.hidden:
        raise UsageError("model.hidden", "a dueling head needs at least one width for its streams")


def check_env_fits_algo(cfg: DictConfig, space: Any) -> None:
    """What the built env's observation space allows: a table needs discrete states, the Nature
    CNN Atari frames, and the replay must fit in memory."""
    from dqn_harness.envs import is_atari

    if cfg.algo.name == "tabular":
        if not isinstance(space, Discrete):
            raise UsageError(
                "algo", f"tabular needs a discrete observation space; {cfg.env.id} has {space}"
            )
        return
    if cfg.model._target_ is not None:
        from dqn_harness.nets import network_class

        network_class(cfg.model._target_)
    elif cfg.model.name != "mlp" and not is_atari(cfg.env.id):
        raise UsageError(
            "model", f"{cfg.model.name} needs Atari frames; use model=mlp for {cfg.env.id}"
        )
    if cfg.algo.augment == "shift" and len(space.shape) != 3:
        raise UsageError(
            "algo.augment", f"shift moves image frames; {cfg.env.id} observes {space.shape}"
        )
    from dqn_harness.replay.storage import check_fits, nbytes_for

    frame_shape = space.shape[1:] if len(space.shape) == 3 else space.shape
    check_fits(
        cfg.buffer.capacity, nbytes_for(cfg.buffer.capacity, frame_shape, np.dtype(space.dtype))
    )


def check_known_keys(cfg: DictConfig, schema: Any, prefix: str) -> None:
    """``+key=value`` can slip past Hydra's struct check; nothing outside the schema may run."""
    for key in cfg:
        full = f"{prefix}{key!s}"
        if full in MOVED_KEYS:
            from dqn_harness.config.compose import moved_key_error

            raise moved_key_error(full)
        if key not in schema:
            raise UsageError(full, "unknown config key")
        if isinstance(schema[key], dict) and full != "env.kwargs":
            check_known_keys(cfg[key], schema[key], f"{full}.")
