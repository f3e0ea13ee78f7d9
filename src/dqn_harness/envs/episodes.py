"""Episode bookkeeping over a gymnasium 1.x vector env, shared by training and evaluation.

gymnasium 1.x vector envs reset *on the step after* an episode ends (NEXT_STEP autoreset): that
step returns the reset observation with reward 0 and is not a transition. Counting it as an agent
step, adding its reward, or storing it would be wrong, so the one rule for which steps are real
lives here and the collector and the evaluator both use it.
"""

from __future__ import annotations

import numpy as np


class Episodes:
    """Which env steps are real, and the return and length of each episode as it ends."""

    def __init__(self, num_envs: int) -> None:
        self.autoreset = np.zeros(num_envs, dtype=bool)  # env e's next step only resets it
        self.returns = np.zeros(num_envs, dtype=np.float64)  # unclipped, so returns are scores
        self.lengths = np.zeros(num_envs, dtype=np.int64)

    def step(
        self, rewards: np.ndarray, terminated: np.ndarray, truncated: np.ndarray
    ) -> tuple[np.ndarray, list[tuple[int, float, int]]]:
        """Account one vector step: the ``real`` mask and (env, return, length) of each end."""
        real = ~self.autoreset
        self.returns += np.where(real, rewards, 0.0)
        self.lengths += real
        done = (terminated | truncated) & real
        ended = [
            (int(e), float(self.returns[e]), int(self.lengths[e])) for e in np.flatnonzero(done)
        ]
        self.returns[done] = 0.0
        self.lengths[done] = 0
        self.autoreset = done
        return real, ended
