"""Replay storage: each frame is stored once, stacks and next observations are rebuilt on sampling.

Layout (like Dopamine's circular buffer, extended to N interleaved env streams): every env has a
ring of slots; each vector step writes exactly one slot per env holding the *newest frame* of that
env's observation, the steps since its episode began (``pos``), and, once the next slot is written,
the action, reward and flags of the transition that left it (``has_next``). The next observation of
slot ``j`` is slot ``j + 1`` of the same ring, so ``next_obs`` costs nothing, and a frame stack is
the ``stack`` slots ending at ``j`` with frames from before the episode start replaced by zeros --
the padding both Atari backends use. The step after an episode ends (gymnasium's NEXT_STEP
autoreset) writes the reset frame into a fresh slot and leaves the final frame's slot without a
transition, so nothing ever crosses an episode boundary.

An Atari transition costs one 84x84 frame plus 15 bytes of bookkeeping (~7.07 KB), against ~28 KB
for SB3's ``optimize_memory_usage`` layout and ~56 KB for stored obs + next_obs.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from dqn_harness.config import ConfigError
from dqn_harness.replay.prioritized import PrioritizedSampler

BOOKKEEPING_BYTES = 4 + 4 + 1 + 1 + 1 + 4  # action, reward, terminated, truncated, has_next, pos


def available_memory_bytes() -> int | None:
    """MemAvailable from /proc/meminfo (None where it cannot be read)."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def check_fits(capacity: int, nbytes: int) -> None:
    """Refuse a buffer the machine cannot hold, before allocating it (not hours later on OOM)."""
    available = available_memory_bytes()
    if available is not None and nbytes > 0.9 * available:
        raise ConfigError(
            "buffer.capacity",
            f"{capacity:,} transitions need {nbytes / 2**30:.1f} GiB of replay memory but only "
            f"{available / 2**30:.1f} GiB is available",
        )


