"""What a training run's evaluation costs when the envs that have finished their share are
stepped on (the former rule, the baseline) or left idle (the harness's rule).

    .venv/bin/python experiments/bench/eval_cost.py [--model experiments/results/pong/model]

The first line names the CPU. On the given model (default: the shipped Pong model), each repeat
plays the games an evaluation of ``env=pong`` plays once it nears a solve, on 4 envs: 10 games at
ε 0.01 (the share ``eval.min_episodes`` plays first: 3, 3, 2 and 2 games an env), 10 more, then
40 at ε 0.05 (the robust check). Both rules run in the same command, alternated, from the same
seeds; it fails unless they play the same games (returns and lengths, in order).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "src"))

from dqn_harness.envs import make_vec_env  # noqa: E402
from dqn_harness.evaluation.play import evaluate  # noqa: E402
from dqn_harness.perf import cpu_description, flush_denormals, tune_allocator  # noqa: E402
from dqn_harness.scoring.export import read_export  # noqa: E402
from dqn_harness.scoring.protocol import load_policy, named_protocol, scoring_config  # noqa: E402


def play(
    cfg, weights, sequence: list[tuple[int, float]], every_env: bool, seed: int
) -> tuple[list[float], list[int], float]:
    """The returns and lengths of ``sequence``'s (games, epsilon) evaluations, and seconds."""
    env = make_vec_env(cfg.env, 4, training=False)
    policy = load_policy(cfg, weights, int(env.single_action_space.n), env.single_observation_space)
    rng, returns, lengths = np.random.default_rng(seed), [], []
    start = time.perf_counter()
    for i, (games, epsilon) in enumerate(sequence):
        first = seed if i == 0 else None
        returns += evaluate(env, policy, games, epsilon, rng, first, lengths, every_env=every_env)
    seconds = time.perf_counter() - start
    env.close()
    return returns, lengths, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=ROOT / "experiments/results/pong/model")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument(
        "--games",
        type=int,
        nargs=3,
        default=[10, 10, 40],
        help="the first share at eps 0.01, the rest of it, the robust games",
    )
    a = parser.parse_args()
    sequence = list(zip(a.games, (0.01, 0.01, 0.05), strict=True))
    tune_allocator()  # as a training run has them
    flush_denormals(True)
    weights = read_export(a.model)
    cfg = scoring_config(weights["config"], named_protocol(ROOT / "conf", "harness"))
    print(
        f"{cpu_description()}: one evaluation's games, {a.model.name}, torch threads "
        f"{torch.get_num_threads()}"
    )
    rates: dict[str, list[float]] = {"every env stepped": [], "idle envs left": []}
    for r in range(a.repeats):
        seed = 10_000 + r
        old = play(cfg, weights, sequence, True, seed)
        new = play(cfg, weights, sequence, False, seed)
        if old[:2] != new[:2]:
            raise SystemExit("error: the two rules played different games")
        steps = sum(new[1])
        rates["every env stepped"].append(steps / old[2])
        rates["idle envs left"].append(steps / new[2])
        print(
            f"  repeat {r}: {len(new[0])} games, {steps:,} agent steps that count, "
            f"mean return {np.mean(new[0]):.2f}; {old[2]:.1f} s against {new[2]:.1f} s"
        )
    base, ours = (statistics.median(v) for v in rates.values())
    print(
        f"  agent steps/s: every env stepped {base:.0f}, idle envs left {ours:.0f} "
        f"({ours / base:.2f}x); the same games"
    )
    print(json.dumps({"cpu": cpu_description(), **rates}))


if __name__ == "__main__":
    main()
