"""Playing a policy for N episodes on a vector env: the one evaluation rule, for training's
periodic evaluations and for ``evaluate.py``'s scoring alike.

Episodes are split evenly across the envs and each env runs until it has finished its own share:
taking the first N episodes to finish would favour short ones. An env that has finished its
share is not stepped again (on gymnasium's SyncVectorEnv, where each env can be stepped alone):
its games would be thrown away, and with 10 games on 4 envs (shares 3, 3, 2, 2) they were a
sixth of an evaluation's emulator time. The games that count are the same either way.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium.vector import SyncVectorEnv, VectorEnv

from dqn_harness.envs.episodes import Episodes
from dqn_harness.policy import Policy, epsilon_greedy

Step = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]


class ActiveEnvs:
    """Steps only the envs of a SyncVectorEnv that still have games to play, with the vector
    env's own rules (an env whose episode ended is reset on its next step, which returns reward
    0 and ignores the action), so those envs play exactly the games a full step would play. An
    idle env's row keeps its last observation: the policy still sees a full batch, whose other
    rows it answers alike (no layer mixes rows), and its action is ignored.

    Other vector envs (ALE's C++ one) have no per-env step: there every env is stepped, as
    everywhere with ``every_env`` (the former rule, the baseline ``bench/eval_cost.py`` times).
    """

    def __init__(self, env: VectorEnv, obs: np.ndarray, every_env: bool = False) -> None:
        self.env = env
        self.envs: list[Any] | None = None
        if isinstance(env, SyncVectorEnv) and not every_env:
            self.envs = list(env.envs)
        self.obs = np.array(obs, copy=True)
        n = env.num_envs
        self.rewards = np.zeros(n)
        self.terminated = np.zeros(n, dtype=bool)
        self.truncated = np.zeros(n, dtype=bool)

    def step(self, actions: np.ndarray, active: np.ndarray) -> Step:
        if self.envs is None:
            obs, rewards, terminated, truncated, _ = self.env.step(actions)
            return obs, rewards, terminated, truncated
        ended = self.terminated | self.truncated
        for i in np.flatnonzero(active):
            if ended[i]:
                self.obs[i], _ = self.envs[i].reset()
                self.rewards[i], self.terminated[i], self.truncated[i] = 0.0, False, False
            else:
                self.obs[i], reward, term, trunc, _ = self.envs[i].step(actions[i])
                self.rewards[i], self.terminated[i], self.truncated[i] = reward, term, trunc
        idle = ~active
        self.rewards[idle], self.terminated[idle], self.truncated[idle] = 0.0, False, False
        return self.obs.copy(), self.rewards.copy(), self.terminated.copy(), self.truncated.copy()


def evaluate(
    env: VectorEnv,
    policy: Policy,
    episodes: int,
    epsilon: float,
    rng: np.random.Generator,
    seed: int | None = None,
    lengths: list[int] | None = None,
    cut: list[bool] | None = None,
    every_env: bool = False,
) -> list[float]:
    """Unclipped returns of ``episodes`` episodes played ε-greedily on ``env``; their lengths in
    agent steps are appended to ``lengths`` and, to ``cut``, whether each was truncated (a cap
    on its length or frames ended it, not the game) when those lists are given. ``every_env``
    steps the envs that have finished their share too (the same games, more emulator time)."""
    n = env.num_envs
    quota = np.full(n, episodes // n)
    quota[: episodes % n] += 1
    n_actions = int(env.single_action_space.n)  # type: ignore[attr-defined]
    obs, _ = env.reset(seed=seed)
    envs = ActiveEnvs(env, obs, every_env)
    returns: list[float] = []
    finished = np.zeros(n, dtype=int)
    book = Episodes(n)
    while (finished < quota).any():
        # one draw per env whether it plays or not: the stream, and so every game, is the
        # same as when every env is stepped
        actions = epsilon_greedy(policy, obs, epsilon, n_actions, rng)
        obs, rewards, terminated, truncated = envs.step(actions, finished < quota)
        for e, episode_return, length in book.step(rewards, terminated, truncated)[1]:
            if finished[e] < quota[e]:
                returns.append(episode_return)
                if lengths is not None:
                    lengths.append(length)
                if cut is not None:
                    cut.append(bool(truncated[e] and not terminated[e]))
                finished[e] += 1
    return returns