class ReplayBuffer:
    """Uniform replay over per-env frame rings. ``stack=None`` stores whole observations."""

    def __init__(
        self,
        capacity: int,
        num_envs: int,
        obs_shape: tuple[int, ...],
        obs_dtype: np.dtype | type,
        stack: int | None = None,
        seed: int = 0,
    ) -> None:
        self.capacity = capacity
        self.num_envs = num_envs
        self.stack = stack
        self.frame_shape = tuple(obs_shape[1:]) if stack else tuple(obs_shape)
        self.frame_dtype = np.dtype(obs_dtype)
        history = (stack or 1) - 1
        # +1 slot per env for the newest observation (no transition yet) and `history` slots
        # whose stacks reach back into overwritten frames; capacity counts sampleable transitions.
        self.slots = math.ceil(capacity / num_envs) + 1 + history
        check_fits(
            capacity, self.nbytes_for(self.slots * num_envs, self.frame_shape, self.frame_dtype)
        )
        shape = (num_envs, self.slots)
        self.frames = np.zeros(shape + self.frame_shape, dtype=self.frame_dtype)
        self.actions = np.zeros(shape, dtype=np.int32)
        self.rewards = np.zeros(shape, dtype=np.float32)
        self.terminated = np.zeros(shape, dtype=bool)
        self.truncated = np.zeros(shape, dtype=bool)
        self.has_next = np.zeros(shape, dtype=bool)
        self.pos = np.zeros(shape, dtype=np.int32)
        self.cursor = 0  # slot the next write goes to (shared: every env writes once per step)
        self.written = 0  # slots written per env, saturating at self.slots
        self.transitions = 0
        self.rng = np.random.default_rng(seed)
        self._envs = np.arange(num_envs)
        self._back = np.arange(history, -1, -1)  # offsets of a stack's frames, oldest first
        # None: uniform sampling below. A PrioritizedSampler with a leaf per env * slots + slot
        # must be set before the first write.
        self.sampler: PrioritizedSampler | None = None

    @staticmethod
    def nbytes_for(slots: int, frame_shape: tuple[int, ...], dtype: np.dtype) -> int:
        return slots * (
            int(np.prod(frame_shape, dtype=np.int64)) * dtype.itemsize + BOOKKEEPING_BYTES
        )

    @property
    def nbytes(self) -> int:
        arrays = (self.frames, self.actions, self.rewards, self.terminated, self.truncated)
        return sum(a.nbytes for a in arrays + (self.has_next, self.pos))

    def __len__(self) -> int:
        return self.transitions

    def _newest_frame(self, obs: np.ndarray) -> np.ndarray:
        return obs[:, -1] if self.stack else obs

    def _write(self, frames: np.ndarray, pos: np.ndarray, new: np.ndarray | None = None) -> None:
        """Write the newest frames at the cursor; ``new``: flat indices of fresh transitions."""
        slot = self.cursor
        if self.sampler is not None:
            # the slot being overwritten, and the oldest slot whose stack now reaches into it
            history = (self.stack or 1) - 1
            cleared = [slot, (slot + history) % self.slots] if history else [slot]
            flat = (self._envs[:, None] * self.slots + np.array(cleared)[None, :]).ravel()
            self.sampler.on_write(np.empty(0, np.int64) if new is None else new, flat)
        self.transitions -= int(self.has_next[:, slot].sum())
        self.frames[:, slot] = frames
        self.pos[:, slot] = pos
        self.has_next[:, slot] = False
        self.cursor = (slot + 1) % self.slots
        self.written = min(self.written + 1, self.slots)

    def start(self, obs: np.ndarray) -> None:
        """Write the observations returned by ``reset`` (every env at episode position 0)."""
        self._write(self._newest_frame(obs), np.zeros(self.num_envs, dtype=np.int32))

    def add(
        self,
        actions: np.ndarray,
        rewards: np.ndarray,
        terminated: np.ndarray,
        truncated: np.ndarray,
        next_obs: np.ndarray,
        real: np.ndarray,
    ) -> None:
        """Record one vector step. ``real[e]`` is False where env e's step was an autoreset.

        For real steps the current slot gets its transition and the next slot the new frame one
        position later; for autoreset steps the next slot starts a new episode at position 0.
        """
        cur = (self.cursor - 1) % self.slots
        envs = self._envs[real]
        self.actions[envs, cur] = actions[real]
        self.rewards[envs, cur] = rewards[real]
        self.terminated[envs, cur] = terminated[real]
        self.truncated[envs, cur] = truncated[real]
        self.has_next[envs, cur] = True
        self.transitions += len(envs)
        pos = np.where(real, self.pos[:, cur] + 1, 0).astype(np.int32)
        self._write(self._newest_frame(next_obs), pos, envs * self.slots + cur)

    def _stacks(self, envs: np.ndarray, slots: np.ndarray) -> np.ndarray:
        if not self.stack:
            return self.frames[envs, slots]
        idx = (slots[:, None] - self._back[None, :]) % self.slots  # (B, stack)
        out = self.frames[envs[:, None], idx]  # (B, stack, *frame)
        pad = self._back[None, :] > self.pos[envs, slots][:, None]
        out[pad] = 0
        return out

    def sample_indices(self, batch_size: int) -> tuple[np.ndarray, np.ndarray]:
        """Uniform over stored transitions whose whole stack history is still in the ring."""
        if self.transitions == 0:
            raise ValueError("cannot sample from an empty replay buffer")
        full = self.written == self.slots
        oldest = self.cursor if full else 0
        skip = (self.stack or 1) - 1 if full else 0
        envs_out: list[np.ndarray] = []
        slots_out: list[np.ndarray] = []
        need = batch_size
        for _ in range(10_000):
            if need == 0:
                break
            n = need * 2 + 8
            envs = self.rng.integers(self.num_envs, size=n)
            slots = (oldest + self.rng.integers(skip, self.written, size=n)) % self.slots
            keep = self.has_next[envs, slots]
            envs_out.append(envs[keep][:need])
            slots_out.append(slots[keep][:need])
            need -= len(envs_out[-1])
        else:
            raise RuntimeError("replay sampling found no complete transition")
        return np.concatenate(envs_out), np.concatenate(slots_out)

    def sample(
        self, batch_size: int, n_step: int = 1, env_steps: int = 0
    ) -> dict[str, torch.Tensor]:
        """A batch; prioritized batches also carry ``indices`` and IS ``weights``.

        ``env_steps`` sets the prioritized sampler's beta (annealed over training).
        """
        if self.sampler is None:
            envs, slots = self.sample_indices(batch_size)
            return self.gather(envs, slots, n_step)
        flat, weights = self.sampler.sample(batch_size, env_steps)
        batch = self.gather(flat // self.slots, flat % self.slots, n_step)
        batch["indices"] = torch.from_numpy(flat)
        batch["weights"] = torch.from_numpy(weights)
        return batch

    def update_priorities(self, indices: np.ndarray, td_abs: np.ndarray) -> None:
        assert self.sampler is not None
        self.sampler.update(indices, td_abs)

    def gather(
        self, envs: np.ndarray, slots: np.ndarray, n_step: int = 1
    ) -> dict[str, torch.Tensor]:
        """Transitions at (env, slot): observations stay in their stored dtype (uint8 frames).

        With ``n_step > 1`` each transition is extended along its own env's ring for up to
        ``n_step`` steps, stopping early at a termination, a truncation or the newest stored
        step: ``rewards`` is then ``(B, n_step)`` (the raw rewards, zero past the window, so the
        loss can clip before discounting), ``n_steps`` the window lengths ``m``, ``next_obs`` the
        observation to bootstrap from (``m`` steps on), ``terminated``/``truncated`` how the
        window ended. Nothing ever crosses an episode boundary.
        """
        extra: dict[str, torch.Tensor] = {}
        if n_step == 1:
            rewards = self.rewards[envs, slots]
            terminated, truncated = self.terminated[envs, slots], self.truncated[envs, slots]
            end = (slots + 1) % self.slots
        else:
            rewards, steps, terminated, truncated, end = self.n_step_window(envs, slots, n_step)
            extra["n_steps"] = torch.from_numpy(steps)
        return {
            "obs": torch.from_numpy(self._stacks(envs, slots)),
            "actions": torch.from_numpy(self.actions[envs, slots].astype(np.int64)),
            "rewards": torch.from_numpy(rewards),
            **extra,
            "next_obs": torch.from_numpy(self._stacks(envs, end)),
            "terminated": torch.from_numpy(terminated.astype(np.float32)),
            "truncated": torch.from_numpy(truncated.astype(np.float32)),
        }

    def n_step_window(
        self, envs: np.ndarray, slots: np.ndarray, n_step: int
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Rewards (B, n), lengths, terminated, truncated and bootstrap slots of n-step windows.

        Walking forward from a stored transition only visits newer slots of the same env, and
        the walk stops before any slot without a transition (an episode's final frame, or the
        newest frame), so a window never reads overwritten or foreign data.
        """
        batch = len(slots)
        rewards = np.zeros((batch, n_step), dtype=np.float32)
        steps = np.zeros(batch, dtype=np.int64)
        terminated = np.zeros(batch, dtype=bool)
        truncated = np.zeros(batch, dtype=bool)
        cur = np.asarray(slots).copy()
        alive = np.ones(batch, dtype=bool)
        for k in range(n_step):
            rewards[alive, k] = self.rewards[envs[alive], cur[alive]]
            steps += alive
            term = alive & self.terminated[envs, cur]
            trunc = alive & self.truncated[envs, cur]
            terminated |= term
            truncated |= trunc
            nxt = (cur + 1) % self.slots
            cur = np.where(alive, nxt, cur)
            alive &= ~term & ~trunc & self.has_next[envs, nxt]
        return rewards, steps, terminated, truncated, cur

    def state_summary(self) -> dict[str, Any]:
        return {
            "transitions": self.transitions,
            "bytes": self.nbytes,
            "bytes_per_transition": self.nbytes / max(1, self.capacity),
        }
