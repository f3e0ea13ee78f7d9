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
import os
import time
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from dqn_harness.dotted import flatten
from dqn_harness.files import disk_full, is_disk_full, read_jsonl, write_text_atomic
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
    """(env_steps, value) of every record of ``key`` a run logged, in order (a torn last line,
    from a kill or a full disk, is dropped with a warning)."""
    path = run_dir / METRICS_FILE
    if not path.exists():
        return []
    return [
        (int(record[STEP_METRIC]), float(record[key]))
        for record in read_jsonl(path)
        if key in record
    ]


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

    Records are buffered here and written as whole lines: every ``FLUSH_BYTES`` or ``FLUSH_S``
    seconds (so ``tail -f`` follows a run), before each checkpoint, and at the end. A write
    that fails (a full disk) cuts the file back to its last whole line and raises
    :class:`~dqn_harness.errors.DiskFull`: no half line is left for a resume to trip on, and
    the records after the last checkpoint are logged again on resume.
    """

    FLUSH_BYTES = 64 * 1024
    FLUSH_S = 10.0

    def __init__(self, run_dir: Path, loggers: Loggers, append: bool = False) -> None:
        self.loggers = loggers
        self.path = run_dir / METRICS_FILE
        self.fd: int | None = os.open(
            self.path, os.O_WRONLY | os.O_CREAT | (os.O_APPEND if append else os.O_TRUNC), 0o644
        )
        self.pending: list[bytes] = []
        self.pending_bytes = 0
        self.flushed_at = time.monotonic()

    def log(self, metrics: dict[str, float], env_steps: int) -> None:
        line = (json.dumps({STEP_METRIC: env_steps, **metrics}) + "\n").encode()
        self.pending.append(line)
        self.pending_bytes += len(line)
        if (
            self.pending_bytes >= self.FLUSH_BYTES
            or time.monotonic() - self.flushed_at >= self.FLUSH_S
        ):
            self.flush()
        self.loggers.log(metrics, env_steps)

    def flush(self) -> None:
        """Put every record so far on disk: called before each checkpoint, so a killed run's
        metrics.jsonl holds every step up to the checkpoint it resumes from (no gap)."""
        if self.fd is None or not self.pending:
            return
        data = b"".join(self.pending)
        self.pending, self.pending_bytes = [], 0
        self.flushed_at = time.monotonic()
        whole = os.lseek(self.fd, 0, os.SEEK_END)  # the file ends with a whole line here
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(self.fd, view) :]
        except OSError as exc:
            os.ftruncate(self.fd, whole)  # frees what the cut line took; never needs space
            if is_disk_full(exc):
                raise disk_full(self.path) from None
            raise

    def close(self) -> None:
        """Flush and close; the file is closed even when the flush fails (and re-raises)."""
        if self.fd is None:
            return
        try:
            self.flush()
        finally:
            os.close(self.fd)
            self.fd = None
