"""What ``python train.py`` does after Hydra has composed the config: short errors, exit codes."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from dqn_harness.config import ConfigError, register_configs

register_configs()


def _drop_empty_run_dir(run_dir: Path) -> None:
    """Hydra creates the run dir before we validate; remove it if it holds only Hydra's files."""
    if run_dir.is_dir() and all(p.name == ".hydra" or p.suffix == ".log" for p in run_dir.iterdir()):
        shutil.rmtree(run_dir, ignore_errors=True)


def train_main(cfg: DictConfig) -> None:
    run_dir = Path(HydraConfig.get().runtime.output_dir)
    from dqn_harness.config import validate

    try:
        validate(cfg)
        from dqn_harness.run import run

        summary = run(cfg, run_dir)
    except ConfigError as exc:
        _drop_empty_run_dir(run_dir)
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    print(describe(summary, run_dir))
    if summary["exit_code"]:
        sys.exit(summary["exit_code"])


def describe(summary: dict, run_dir: Path) -> str:
    lines = [f"{summary['status']} after {summary['env_steps']:,} agent steps "
             f"in {summary['wall_s']:.0f}s ({summary['sps']:.0f} steps/s)"]
    if summary.get("eval_return_mean") is not None:
        lines.append(
            f"eval return {summary['eval_return_mean']:.3f} (best {summary['best_eval_return']:.3f})"
        )
    if summary.get("solved"):
        lines.append(
            f"SOLVED at {summary['solved_at_step']:,} agent steps "
            f"(eval mean >= {summary['reward_threshold']})"
        )
    lines.append(f"run dir: {run_dir}")
    if summary.get("wandb_run_dir"):
        lines.append(f"W&B run: {summary['wandb_run_dir']}")
    return "\n".join(lines)
