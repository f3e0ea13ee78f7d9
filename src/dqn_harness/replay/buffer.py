"""The replay buffer: a storage (where transitions live) times a sampler (how they are drawn).

Everything that writes to or samples from replay goes through :class:`ReplayBuffer`, and its
``state_dict`` is all a checkpoint needs: the storage's arrays and position and the sampler's
state, so a resumed run draws exactly the batches it would have drawn.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from dqn_harness.replay.samplers import PrioritizedSampler, Sampler, UniformSampler
from dqn_harness.replay.storage import FrameStorage


class ReplayBuffer:
    """Writes vector steps into ``storage`` and samples batches through ``sampler``.

    Args:
        storage: the frame rings the transitions are written to.
        sampler: decides which stored transitions a batch holds; its index space must be the
            storage's (``PrioritizedSampler(size=storage.size)``).
    """

    def __init__(self, *, storage: FrameStorage, sampler: Sampler) -> None:
        self.storage = storage
        self.sampler = sampler

    @classmethod
    def uniform(
        cls,
        *,
        capacity: int,
        num_envs: int,
        obs_shape: tuple[int, ...],
        obs_dtype: Any,
        stack: int | None = None,
        seed: int = 0,
    ) -> ReplayBuffer:
        """Uniform replay over a new storage (arguments as :class:`FrameStorage`'s)."""
        storage = FrameStorage(
            capacity=capacity,
            num_envs=num_envs,
            obs_shape=obs_shape,
            obs_dtype=obs_dtype,
            stack=stack,
        )
        return cls(storage=storage, sampler=UniformSampler(seed=seed))

    @property
    def nbytes(self) -> int:
        return self.storage.nbytes

    def __len__(self) -> int:
        return len(self.storage)

    def start(self, obs: np.ndarray) -> None:
        """Write the observations ``reset`` returned."""
        slot = self.storage.start(obs)
        self.sampler.on_write(self.storage, slot, np.empty(0, np.int64))

    def add(
        self,
        actions: np.ndarray,
        rewards: np.ndarray,
        terminated: np.ndarray,
        truncated: np.ndarray,
        next_obs: np.ndarray,
        real: np.ndarray,
    ) -> None:
        """Record one vector step. ``real[e]`` is False where env e's step was an autoreset."""
        slot, new = self.storage.add(actions, rewards, terminated, truncated, next_obs, real)
        self.sampler.on_write(self.storage, slot, new)

    def sample(
        self, batch_size: int, n_step: int = 1, env_steps: int = 0
    ) -> dict[str, torch.Tensor]:
        """A batch; prioritized batches also carry ``indices`` and IS ``weights``.

        ``env_steps`` (the agent step the batch is drawn at) sets the prioritized sampler's
        beta, annealed over training.
        """
        flat, weights = self.sampler.sample(self.storage, batch_size, env_steps)
        slots = self.storage.slots
        batch = self.storage.gather(flat // slots, flat % slots, n_step)
        if weights is not None:
            batch["indices"] = torch.from_numpy(flat)
            batch["weights"] = torch.from_numpy(weights)
        return batch

    def update_priority(self, indices: np.ndarray, td_abs: np.ndarray) -> None:
        """A batch's |TD errors| for the sampler (a uniform one ignores them)."""
        self.sampler.update_priority(indices, td_abs)

    def state_dict(self) -> dict[str, Any]:
        return {"storage": self.storage.state_dict(), "sampler": self.sampler.state_dict()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.storage.load_state_dict(state["storage"])
        self.sampler.load_state_dict(state["sampler"])


def make_replay(
    buffer: Any,
    *,
    num_envs: int,
    obs_shape: tuple[int, ...],
    obs_dtype: Any,
    stack: int | None,
    seed: int,
    total_steps: int,
) -> ReplayBuffer:
    """The buffer ``buffer.*`` describes, for ``num_envs`` envs of observations of this shape.

    The uniform sampler is seeded with ``seed`` and the prioritized one with ``seed + 1``, so
    runs with either sampler draw from streams independent of the collector's; prioritized
    ``beta`` reaches 1 at ``buffer.beta_steps``, or at ``total_steps`` when that is unset.
    """
    storage = FrameStorage(
        capacity=buffer.capacity,
        num_envs=num_envs,
        obs_shape=obs_shape,
        obs_dtype=obs_dtype,
        stack=stack,
    )
    sampler: Sampler
    if buffer.sampler == "prioritized":
        sampler = PrioritizedSampler(
            size=storage.size,
            alpha=buffer.alpha,
            beta=buffer.beta,
            beta_steps=buffer.beta_steps or total_steps,
            eps=buffer.eps,
            seed=seed + 1,
        )
    else:
        sampler = UniformSampler(seed=seed)
    return ReplayBuffer(storage=storage, sampler=sampler)
