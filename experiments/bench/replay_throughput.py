"""Replay: bytes per Atari transition at 1M capacity, and batches of 32 sampled per second.

    .venv/bin/python experiments/bench/replay_throughput.py [--capacity 1000000]
        [--baseline-capacity 50000] [--batches 2000]

The harness buffer (one 84x84 frame per transition, stacks rebuilt at sampling) is filled to
``--capacity`` through its own ``start``/``add`` API with 800-step episodes, then sampled. The
baseline in the same process is the naive layout a single-file DQN uses (stacked ``obs`` and
``next_obs`` arrays, 56 KB per transition), at ``--baseline-capacity`` because at 1M it would
need 53 GiB. Both run with the harness's allocator setting (``tune_allocator``, as ``run()``
applies it): without it the naive layout's two fresh 0.9 MB arrays per batch cost page faults
(~1 ms per batch here). Byte counts for SB3's ``optimize_memory_usage`` layout (obs stored
once, 28 KB) are computed, not allocated.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "src"))

from dqn_harness.perf import tune_allocator  # noqa: E402
from dqn_harness.replay import ReplayBuffer  # noqa: E402

STACK, FRAME = 4, (84, 84)
EPISODE = 800


def fill(capacity: int, num_envs: int = 1) -> tuple[ReplayBuffer, float]:
    buffer = ReplayBuffer.uniform(
        capacity=capacity,
        num_envs=num_envs,
        obs_shape=(STACK, *FRAME),
        obs_dtype=np.uint8,
        stack=STACK,
    )
    rng = np.random.default_rng(0)
    pool = rng.integers(0, 256, size=(64, num_envs, STACK, *FRAME), dtype=np.uint8)
    real = np.ones(num_envs, dtype=bool)
    actions = np.zeros(num_envs, dtype=np.int64)
    start = time.perf_counter()
    buffer.start(pool[0])
    # One write per step until the ring is full (each episode end leaves its final frame's slot
    # without a transition, so a full ring holds slightly fewer than ``capacity`` transitions).
    t = 0
    while buffer.storage.written < buffer.storage.slots:
        t += 1
        end = np.full(num_envs, t % EPISODE == 0)
        rewards = np.full(num_envs, float(t % 3 == 0), dtype=np.float32)
        buffer.add(actions, rewards, end, np.zeros_like(end), pool[t % 64], real)
        real = ~end
    return buffer, (time.perf_counter() - start) / t


class NaiveBuffer:
    """Stacked obs and next_obs per transition (the layout the compact buffer replaces)."""

    def __init__(self, capacity: int) -> None:
        self.obs = np.zeros((capacity, STACK, *FRAME), dtype=np.uint8)
        self.next_obs = np.zeros((capacity, STACK, *FRAME), dtype=np.uint8)
        self.actions = np.zeros(capacity, dtype=np.int64)
        self.rewards = np.zeros(capacity, dtype=np.float32)
        self.terminated = np.zeros(capacity, dtype=np.float32)
        self.obs[:] = 1  # touch the pages, as a filled buffer would be
        self.next_obs[:] = 2
        self.rng = np.random.default_rng(0)

    @property
    def nbytes(self) -> int:
        arrays = (self.obs, self.next_obs, self.actions, self.rewards, self.terminated)
        return sum(a.nbytes for a in arrays)

    def sample(self, batch_size: int) -> dict[str, torch.Tensor]:
        idx = self.rng.integers(len(self.obs), size=batch_size)
        return {
            "obs": torch.from_numpy(self.obs[idx]),
            "actions": torch.from_numpy(self.actions[idx]),
            "rewards": torch.from_numpy(self.rewards[idx]),
            "next_obs": torch.from_numpy(self.next_obs[idx]),
            "terminated": torch.from_numpy(self.terminated[idx]),
        }


def batches_per_s(sample: Callable[..., Any], batches: int, **kwargs: Any) -> float:
    for _ in range(50):
        sample(32, **kwargs)
    start = time.perf_counter()
    for _ in range(batches):
        sample(32, **kwargs)
    return batches / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--capacity", type=int, default=1_000_000)
    parser.add_argument("--baseline-capacity", type=int, default=50_000)
    parser.add_argument("--batches", type=int, default=2000)
    a = parser.parse_args()
    frame = int(np.prod(FRAME))
    out: dict[str, float] = {}

    tune_allocator()  # as run() does; without it the naive layout pays page faults per batch
    naive = NaiveBuffer(a.baseline_capacity)
    naive_per = naive.nbytes / a.baseline_capacity
    out["naive_batches_per_s"] = batches_per_s(naive.sample, a.batches)
    del naive
    small, _ = fill(a.baseline_capacity)
    out["compact_small_batches_per_s"] = batches_per_s(small.sample, a.batches)
    del small

    buffer, add_s = fill(a.capacity)
    per = buffer.nbytes / a.capacity
    out.update(
        bytes_per_transition=per,
        buffer_gib=buffer.nbytes / 2**30,
        add_us=add_s * 1e6,
        batches_per_s=batches_per_s(buffer.sample, a.batches),
        n3_batches_per_s=batches_per_s(buffer.sample, a.batches, n_step=3),
    )
    sb3_per = 2 * STACK * frame / 2 + 4 + 4 + 1 + 1  # obs once, next_obs shared (SB3 docs)
    print(f"Atari replay, {a.capacity:,} transitions (one frame = {frame:,} bytes)")
    print(
        f"  bytes/transition: {per:,.0f} ({per / frame:.3f} frames); "
        f"naive obs+next_obs {naive_per:,.0f} ({naive_per / per:.1f}x more); "
        f"SB3 optimize_memory_usage ~{sb3_per:,.0f} ({sb3_per / per:.1f}x more)"
    )
    print(
        f"  buffer: {out['buffer_gib']:.2f} GiB (naive: {naive_per * a.capacity / 2**30:.1f} GiB, "
        f"SB3: {sb3_per * a.capacity / 2**30:.1f} GiB); add: {out['add_us']:.1f} µs/step"
    )
    print(
        f"  batches of 32/s: {out['batches_per_s']:,.0f} at {a.capacity:,} "
        f"({1e3 / out['batches_per_s']:.3f} ms each), n-step 3: {out['n3_batches_per_s']:,.0f}; "
        f"at {a.baseline_capacity:,}: compact {out['compact_small_batches_per_s']:,.0f} vs "
        f"naive {out['naive_batches_per_s']:,.0f} "
        f"({out['compact_small_batches_per_s'] / out['naive_batches_per_s']:.2f}x)"
    )
    print(json.dumps(out))


if __name__ == "__main__":
    main()
