"""Playing a policy for N episodes on a vector env: the one evaluation rule, for training's
periodic evaluations and for ``evaluate.py``'s scoring alike.

Episodes are split evenly across the envs and each env runs until it has finished its own share:
taking the first N episodes to finish would favour short ones.
"""

from __future__ import annotations

import numpy as np
from gymnasium.vector import VectorEnv

from dqn_harness.envs.episodes import Episodes
from dqn_harness.policy import Policy, epsilon_greedy


def evaluate(
    env: VectorEnv,
    policy: Policy,
    episodes: int,
    epsilon: float,
    rng: np.random.Generator,
    seed: int | None = None,
    lengths: list[int] | None = None,
    cut: list[bool] | None = None,
) -> list[float]:
    """Unclipped returns of ``episodes`` episodes played ε-greedily on ``env``; their lengths in
    agent steps are appended to ``lengths`` and, to ``cut``, whether each was truncated (a cap
    on its length or frames ended it, not the game) when those lists are given."""
    n = env.num_envs
    quota = np.full(n, episodes // n)
    quota[: episodes % n] += 1
    n_actions = int(env.single_action_space.n)  # type: ignore[attr-defined]
    obs, _ = env.reset(seed=seed)
    returns: list[float] = []
    finished = np.zeros(n, dtype=int)
    book = Episodes(n)
    while (finished < quota).any():
        actions = epsilon_greedy(policy, obs, epsilon, n_actions, rng)
        obs, rewards, terminated, truncated, _ = env.step(actions)
        for e, episode_return, length in book.step(rewards, terminated, truncated)[1]:
            if finished[e] < quota[e]:
                returns.append(episode_return)
                if lengths is not None:
                    lengths.append(length)
                if cut is not None:
                    cut.append(bool(truncated[e] and not terminated[e]))
                finished[e] += 1
    return returns
