"""Env throughput: agent steps/s of each Atari backend, with the harness's own preprocessing.

    .venv/bin/python experiments/bench/env_throughput.py [--game pong] [--steps 6000]
        [--repeats 2] [--envs 1 2 4 8]

Each backend is built by ``make_vec_env`` exactly as training builds it (no-ops, max-and-skip 4,
84x84 grayscale, FIRE on reset, a stack of 4) and stepped with uniformly random actions, so the
figure is the env's cost alone: the ceiling on agent steps/s before any network runs. One agent
step is 4 emulator frames. Backends alternate over ``--repeats`` rounds; figures are medians and
ratios are against the gymnasium backend with one env, measured in the same process.
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

from dqn_harness.config import compose_config  # noqa: E402
from dqn_harness.envs import make_vec_env  # noqa: E402


def measure(game: str, backend: str, num_envs: int, steps: int) -> float:
    cfg = compose_config(ROOT / "conf", [f"env={game}", f"env.backend={backend}"])
    env = make_vec_env(cfg.env, num_envs)
    rng = np.random.default_rng(0)
    n_actions = int(env.single_action_space.n)  # type: ignore[attr-defined]
    env.reset(seed=0)
    for _ in range(50):  # threads up, first episode under way
        env.step(rng.integers(n_actions, size=num_envs))
    done_steps = 0
    start = time.perf_counter()
    while done_steps < steps:
        env.step(rng.integers(n_actions, size=num_envs))
        done_steps += num_envs
    elapsed = time.perf_counter() - start
    env.close()
    return done_steps / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--game", default="pong")
    parser.add_argument("--steps", type=int, default=6000, help="agent steps per measurement")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--envs", type=int, nargs="+", default=[1, 2, 4, 8])
    a = parser.parse_args()
    cases = [("gymnasium", 1)] + [("ale_vector", n) for n in a.envs]
    results: dict[str, list[float]] = {f"{b} x{n}": [] for b, n in cases}
    for r in range(a.repeats):
        for backend, n in cases if r % 2 == 0 else cases[::-1]:
            results[f"{backend} x{n}"].append(measure(a.game, backend, n, a.steps))
    base = statistics.median(results["gymnasium x1"])
    print(f"{a.game}: agent steps/s (random actions, {a.steps} steps, median of {a.repeats})")
    for name, values in results.items():
        sps = statistics.median(values)
        print(f"  {name:<15}{sps:9.0f}   {sps / base:5.2f}x gymnasium x1")
    print(json.dumps({k: statistics.median(v) for k, v in results.items()}))


if __name__ == "__main__":
    main()
