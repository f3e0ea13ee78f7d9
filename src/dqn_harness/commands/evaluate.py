"""``python evaluate.py run=<run dir> [checkpoint=best|last|<file>] [episodes=N] [epsilon=E]
[env.repeat_action_probability=P] [env.max_episode_steps=N] [env.noop_max=N] [seed=S]
[num_envs=N] [video=N] [logger=wandb|none]``

Scores a checkpoint with the config it was trained with and writes
``eval-<checkpoint>-<timestamp>.json`` into the run dir (every return kept, mean, std, min, max
and a 95% bootstrap CI), films ``video=N`` more episodes into ``videos/``, and logs to W&B as a
``job_type=eval`` run in the training run's group when the run logged to W&B.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from dqn_harness.arguments import bool_option, key_values
from dqn_harness.commands.entry import entry
from dqn_harness.errors import UsageError

OPTIONS = (
    "run",
    "checkpoint",
    "protocol",
    "episodes",
    "epsilon",
    "seed",
    "num_envs",
    "video",
    "logger",
    "trust_checkpoint",
)
CONF = Path(__file__).resolve().parents[3] / "conf"  # the repository's conf/ (protocol presets)

USAGE = """\
usage: python evaluate.py run=<run dir> [checkpoint=best|last|<file>]
         [protocol=harness|nature|machado|atari100k] [episodes=N] [epsilon=E]
         [seed=S] [num_envs=N] [video=N] [logger=wandb|none]
         [env.repeat_action_probability=P] [env.max_episode_steps=N] [env.noop_max=N]
         [trust_checkpoint=true]
       python evaluate.py checkpoint=<file>

A .pt is loaded as data only (tensors, numbers, strings); one that holds more, which loading
would let run code, is refused unless trust_checkpoint=true says you trust the file.
Scores a checkpoint with the config it was trained with (only the protocol may change) and
writes eval-<checkpoint>-<timestamp>.json into the run dir. README "Evaluating a checkpoint".
"""


def evaluate_options(argv: list[str]) -> tuple[dict[str, str], dict[str, str]]:
    """The command's own options, and the ``env.*`` protocol overrides."""
    options: dict[str, str] = {}
    env: dict[str, str] = {}
    for key, value in key_values(argv, "run=outputs/<run dir>"):
        if key.startswith("env."):
            env[key[4:]] = value
        elif key in OPTIONS:
            options[key] = value
        else:
            raise UsageError(key, f"unknown option (known: {', '.join(OPTIONS)}, env.*)")
    return options, env


def _number(options: dict[str, str], key: str, kind: type, low: float) -> Any:
    if key not in options:
        return None
    try:
        value = kind(options[key])
    except ValueError:
        raise UsageError(key, f"'{options[key]}' is not a {kind.__name__}") from None
    if value < low or (key == "epsilon" and value > 1):
        bound = "[0, 1]" if key == "epsilon" else f">= {low}"
        raise UsageError(key, f"must be {bound}, got {value}")
    return value


def _env_value(text: str) -> Any:
    import yaml

    return yaml.safe_load(text)


def protocol_from(options: dict[str, str], env: dict[str, str]) -> Any:
    """What the command line says of how to play: a named protocol (``protocol=nature``, from
    conf/protocol/), then single settings on top (``epsilon=0.05``, ``env.noop_max=0``)."""
    from dqn_harness.scoring.protocol import Protocol, named_protocol

    video = options.get("video", "0").lower()
    video_n = {"true": 1, "false": 0}.get(video)
    base = named_protocol(CONF, options["protocol"]) if "protocol" in options else Protocol()
    given = Protocol(
        episodes=_number(options, "episodes", int, 1),
        epsilon=_number(options, "epsilon", float, 0.0),
        num_envs=_number(options, "num_envs", int, 1),
        seed=_number(options, "seed", int, 0),
        video=video_n if video_n is not None else _number({"video": video}, "video", int, 0),
        env={k: _env_value(v) for k, v in env.items()},
    )
    return base.updated(given)


def scored_run(options: dict[str, str]) -> tuple[Path, Path]:
    """The checkpoint file to score and the run dir its result goes into."""
    from dqn_harness.scoring.protocol import checkpoint_path

    run_dir = Path(options["run"]).absolute() if "run" in options else None
    path = checkpoint_path(run_dir, options.get("checkpoint", "best"))
    if run_dir is None and path.is_dir():  # an export folder keeps its own results
        run_dir = path.absolute()
    elif run_dir is None:  # checkpoint=<run dir>/checkpoints/<file>.pt, or a loose file
        parent = path.absolute().parent
        run_dir = parent.parent if parent.name == "checkpoints" else parent
    return path, run_dir


def checkpoint_by_folder(path: Path, run_dir: Path) -> str:
    """A checkpoint named by its run's folder (``pong-dqn-s0-.../checkpoints/best.pt``), not by
    where that folder was on the machine that scored it: the result travels with the run."""
    path, run_dir = path.absolute(), run_dir.absolute()
    if path.is_relative_to(run_dir):
        return (Path(run_dir.name) / path.relative_to(run_dir)).as_posix()
    return path.name


def result_logger(options: dict[str, str], cfg: Any) -> str:
    """Where the result is logged besides its file: the run's W&B, unless ``logger=none``."""
    logger = options.get("logger", "wandb" if cfg.logger.name == "wandb" else "none")
    if logger not in ("wandb", "none"):
        raise UsageError("logger", f"'{logger}' is not one of wandb, none")
    if logger == "wandb":
        from dqn_harness.tracking.wandb_mode import check_wandb_login

        check_wandb_login(cfg.logger)
    return logger


def evaluate_command(argv: list[str]) -> int:
    """Score, write, log, print; any bad input on the way raises a UsageError."""
    options, env = evaluate_options(argv)
    protocol = protocol_from(options, env)
    trust = bool_option(options, "trust_checkpoint")
    from dqn_harness.config import register_configs
    from dqn_harness.scoring.protocol import load_weights, score, scoring_config
    from dqn_harness.scoring.report import check_same_env, log_to_wandb, result_line, write_result

    register_configs()
    path, run_dir = scored_run(options)
    weights = load_weights(path, trust)
    if "run" in options and options.get("checkpoint", "best") not in ("best", "last"):
        check_same_env(run_dir, weights["config"])
    cfg = scoring_config(weights["config"], protocol)
    logger = result_logger(options, cfg)
    tag = f"eval-{path.stem}-{time.strftime('%Y%m%d-%H%M%S')}"
    result = {
        "checkpoint": checkpoint_by_folder(path, run_dir),
        "checkpoint_env_steps": int(weights["env_steps"]),
        "run_name": cfg.run_name,
        "algo": cfg.algo.name,
        **score(cfg, weights, protocol, run_dir / "videos", tag),
    }
    result["wandb_run_dir"] = log_to_wandb(cfg, result, tag, logger)
    out = write_result(run_dir, tag, result)
    print(result_line(result, path.name))
    print(f"written: {out}")
    for video in result["videos"]:
        print(f"video: {video}")
    if result["wandb_run_dir"]:
        print(f"W&B run: {result['wandb_run_dir']}")
    return 0


def evaluate_main(argv: list[str]) -> int:
    """``python evaluate.py``: :func:`evaluate_command` under the one command contract."""
    return entry(evaluate_command, USAGE, argv)
