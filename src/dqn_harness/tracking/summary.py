"""The run summary: counts and clocks that outlive a resume, and ``summary.json`` at the end.

``summary.json`` is what sweeps read their objective from and what people and scripts look at
first, so it is written on every way a run can end (solved, finished, pruned, interrupted,
diverged, failed). Wall time carries on across ``resume=``: ``perf/wall_s`` is the run's own
training clock, which ``compare.py budget_s=`` goes by. ``cpus`` names the CPU of each
session (``perf.cpu_description``), oldest first: a wall time means little without the machine
it was measured on, and a resumed run may have moved.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from dqn_harness.files import write_text_atomic
from dqn_harness.perf import cpu_description

SUMMARY_FILE = "summary.json"
# Numeric fields of summary.json (sweep objectives may name any of them).
SUMMARY_FIELDS = (
    "best_eval_return",
    "eval_return_mean",
    "solved",
    "solved_at_step",
    "env_steps",
    "episodes",
    "evaluations",
    "grad_steps",
    "sps",
    "wall_s",
)


class RunSummary:
    """Episodes, agent steps and wall time of a run (across resumes); writes summary.json."""

    def __init__(self, run_dir: Path, wandb_run_dir: str | None = None) -> None:
        self.path = run_dir / SUMMARY_FILE
        self.wandb_run_dir = wandb_run_dir
        self.start = time.perf_counter()
        self.prior_wall_s = 0.0  # wall time of the sessions before a resume
        self.episodes = 0
        self.env_steps = 0
        self._rate_mark = (self.start, 0)
        self.here = cpu_description()
        self.cpus = [self.here]

    @property
    def wall_s(self) -> float:
        return self.prior_wall_s + time.perf_counter() - self.start

    def on_episode(self) -> None:
        self.episodes += 1

    def on_step(self, env_steps: int) -> None:
        self.env_steps = env_steps

    def throughput(self, env_steps: int) -> dict[str, float]:
        """perf/sps since the previous call and perf/wall_s, for a periodic log record."""
        now = time.perf_counter()
        t0, s0 = self._rate_mark
        self._rate_mark = (now, env_steps)
        return {"perf/sps": (env_steps - s0) / max(now - t0, 1e-9), "perf/wall_s": self.wall_s}

    def state_dict(self) -> dict[str, Any]:
        return {
            "episodes": self.episodes,
            "env_steps": self.env_steps,
            "wall_s": self.wall_s,
            "cpus": self.cpus,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.episodes = state["episodes"]
        self.env_steps = state["env_steps"]
        self.prior_wall_s = state["wall_s"]
        earlier = state.get("cpus", [])  # checkpoints before 2026-12-02 did not keep them
        self.cpus = earlier + ([] if earlier[-1:] == [self.here] else [self.here])
        self._rate_mark = (self.start, self.env_steps)

    def write(self, fields: dict[str, Any]) -> dict[str, Any]:
        """summary.json (atomic: a failed write keeps the previous one); returns its fields."""
        summary = self.fields(fields)
        write_text_atomic(self.path, json.dumps(summary, indent=2))
        return summary

    def fields(self, fields: dict[str, Any]) -> dict[str, Any]:
        """What summary.json holds: the run's counts and clocks, then ``fields``."""
        return {
            "env_steps": self.env_steps,
            "sps": self.env_steps / max(self.wall_s, 1e-9),
            "wall_s": self.wall_s,
            "wandb_run_dir": self.wandb_run_dir,
            "episodes": self.episodes,
            "cpus": self.cpus,
            **fields,
        }
