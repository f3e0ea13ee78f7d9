"""``python evaluate.py run=<run dir> [checkpoint=best|last|<file>] [episodes=N] [epsilon=E]
[env.repeat_action_probability=P] [env.max_episode_steps=N] [env.noop_max=N] [seed=S]
[num_envs=N] [video=N] [logger=wandb|none]``

Scores a checkpoint with the config it was trained with and writes
``eval-<checkpoint>-<timestamp>.json`` into the run dir (every return kept, mean, std, min, max
and a 95% bootstrap CI), films ``video=N`` more episodes into ``videos/``, and logs to W&B as a
``job_type=eval`` run in the training run's group when the run logged to W&B.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

from dqn_harness.errors import ConfigError

OPTIONS = ("run", "checkpoint", "episodes", "epsilon", "seed", "num_envs", "video", "logger")


def parse_args(argv: list[str]) -> tuple[dict[str, str], dict[str, str]]:
    options: dict[str, str] = {}
    env: dict[str, str] = {}
    for arg in argv:
        if arg in ("-h", "--help"):
            print(__doc__)
            sys.exit(0)
        key, sep, value = arg.partition("=")
        if not sep or not key:
            raise ConfigError(arg, "expected key=value (e.g. run=outputs/<run dir>)")
        if key.startswith("env."):
            env[key[4:]] = value
        elif key in OPTIONS:
            options[key] = value
        else:
            raise ConfigError(key, f"unknown option (known: {', '.join(OPTIONS)}, env.*)")
    return options, env


def _number(options: dict[str, str], key: str, kind: type, low: float) -> Any:
    if key not in options:
        return None
    try:
        value = kind(options[key])
    except ValueError:
        raise ConfigError(key, f"'{options[key]}' is not a {kind.__name__}") from None
    if value < low or (key == "epsilon" and value > 1):
        bound = "[0, 1]" if key == "epsilon" else f">= {low}"
        raise ConfigError(key, f"must be {bound}, got {value}")
    return value


def _env_value(text: str) -> Any:
    import yaml

    return yaml.safe_load(text)


def protocol_from(options: dict[str, str], env: dict[str, str]) -> Any:
    from dqn_harness.evaluating.protocol import Protocol

    video = options.get("video", "0").lower()
    video_n = {"true": 1, "false": 0}.get(video)
    return Protocol(
        episodes=_number(options, "episodes", int, 1),
        epsilon=_number(options, "epsilon", float, 0.0),
        num_envs=_number(options, "num_envs", int, 1),
        seed=_number(options, "seed", int, 0),
        video=video_n if video_n is not None else _number({"video": video}, "video", int, 0),
        env={k: _env_value(v) for k, v in env.items()},
    )


def check_same_env(run_dir: Path, saved: dict[str, Any]) -> None:
    """``checkpoint=<file>`` from another run, scored into ``run=``: the two must match."""
    from dqn_harness.tracking import CONFIG_FILE, flatten
    from dqn_harness.training.checkpoint import COMPATIBLE_KEYS

    path = run_dir / CONFIG_FILE
    if not path.exists():
        raise ConfigError("run", f"{run_dir} is not a train.py run directory (no {CONFIG_FILE})")
    run_cfg, ckpt_cfg = json.loads(path.read_text()), flatten(saved)
    for key in COMPATIBLE_KEYS:
        if run_cfg.get(key) != ckpt_cfg.get(key):
            raise ConfigError(
                key,
                f"the checkpoint was trained with {ckpt_cfg.get(key)!r}, "
                f"the run in {run_dir} with {run_cfg.get(key)!r}",
            )


def log_to_wandb(cfg: Any, result: dict[str, Any], tag: str, logger: str) -> str | None:
    """One ``job_type=eval`` W&B run in the training run's group: the returns as a table, the
    statistics in its summary, the videos."""
    if logger != "wandb":
        return None
    import wandb

    from dqn_harness.tracking import flatten
    from dqn_harness.wandb_mode import wandb_mode

    save_dir = Path(cfg.logger.save_dir)
    save_dir.mkdir(parents=True, exist_ok=True)
    stats = {k: v for k, v in result.items() if k.startswith("return_") and k != "return_ci95"}
    run = wandb.init(
        project=cfg.logger.project,
        entity=cfg.logger.entity,
        dir=str(save_dir),
        mode=wandb_mode(cfg.logger.mode),  # type: ignore[arg-type]
        group=cfg.logger.group or cfg.env.name,
        job_type="eval",
        name=f"{cfg.run_name}-{tag}",
        tags=[*cfg.logger.tags, cfg.env.name, cfg.algo.name, "evaluate"],
        config={
            **flatten({k: v for k, v in result.items() if k in ("episodes", "epsilon", "seed")}),
            **{f"protocol.env.{k}": v for k, v in result["env"].items()},
            "evaluated.run_name": cfg.run_name,
            "evaluated.checkpoint": result["checkpoint"],
            "evaluated.env_steps": result["checkpoint_env_steps"],
        },
    )
    table = wandb.Table(columns=["episode", "return", "length"])
    for i, (ret, length) in enumerate(zip(result["returns"], result["lengths"], strict=True)):
        table.add_data(i, ret, length)
    run.log({"eval/returns": table})
    for path in result["videos"]:
        run.log({"eval/video": wandb.Video(path, format="gif")})
    low, high = result["return_ci95"]
    run.summary.update({f"eval/{k}": v for k, v in stats.items()})
    run.summary.update({"eval/return_ci95_low": low, "eval/return_ci95_high": high})
    run_dir = str(Path(run.dir).parent.resolve())
    run.finish()
    return run_dir


def evaluate_main(argv: list[str]) -> int:
    try:
        options, env = parse_args(argv)
        protocol = protocol_from(options, env)
        from dqn_harness.config import register_configs
        from dqn_harness.evaluating.protocol import (
            checkpoint_path,
            load_weights,
            run_config,
            score,
            write_result,
        )

        register_configs()
        run_dir = Path(options["run"]).absolute() if "run" in options else None
        path = checkpoint_path(run_dir, options.get("checkpoint", "best"))
        weights = load_weights(path)
        if run_dir is None:  # checkpoint=<run dir>/checkpoints/<file>.pt, or a loose file
            parent = path.absolute().parent
            run_dir = parent.parent if parent.name == "checkpoints" else parent
        elif "checkpoint" in options and options["checkpoint"] not in ("best", "last"):
            check_same_env(run_dir, weights["config"])
        cfg = run_config(weights["config"], protocol)
        logger = options.get("logger", "wandb" if cfg.logger.name == "wandb" else "none")
        if logger not in ("wandb", "none"):
            raise ConfigError("logger", f"'{logger}' is not one of wandb, none")
        if logger == "wandb":
            from dqn_harness.config import check_wandb_login

            check_wandb_login(cfg.logger)
        tag = f"eval-{path.stem}-{time.strftime('%Y%m%d-%H%M%S')}"
        result = {
            "checkpoint": str(path.absolute()),
            "checkpoint_env_steps": int(weights["env_steps"]),
            "run_name": cfg.run_name,
            "algo": cfg.algo.name,
            **score(cfg, weights, protocol, run_dir / "videos", tag),
        }
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    result["wandb_run_dir"] = log_to_wandb(cfg, result, tag, logger)
    out = write_result(run_dir, tag, result)
    low, high = result["return_ci95"]
    print(
        f"{result['episodes']} episodes of {path.name} ({result['checkpoint_env_steps']:,} agent "
        f"steps) at epsilon {result['epsilon']:g}: return {result['return_mean']:.2f} "
        f"[95% CI {low:.2f}, {high:.2f}], std {result['return_std']:.2f}, "
        f"min {result['return_min']:g}, max {result['return_max']:g}"
    )
    print(f"written: {out}")
    for video in result["videos"]:
        print(f"video: {video}")
    if result["wandb_run_dir"]:
        print(f"W&B run: {result['wandb_run_dir']}")
    return 0
