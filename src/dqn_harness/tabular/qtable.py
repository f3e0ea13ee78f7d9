"""Tabular Q-learning (the seed's first half): the Q-table and its TD update.

The table is sparse: a row exists only for states that were updated, so memory follows what the
agent visited, not the size of the state space. The loop that feeds it is
``tabular/learner.py``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch


class QTable:
    """Q-values of the visited states; ``seed`` seeds the greedy policy's tie-breaking."""

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

    def state_dict(self) -> dict[str, Any]:
        """The visited states and their rows (tensors, so torch.load reads them back)."""
        states = sorted(self.rows)
        values = (
            np.stack([self.rows[s] for s in states]) if states else np.zeros((0, self.n_actions))
        )
        return {
            "states": torch.tensor(states, dtype=torch.int64),
            "values": torch.from_numpy(values),
            "rng": self.rng.bit_generator.state,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        values = state["values"].numpy()
        self.rows = {int(s): values[i].copy() for i, s in enumerate(state["states"].tolist())}
        self.rng.bit_generator.state = state["rng"]
