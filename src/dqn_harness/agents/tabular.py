"""Tabular Q-learning (the seed's first half) on envs with a discrete observation space.

The table is sparse: a row exists only for states that were updated, so memory follows what the
agent visited, not the size of the state space. Unlike the seed's loop, evaluation results
actually drive the stop: training ends when the greedy policy's mean return reaches the threshold.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

from dqn_harness.checkpointing import run_state, write_state
from dqn_harness.collector import Collector
from dqn_harness.config import ConfigError
from dqn_harness.envs import make_vec_env
from dqn_harness.evaluation import Evaluator, save_atomic
from dqn_harness.schedules import Cadence, EpsilonSchedule
from dqn_harness.stopping import StopFlag
from dqn_harness.tracking import Tracker


class QTable:
    def __init__(self, n_actions: int, seed: int = 0) -> None:
        self.n_actions = n_actions
        self.rows: dict[int, np.ndarray] = {}
        self._zeros = np.zeros(n_actions)
        self.rng = np.random.default_rng(seed)

    def values(self, state: int) -> np.ndarray:
        return self.rows.get(state, self._zeros)

    def update(
        self, s: int, a: int, r: float, s2: int, terminated: bool, alpha: float, gamma: float
    ) -> float:
        """Q(s,a) += α (r + γ max Q(s',·) − Q(s,a)); no bootstrap from a terminal state."""
        target = r if terminated else r + gamma * float(self.values(s2).max())
        row = self.rows.setdefault(s, np.zeros(self.n_actions))
        td_error = target - row[a]
        row[a] += alpha * td_error
        return float(td_error)

    def greedy(self, obs: np.ndarray) -> np.ndarray:
        """argmax with random tie-breaking: unvisited states must not all default to action 0."""
        actions = np.empty(len(obs), dtype=np.int64)
        for i, state in enumerate(np.asarray(obs).tolist()):
            q = self.values(int(state))
            actions[i] = self.rng.choice(np.flatnonzero(q == q.max()))
        return actions

    def load_state_dict(self, state: dict[str, Any]) -> None:
        values = state["values"].numpy()
        self.rows = {int(s): values[i].copy() for i, s in enumerate(state["states"].tolist())}
        if "table_rng" in state:
            self.rng.bit_generator.state = state["table_rng"]

    def state_dict(self) -> dict[str, torch.Tensor]:
        states = sorted(self.rows)
        values = (
            np.stack([self.rows[s] for s in states]) if states else np.zeros((0, self.n_actions))
        )
        return {
            "states": torch.tensor(states, dtype=torch.int64),
            "values": torch.from_numpy(values),
        }


def train_tabular(
    cfg: DictConfig,
    tracker: Tracker,
    evaluator: Evaluator,
    stop: StopFlag,
    resume: dict[str, Any] | None = None,
) -> dict[str, Any]:
    env = make_vec_env(cfg.env, cfg.env.num_envs)
    if not isinstance(env.single_observation_space, gym.spaces.Discrete):
        raise ConfigError(
            "algo.name", f"tabular needs a discrete observation space; {cfg.env.id} has a Box"
        )
    table = QTable(int(env.single_action_space.n), seed=cfg.seed)  # type: ignore[attr-defined]
    if resume is not None:
        table.load_state_dict(resume)
    explore = (
        EpsilonSchedule.from_config(cfg.schedule.epsilon)
        if cfg.algo.explore == "epsilon"
        else (lambda _steps: 1.0)
    )
    collector = Collector(
        env,
        table.greedy,
        explore,
        seed=cfg.seed + (resume["collector"]["env_steps"] if resume else 0),
        on_episode=tracker.on_episode,
        on_step=tracker.on_step,
    )
    if resume is not None:
        collector.restore(resume["collector"])
    alpha, gamma = cfg.algo.alpha, cfg.algo.gamma
    log_cadence = Cadence(cfg.logger.every)
    checkpoint_cadence = Cadence(cfg.checkpoint.every)
    if resume is not None:
        log_cadence.period = resume["log_period"]
        checkpoint_cadence.period = resume["checkpoint_period"]
    td_abs, updates = 0.0, 0
    config = OmegaConf.to_container(cfg, resolve=True)

    def save(path: Path) -> None:
        save_atomic({**table.state_dict(), "env_steps": collector.env_steps}, path, torch.save)

    def save_state() -> None:
        state = {
            **table.state_dict(),
            **run_state(collector, tracker, evaluator, config),
            "table_rng": table.rng.bit_generator.state,
            "log_period": log_cadence.period,
            "checkpoint_period": checkpoint_cadence.period,
        }
        write_state(state, evaluator.ckpt_dir, None)

    while collector.env_steps < cfg.total_steps and not stop.is_set():
        t = collector.step()
        for e in np.flatnonzero(t.real):
            td_abs += abs(
                table.update(
                    int(t.obs[e]),
                    int(t.actions[e]),
                    float(t.rewards[e]),
                    int(t.next_obs[e]),
                    bool(t.terminated[e]),
                    alpha,
                    gamma,
                )
            )
            updates += 1
        steps = collector.env_steps
        if log_cadence.due(steps):
            tracker.log(
                {
                    "train/td_error_abs": td_abs / max(updates, 1),
                    "train/states_visited": float(len(table.rows)),
                },
                steps,
            )
            td_abs, updates = 0.0, 0
        if evaluator.due(steps):
            evaluator.run(steps, table.greedy, save)
            if evaluator.should_stop:
                break
        if checkpoint_cadence.due(steps):
            save_state()
    evaluator.finish(collector.env_steps, table.greedy, save, interrupted=stop.is_set())
    save_state()
    env.close()
    return {
        "states_visited": len(table.rows),
        "last_checkpoint": str(evaluator.ckpt_dir / "last.pt"),
    }
