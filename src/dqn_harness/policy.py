"""The one ε-greedy rule: collection, evaluation and filmed episodes all act through it.

Random actions are drawn for every env before the greedy ones are computed, so the random
stream an evaluation or a collector consumes does not depend on the network, and the network
is skipped outright when every env explores (all of warm-up at ε = 1).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

Policy = Callable[[np.ndarray], np.ndarray]  # batch of observations -> greedy actions


def epsilon_greedy(
    greedy: Policy, obs: np.ndarray, epsilon: float, n_actions: int, rng: np.random.Generator
) -> np.ndarray:
    """One action per env of the batch ``obs``: uniform with probability ε, else greedy."""
    n = len(obs)
    explore = rng.random(n) < epsilon
    actions = rng.integers(n_actions, size=n)
    if not explore.all():
        actions = np.where(explore, actions, greedy(obs))
    return actions
