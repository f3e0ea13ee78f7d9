"""The one place the environment is stepped during training.

ε-greedy over a greedy ``policy``, gymnasium-1.x NEXT_STEP autoreset handled (the step after an
episode ends returns the reset observation with reward 0 and is *not* a transition, so it is never
stored or counted as an agent step), episode returns accumulated from the unclipped rewards.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from gymnasium.vector import VectorEnv

from dqn_harness.replay.buffer import ReplayBuffer

Policy = Callable[[np.ndarray], np.ndarray]  # batch of observations -> greedy actions


@dataclass
class Transition:
    """One vector step; ``real[e]`` is False where env e only autoreset."""

    obs: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    terminated: np.ndarray
    truncated: np.ndarray
    next_obs: np.ndarray
    real: np.ndarray


class Collector:
    def __init__(
        self,
        env: VectorEnv,
        policy: Policy,
        epsilon: Callable[[int], float],
        buffer: ReplayBuffer | None = None,
        seed: int = 0,
        on_episode: Callable[[int, float, int], None] | None = None,
        on_step: Callable[[int, float], None] | None = None,
    ) -> None:
        self.env = env
        self.policy = policy
        self.epsilon = epsilon
        self.buffer = buffer
        self.on_episode = on_episode
        self.on_step = on_step
        self.num_envs = env.num_envs
        self.n_actions = int(env.single_action_space.n)  # type: ignore[attr-defined]
        self.rng = np.random.default_rng(seed)
        self.env_steps = 0
        self.episodes = 0
        self.obs, _ = env.reset(seed=seed)
        if buffer is not None:
            buffer.start(self.obs)
        self._autoreset = np.zeros(self.num_envs, dtype=bool)
        self._returns = np.zeros(self.num_envs, dtype=np.float64)
        self._lengths = np.zeros(self.num_envs, dtype=np.int64)

    def state(self) -> dict[str, Any]:
        return {
            "env_steps": self.env_steps,
            "episodes": self.episodes,
            "rng": self.rng.bit_generator.state,
        }

    def restore(self, state: dict[str, Any]) -> None:
        """Counters and RNG; the env itself starts new episodes (its state is not saved)."""
        self.env_steps, self.episodes = state["env_steps"], state["episodes"]
        self.rng.bit_generator.state = state["rng"]

    def act(self, obs: np.ndarray, epsilon: float) -> np.ndarray:
        """ε-greedy; the network is skipped when every env explores (all of warm-up at ε=1)."""
        explore = self.rng.random(self.num_envs) < epsilon
        actions = self.rng.integers(self.n_actions, size=self.num_envs)
        if not explore.all():
            actions = np.where(explore, actions, self.policy(obs))
        return actions

    def step(self) -> Transition:
        epsilon = self.epsilon(self.env_steps)
        obs = self.obs
        actions = self.act(obs, epsilon)
        next_obs, rewards, terminated, truncated, _ = self.env.step(actions)
        rewards = np.asarray(rewards, dtype=np.float32)
        real = ~self._autoreset
        if self.buffer is not None:
            self.buffer.add(actions, rewards, terminated, truncated, next_obs, real)
        self._returns += np.where(real, rewards, 0.0)
        self._lengths += real
        done = (terminated | truncated) & real
        self.env_steps += int(real.sum())
        for e in np.flatnonzero(done):
            self.episodes += 1
            if self.on_episode is not None:
                self.on_episode(self.env_steps, float(self._returns[e]), int(self._lengths[e]))
            self._returns[e] = 0.0
            self._lengths[e] = 0
        self._autoreset = done
        self.obs = next_obs
        if self.on_step is not None:
            self.on_step(self.env_steps, epsilon)
        return Transition(obs, actions, rewards, terminated, truncated, next_obs, real)
