"""The metrics log: every record, with agent env steps as its x-axis, to ``metrics.jsonl`` and to
the configured loggers.

Lightning's ``global_step`` counts gradient steps, which differ from agent steps by ``train_freq``
and from Atari frames by ``frame_skip``. Every metric here is logged with an explicit ``env_steps``
value, and in W&B ``env_steps`` is declared the step metric (``wandb_setup.py``), so curves from
DQN and tabular runs, or runs with different ``train_freq``, line up. The same records go to
``metrics.jsonl`` in the run dir whatever the logger, so sweeps and local tools read a run's
curves without W&B.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from dqn_harness.dotted import flatten
from dqn_harness.files import write_text_atomic
from dqn_harness.tracking.wandb_setup import Loggers

STEP_METRIC = "env_steps"
METRICS_FILE = "metrics.jsonl"
CONFIG_FILE = "config.json"  # the flat resolved config W&B gets; compare.py filters on it
# What runs log (sweep objectives are checked against these before any trial runs).
LOGGED_METRICS = (
    "eval/return_mean",
    "eval/return_std",
    "eval/length_mean",
    "eval/wall_s",
    "eval/video_s",
    "train/episode_return",
    "train/episode_length",
    "train/epsilon",
    "train/loss",
    "train/q_mean",
    "train/grad_steps",
    "train/n_step",
    "train/td_error_abs",
    "train/states_visited",
    "perf/sps",
    "perf/wall_s",
)


def read_metrics(run_dir: Path, key: str) -> list[tuple[int, float]]:
    """(env_steps, value) of every record of ``key`` a run logged, in order."""
    path = run_dir / METRICS_FILE
    if not path.exists():
        return []
    out = []
    with open(path) as f:
        for line in f:
            record = json.loads(line)
            if key in record:
                out.append((int(record[STEP_METRIC]), float(record[key])))
    return out


def flat_config(cfg: DictConfig, extra_config: dict[str, Any] | None = None) -> dict[str, Any]:
    """The run's resolved config, flat, plus what a sweep adds (study, trial number)."""
    return {**flatten(OmegaConf.to_container(cfg, resolve=True)), **(extra_config or {})}


def write_config(run_dir: Path, config: dict[str, Any]) -> None:
    """``config.json``: what W&B gets as the run config, kept in the run dir for compare.py."""
    write_text_atomic(run_dir / CONFIG_FILE, json.dumps(config, indent=1))


class MetricsLog:
    """Fans each record out to ``metrics.jsonl`` and the loggers.

    A resumed run (``append``) continues its records (trimmed to the checkpoint); a new run in a
    reused directory starts a fresh file rather than splicing two runs' curves together.
    """

    def __init__(self, run_dir: Path, loggers: Loggers, append: bool = False) -> None:
        self.loggers = loggers
        self.file = open(run_dir / METRICS_FILE, "a" if append else "w")  # noqa: SIM115

    def log(self, metrics: dict[str, float], env_steps: int) -> None:
        self.file.write(json.dumps({STEP_METRIC: env_steps, **metrics}) + "\n")
        self.loggers.log(metrics, env_steps)

    def flush(self) -> None:
        """Put every record so far on disk: called before each checkpoint, so a killed run's
        metrics.jsonl holds every step up to the checkpoint it resumes from (no gap)."""
        self.file.flush()

    def close(self) -> None:
        self.file.close()
