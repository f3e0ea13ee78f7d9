"""Tabular Q-learning training: one TD update per real env step, on envs with discrete states.

Unlike the seed's loop, evaluation results actually drive the stop: training ends when the
greedy policy's mean return reaches the threshold.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from gymnasium.vector import VectorEnv
from omegaconf import DictConfig

from dqn_harness.agents.tabular import QTable
from dqn_harness.collector import Collector
from dqn_harness.schedules import EpsilonSchedule
from dqn_harness.training.callbacks import Periodic
from dqn_harness.training.stopping import StopFlag


class TabularLearner:
    """The tabular side of a run: the Q-table, its exploration, and the loop that updates it."""

    buffer = None  # learns online, from each transition as it happens

    def __init__(self, cfg: DictConfig, env: VectorEnv) -> None:
        self.cfg = cfg
        self.table = QTable(int(env.single_action_space.n), seed=cfg.seed)  # type: ignore[attr-defined]
        self.epsilon: Callable[[int], float] = (
            EpsilonSchedule.from_config(cfg.schedule.epsilon)
            if cfg.algo.explore == "epsilon"
            else (lambda _steps: 1.0)  # the seed's way: Q-learning is off-policy
        )
        self.td_abs, self.updates = 0.0, 0

    def greedy(self, obs: np.ndarray) -> np.ndarray:
        return self.table.greedy(obs)

    def check_finite(self) -> None:
        """A table of finite rewards stays finite: nothing to check."""

    def stats(self) -> dict[str, float]:
        stats = {
            "train/td_error_abs": self.td_abs / max(self.updates, 1),
            "train/states_visited": float(len(self.table.rows)),
        }
        self.td_abs, self.updates = 0.0, 0
        return stats

    def weights(self) -> dict[str, Any]:
        return self.table.state_dict()

    def state_dict(self) -> dict[str, Any]:
        return self.table.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.table.load_state_dict(state)

    policy_step = None  # the table learns at every step: the collector's count is its clock

    def summary(self) -> dict[str, Any]:
        return {"states_visited": len(self.table.rows)}

    def fit(
        self, collector: Collector, periodic: Periodic, stop: StopFlag, done: Callable[[], bool]
    ) -> None:
        """Q(s,a) += α (r + γ max Q(s',·) − Q(s,a)) for every real transition, until done."""
        alpha, gamma = self.cfg.algo.alpha, self.cfg.algo.gamma
        while collector.env_steps < self.cfg.total_steps and not done():
            t = collector.step()
            for e in np.flatnonzero(t.real):
                td = self.table.update(
                    int(t.obs[e]),
                    int(t.actions[e]),
                    float(t.rewards[e]),
                    int(t.next_obs[e]),
                    bool(t.terminated[e]),
                    alpha,
                    gamma,
                )
                self.td_abs += abs(td)
                self.updates += 1
            periodic.after(collector.env_steps)
