"""The one place the environment is stepped during training.

ε-greedy (policy.py) over a greedy policy; gymnasium-1.x NEXT_STEP autoreset handled by the
shared episode bookkeeping (envs/episodes.py): the step after an episode ends returns the reset
observation with reward 0 and is *not* a transition, so it is never stored or counted as an
agent step; episode returns are accumulated from the unclipped rewards.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from gymnasium.vector import VectorEnv

from dqn_harness.envs.episodes import Episodes
from dqn_harness.policy import Policy, epsilon_greedy
from dqn_harness.replay.buffer import ReplayBuffer


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
    """Steps ``env`` with ε-greedy actions and writes every real transition to ``buffer``.

    Args:
        env: the training vector env (``num_envs`` agent steps per vector step at most).
        policy: batch of observations -> greedy actions (the online Q-network, the Q-table).
        epsilon_schedule: agent step -> exploration probability (it changes as training goes;
            an evaluation's is a fixed rate instead).
        buffer: where transitions go (``None`` for algorithms that learn online, like tabular).
        seed: seeds the env's first reset (in :meth:`start`) and the exploration stream.
        on_episode: called with (agent step, return, length) as each episode ends.
        on_step: called with (agent step, ε) after every vector step (progress bar, logs).
    """

    def __init__(
        self,
        *,
        env: VectorEnv,
        policy: Policy,
        epsilon_schedule: Callable[[int], float],
        buffer: ReplayBuffer | None = None,
        seed: int = 0,
        on_episode: Callable[[int, float, int], None] | None = None,
        on_step: Callable[[int, float], None] | None = None,
    ) -> None:
        self.env = env
        self.policy = policy
        self.epsilon_schedule = epsilon_schedule
        self.buffer = buffer
        self.on_episode = on_episode
        self.on_step = on_step
        self.n_actions = int(env.single_action_space.n)  # type: ignore[attr-defined]
        self.seed = seed
        self.rng = np.random.default_rng(seed)
        self.env_steps = 0
        self.episodes = 0
        self.obs: np.ndarray | None = None
        self._episodes = Episodes(env.num_envs)

    def start(self) -> None:
        """Reset the env and write the first observations: once a resumed run's replay is
        loaded, so the new episodes' frames come after the restored ones."""
        self.obs, _ = self.env.reset(seed=self.seed)
        if self.buffer is not None:
            self.buffer.start(self.obs)

    def state_dict(self) -> dict[str, Any]:
        """Counters and RNG; the env itself is not saved (a resumed run starts new episodes)."""
        return {
            "env_steps": self.env_steps,
            "episodes": self.episodes,
            "rng": self.rng.bit_generator.state,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.env_steps, self.episodes = state["env_steps"], state["episodes"]
        self.rng.bit_generator.state = state["rng"]

    def step(self) -> Transition:
        if self.obs is None:  # not started by hand: nothing to restore before the first reset
            self.start()
        assert self.obs is not None
        epsilon = self.epsilon_schedule(self.env_steps)
        obs = self.obs
        actions = epsilon_greedy(self.policy, obs, epsilon, self.n_actions, self.rng)
        next_obs, rewards, terminated, truncated, _ = self.env.step(actions)
        rewards = np.asarray(rewards, dtype=np.float32)
        real, ended = self._episodes.step(rewards, terminated, truncated)
        if self.buffer is not None:
            self.buffer.add(actions, rewards, terminated, truncated, next_obs, real)
        self.env_steps += int(real.sum())
        for _env, episode_return, length in ended:
            self.episodes += 1
            if self.on_episode is not None:
                self.on_episode(self.env_steps, episode_return, length)
        self.obs = next_obs
        if self.on_step is not None:
            self.on_step(self.env_steps, epsilon)
        return Transition(obs, actions, rewards, terminated, truncated, next_obs, real)
