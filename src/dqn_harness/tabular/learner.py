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

from dqn_harness.collector import Collector
from dqn_harness.schedules import EpsilonSchedule
from dqn_harness.tabular.qtable import QTable


class TabularLearner:
    """The tabular side of a run: the Q-table, its exploration, and the loop that updates it."""

    buffer = None  # learns online, from each transition as it happens

    warmup_steps = 0  # it learns from the first step

    def __init__(
        self,
        table: QTable,
        *,
        epsilon: Callable[[int], float],
        alpha: float,
        gamma: float,
        total_steps: int,
    ) -> None:
        self.table = table
        self.epsilon = epsilon
        self.alpha, self.gamma, self.total_steps = alpha, gamma, total_steps
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

    def on_evaluation(self, env_steps: int, mean: float) -> str | None:
        return None  # α is fixed: nothing here follows the evaluations

    def fit(
        self,
        collector: Collector,
        after: Callable[[int], None],
        done: Callable[[], bool],
        interrupted: Callable[[], bool],
    ) -> None:
        """Q(s,a) += α (r + γ max Q(s',·) − Q(s,a)) for every real transition, until done;
        ``after(agent step)`` runs the run's cadences after every env step."""
        alpha, gamma = self.alpha, self.gamma
        while collector.env_steps < self.total_steps and not done():
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
            after(collector.env_steps)


def build_tabular(cfg: DictConfig, env: VectorEnv) -> TabularLearner:
    """The table and its exploration: ``algo.explore=epsilon`` follows ``schedule.epsilon``;
    ``random`` is the seed's way (Q-learning is off-policy, so a uniform behaviour works)."""
    epsilon: Callable[[int], float] = (
        EpsilonSchedule.from_config(cfg.schedule.epsilon)
        if cfg.algo.explore == "epsilon"
        else (lambda _steps: 1.0)
    )
    return TabularLearner(
        QTable(int(env.single_action_space.n), seed=cfg.seed),  # type: ignore[attr-defined]
        epsilon=epsilon,
        alpha=cfg.algo.alpha,
        gamma=cfg.algo.gamma,
        total_steps=cfg.total_steps,
    )
