"""How transitions are sampled: uniform, or proportional to priority (Schaul et al. 2016).

A sampler draws flat indices ``env * slots + slot`` of a :class:`FrameStorage` and never touches
the frames, so prioritized replay is a different sampler over the same storage, not a second
buffer (TorchRL's storage x sampler split). Every sampler has ``state_dict``/``load_state_dict``
so a resumed run draws exactly the batches it would have drawn.

Prioritized: each (env, slot) is a leaf of a sum tree whose value is the transition's priority
``p = (|TD error| + eps) ** alpha``; a slot with no sampleable transition (not yet written, an
episode's final frame, or a stack reaching into overwritten frames) has priority 0 and is never
drawn. Sampling is stratified (one draw from each of B equal slices of the total priority) and
every tree operation is O(log n), vectorised over the batch. Importance-sampling weights correct
the bias of non-uniform sampling: ``w_i = (N P(i)) ** -beta / max_j w_j = (p_i / p_min) **
-beta``, with beta annealed to 1 by the end of training, where an unbiased update matters most.

The maximum is taken over the batch (as Dopamine does), not over the buffer (as Schaul et al.'s
pseudo-code and OpenAI baselines do). A buffer of 100k Pong transitions always holds one whose
TD error is ~0, priority ``eps ** alpha`` ~ 2.5e-4, and measured against it every weight in
every batch was ~0.004-0.07: the loss shrank that much and, with gradients that small, Adam's
eps (1.5e-4) no longer normalised the step away, so updates shrank too (``rainbow_lite`` on
Pong sat at -21 for 250k agent steps). Per batch the largest weight is 1 and the ratios between
a batch's samples, which are what correct the sampling bias, are unchanged.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from dqn_harness.replay.storage import FrameStorage


class Sampler:
    """What every sampler offers (TorchRL's ``samplers/base.py``), with harmless defaults, so
    the buffer never asks which kind it holds.

    A sampler owns one random stream, seeded at construction and saved in its state, so a
    resumed run draws exactly the batches it would have drawn.
    """

    def __init__(self, *, seed: int = 0) -> None:
        self.rng = np.random.default_rng(seed)

    def on_write(self, storage: FrameStorage, slot: int, new: np.ndarray) -> None:
        """A write happened at ``slot`` (``new``: the flat indices it made sampleable)."""

    def sample(
        self, storage: FrameStorage, batch_size: int, env_steps: int
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """Flat indices of ``batch_size`` transitions, and their importance weights if any."""
        raise NotImplementedError

    def update_priority(self, idx: np.ndarray, td_abs: np.ndarray) -> None:
        """New |TD errors| of sampled transitions: only a prioritized sampler uses them."""

    def state_dict(self) -> dict[str, Any]:
        return {"rng": self.rng.bit_generator.state}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.rng.bit_generator.state = state["rng"]


class UniformSampler(Sampler):
    """Uniform over stored transitions whose whole stack history is still in the ring; it
    reads validity from the storage itself, so it has nothing to track on a write.

    Args:
        seed: seeds the sampler's own random stream.
    """

    def sample(
        self, storage: FrameStorage, batch_size: int, env_steps: int
    ) -> tuple[np.ndarray, None]:
        """Flat indices of ``batch_size`` transitions; no importance weights."""
        if storage.transitions == 0:
            raise ValueError("cannot sample from an empty replay buffer")
        oldest, first, end = storage.sampleable()
        envs_out: list[np.ndarray] = []
        slots_out: list[np.ndarray] = []
        need = batch_size
        for _ in range(10_000):
            if need == 0:
                break
            n = need * 2 + 8
            envs = self.rng.integers(storage.num_envs, size=n)
            slots = (oldest + self.rng.integers(first, end, size=n)) % storage.slots
            keep = storage.has_next[envs, slots]
            envs_out.append(envs[keep][:need])
            slots_out.append(slots[keep][:need])
            need -= len(envs_out[-1])
        else:
            raise RuntimeError("replay sampling found no complete transition")
        return np.concatenate(envs_out) * storage.slots + np.concatenate(slots_out), None


# Updates of at most this many leaves walk the tree leaf by leaf (``SumTree._update_few``).
FEW_LEAVES = 8


class SumTree:
    """Sums and minima over ``size`` non-negative leaves; empty leaves are 0 (and +inf for min).

    Internal nodes are recomputed from their children on every update rather than adjusted by
    deltas, so floating-point error cannot accumulate over millions of updates.
    """

    def __init__(self, size: int, few_leaves: int = FEW_LEAVES) -> None:
        self.size = size
        self.few_leaves = few_leaves  # 0: every update level by level (the tests' reference)
        self.leaves = 1 << max(0, (size - 1).bit_length())  # power of two >= size
        self.depth = self.leaves.bit_length() - 1
        self.sum = np.zeros(2 * self.leaves)
        self.min = np.full(2 * self.leaves, np.inf)

    @property
    def total(self) -> float:
        return float(self.sum[1])

    @property
    def min_positive(self) -> float:
        return float(self.min[1])

    def get(self, idx: np.ndarray) -> np.ndarray:
        return self.sum[np.asarray(idx) + self.leaves]

    def values(self) -> np.ndarray:
        return self.sum[self.leaves : self.leaves + self.size].copy()

    def update(self, idx: np.ndarray, values: np.ndarray) -> None:
        """Set leaves ``idx`` to ``values`` and refresh their ancestors (depth steps)."""
        node = np.asarray(idx, dtype=np.int64) + self.leaves
        values = np.broadcast_to(np.asarray(values, dtype=np.float64), node.shape)
        if len(node) <= self.few_leaves:
            self._update_few(node.tolist(), values.tolist())
            return
        self.sum[node] = values
        self.min[node] = np.where(values > 0, values, np.inf)
        for _ in range(self.depth):
            # duplicate parents recompute the same value from the same children: harmless
            node = node >> 1
            left, right = 2 * node, 2 * node + 1
            self.sum[node] = self.sum[left] + self.sum[right]
            self.min[node] = np.minimum(self.min[left], self.min[right])

    def _update_few(self, nodes: list[int], values: list[float]) -> None:
        """``update`` one leaf at a time, for the few leaves a stored transition touches (every
        agent step: the new slot and the slots it clears). Level by level, numpy's fixed cost
        per call (~10 calls on arrays of 3 at each of 17 levels for a 100k buffer) made a write
        85 us; leaf by leaf it is 32 us (``experiments/bench/priority_cost.py``, 2-core Xeon).
        Each node ends as the sum and the minimum of its children's final values, the same
        float64 operations as the vectorised path, so the tree is the same bit for bit."""
        total, least = self.sum, self.min
        for node, value in zip(nodes, values, strict=True):
            total[node] = value
            least[node] = value if value > 0 else np.inf
        for node in nodes:
            node >>= 1
            while node:
                left = 2 * node
                total[node] = total[left] + total[left + 1]
                least[node] = min(least[left], least[left + 1])
                node >>= 1

    def find(self, mass: np.ndarray) -> np.ndarray:
        """Leaf whose prefix-sum interval contains each ``mass`` in [0, total)."""
        node = np.ones(len(mass), dtype=np.int64)
        mass = np.asarray(mass, dtype=np.float64).copy()
        for _ in range(self.depth):
            left = self.sum[2 * node]
            go_right = mass >= left
            mass -= np.where(go_right, left, 0.0)
            node = 2 * node + go_right
        return node - self.leaves


class PrioritizedSampler(Sampler):
    """Proportional prioritization over the flat (env * slots + slot) indices of a storage.

    Args:
        size: leaves of the sum tree, one per (env, slot) of the storage (``storage.size``).
        alpha: how strongly priorities skew sampling (0 = uniform).
        beta: importance-sampling exponent at the start of training, annealed linearly to 1.
        beta_steps: agent steps over which beta reaches 1.
        eps: added to |TD error| so no stored transition has priority 0.
        seed: seeds the sampler's own random stream.
    """

    def __init__(
        self,
        *,
        size: int,
        alpha: float = 0.6,
        beta: float = 0.4,
        beta_steps: int = 1_000_000,
        eps: float = 1e-6,
        seed: int = 0,
    ) -> None:
        super().__init__(seed=seed)
        self.tree = SumTree(size)
        self.alpha = alpha
        self.beta0 = beta
        self.beta_steps = beta_steps
        self.eps = eps
        self.max_priority = 1.0  # new transitions get the largest priority seen so far

    def beta(self, env_steps: int) -> float:
        """Linear from ``beta`` to 1 over ``beta_steps`` agent steps."""
        return min(1.0, self.beta0 + (1.0 - self.beta0) * env_steps / self.beta_steps)

    def on_write(self, storage: FrameStorage, slot: int, new: np.ndarray) -> None:
        """New transitions enter at max priority; slots the write cleared stop being drawn."""
        cleared = storage.cleared_by(slot)
        idx = np.concatenate([cleared, new])
        values = np.concatenate([np.zeros(len(cleared)), np.full(len(new), self.max_priority)])
        self.tree.update(idx, values)  # `new` last: a slot both cleared and new ends up new

    def sample(
        self, storage: FrameStorage, batch_size: int, env_steps: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """Flat indices and their importance-sampling weights (the batch's largest is 1)."""
        total = self.tree.total
        if total <= 0:
            raise ValueError("cannot sample from an empty replay buffer")
        mass = (np.arange(batch_size) + self.rng.random(batch_size)) * (total / batch_size)
        idx = self.tree.find(np.minimum(mass, np.nextafter(total, 0)))
        priorities = self.tree.get(idx)
        for _ in range(100):  # rounding can land a draw on an empty leaf next to a full one
            empty = priorities <= 0
            if not empty.any():
                break
            idx[empty] = self.tree.find(self.rng.random(int(empty.sum())) * total)
            priorities = self.tree.get(idx)
        weights = (priorities / priorities.min()) ** -self.beta(env_steps)
        return idx, weights.astype(np.float32)

    def update_priority(self, idx: np.ndarray, td_abs: np.ndarray) -> None:
        """Priorities from the batch's |TD errors|.

        Lightning fetches the next batch before this one's update, so a sampled slot can have
        been cleared in between (it fell out of the ring); it is left cleared.
        """
        priorities = (np.asarray(td_abs, dtype=np.float64) + self.eps) ** self.alpha
        live = self.tree.get(idx) > 0
        self.tree.update(idx[live], priorities[live])
        if len(priorities):
            self.max_priority = max(self.max_priority, float(priorities.max()))

    def state_dict(self) -> dict[str, Any]:
        return {
            "priorities": self.tree.values(),
            "max_priority": self.max_priority,
            "rng": self.rng.bit_generator.state,
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.tree.update(np.arange(self.tree.size), state["priorities"])
        self.max_priority = float(state["max_priority"])
        self.rng.bit_generator.state = state["rng"]
