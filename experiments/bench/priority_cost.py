"""Prioritized replay's sum tree at Pong's size: what each agent step and each update pays.

    .venv/bin/python experiments/bench/priority_cost.py [--capacity 100000] [--repeats 3]

The first line names the CPU. A ``PrioritizedSampler`` over a 100k-slot ring (17 tree levels)
is timed on the two calls a training run makes:

- every agent step, ``on_write``: the new slot at the largest priority, and the slots its write
  clears at 0 (3 leaves: the slot, and the oldest slot whose frame stack reaches into it);
- every update, ``sample`` (64 stratified draws and their weights) and ``update_priority`` (64
  new |TD errors|).

The per-step write runs twice in the same command: leaf by leaf (the harness's path for a few
leaves) and through the level-by-level numpy path (the baseline), on trees that must end equal.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "src"))

from dqn_harness.perf import cpu_description  # noqa: E402
from dqn_harness.replay import FrameStorage, PrioritizedSampler, SumTree  # noqa: E402
from dqn_harness.replay.samplers import FEW_LEAVES  # noqa: E402


def filled(capacity: int, few_leaves: int) -> tuple[FrameStorage, PrioritizedSampler]:
    """A full ring's sampler whose tree writes up to ``few_leaves`` leaves leaf by leaf (0:
    every write level by level)."""
    storage = FrameStorage(capacity=capacity, num_envs=1, obs_shape=(1,), obs_dtype=np.int64)
    sampler = PrioritizedSampler(size=storage.size, seed=0)
    sampler.tree = SumTree(storage.size, few_leaves=few_leaves)
    sampler.tree.update(np.arange(storage.size), np.random.default_rng(0).random(storage.size))
    return storage, sampler


def writes_us(storage: FrameStorage, sampler: PrioritizedSampler, n: int) -> float:
    """µs per on_write of one new transition (and the slots it clears)."""
    new = np.zeros(1, dtype=np.int64)
    t = time.perf_counter()
    for i in range(n):
        slot = i % storage.slots
        new[0] = (slot - 1) % storage.slots
        sampler.on_write(storage, slot, new)
    return 1e6 * (time.perf_counter() - t) / n


def update_us(storage: FrameStorage, sampler: PrioritizedSampler, n: int) -> float:
    """µs per update's sample of 64 and priority write of 64."""
    rng = np.random.default_rng(1)
    t = time.perf_counter()
    for _ in range(n):
        idx, _ = sampler.sample(storage, 64, env_steps=100_000)
        sampler.update_priority(idx, rng.random(64))
    return 1e6 * (time.perf_counter() - t) / n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--capacity", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--writes", type=int, default=20_000)
    a = parser.parse_args()
    print(f"{cpu_description()}: prioritized replay, {a.capacity:,}-slot ring")
    leaf, level, upd = [], [], []
    for _ in range(a.repeats):
        (s1, fast), (s2, slow) = filled(a.capacity, FEW_LEAVES), filled(a.capacity, 0)
        leaf.append(writes_us(s1, fast, a.writes))
        level.append(writes_us(s2, slow, a.writes))
        if not (
            np.array_equal(fast.tree.sum, slow.tree.sum)
            and np.array_equal(fast.tree.min, slow.tree.min)
        ):
            raise SystemExit("error: the two write paths left different trees")
        upd.append(update_us(s1, fast, 2_000))
    lf, lv, u = (statistics.median(x) for x in (leaf, level, upd))
    print(
        f"  per agent step, on_write: leaf by leaf {lf:.1f} µs, level by level {lv:.1f} µs "
        f"({lv / lf:.1f}x); the trees are equal"
    )
    print(f"  per update, sample 64 + update_priority 64: {u:.0f} µs")
    print(
        json.dumps(
            {
                "cpu": cpu_description(),
                "write_leaf_us": leaf,
                "write_level_us": level,
                "update_us": upd,
            }
        )
    )


if __name__ == "__main__":
    main()
