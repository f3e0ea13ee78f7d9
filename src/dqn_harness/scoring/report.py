"""What ``evaluate.py`` reports: the result file, the W&B ``job_type=eval`` run, and the check
that a loose checkpoint file belongs to the run it is scored into."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from dqn_harness.dotted import flatten
from dqn_harness.errors import UsageError
from dqn_harness.files import write_text_atomic
from dqn_harness.run.checkpoint import COMPATIBLE_KEYS
from dqn_harness.tracking.metrics import CONFIG_FILE


def check_same_env(run_dir: Path, saved: dict[str, Any]) -> None:
    """``checkpoint=<file>`` from another run, scored into ``run=``: the two must match."""
    path = run_dir / CONFIG_FILE
    if not path.exists():
        raise UsageError("run", f"{run_dir} is not a train.py run directory (no {CONFIG_FILE})")
    run_cfg, ckpt_cfg = json.loads(path.read_text()), flatten(saved)
    for key in COMPATIBLE_KEYS:
        if run_cfg.get(key) != ckpt_cfg.get(key):
            raise UsageError(
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

    from dqn_harness.tracking.wandb_mode import wandb_mode

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
            "protocol": result["protocol"],
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


def write_result(run_dir: Path, tag: str, result: dict[str, Any]) -> Path:
    """``eval-<checkpoint>-<timestamp>.json`` in the run dir: every return kept."""
    path = run_dir / f"{tag}.json"
    write_text_atomic(path, json.dumps(result, indent=2) + "\n")
    return path


def result_line(result: dict[str, Any], name: str) -> str:
    low, high = result["return_ci95"]
    return (
        f"{result['episodes']} episodes of {name} ({result['checkpoint_env_steps']:,} agent "
        f"steps) at epsilon {result['epsilon']:g}: return {result['return_mean']:.2f} "
        f"[95% CI {low:.2f}, {high:.2f}], std {result['return_std']:.2f}, "
        f"min {result['return_min']:g}, max {result['return_max']:g}"
    )
