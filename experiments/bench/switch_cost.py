"""What each DQN extension costs per agent step on Pong: the throughput side of rainbow_lite.

    .venv/bin/python experiments/bench/switch_cost.py [--steps 1500] [--warmup 2000] [--repeats 2]

Issue 16 found ``env=pong +experiment=rainbow_lite`` training at about half of plain DQN's speed.
A researcher choosing switches needs each one's price, so this runs the full harness (what
``python train.py`` runs: Lightning, replay stream, collector, logging) on Pong with the
``env=pong`` preset and one switch at a time:

- base: ``env=pong`` with one-step returns (uniform replay, plain head, DQN target);
- ``algo.double=true``: one more online forward over ``next_obs`` per update;
- ``model.dueling=true``: two dense streams (value, advantage) instead of one;
- ``algo.n_step=3``: the return windows walked in the replay at sampling time;
- ``buffer=prioritized``: sum-tree sampling, importance weights, a priority write per update;
- ``env=pong``'s own ``n_step=4``, and all four switches together (rainbow_lite).

ε is held at 0.02 (where a Pong run spends most of its steps) so every agent step pays its acting
forward, and steps/s are taken over the ``--steps`` learning steps after ``--warmup`` steps of
pure collection, from ``perf/wall_s`` in each run's metrics. Variants alternate over
``--repeats`` rounds (the order rotates) and the ratio is of medians against base from the same
command, so the machine's drift hits every variant alike.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "src"))

from dqn_harness.config import compose_config  # noqa: E402
from dqn_harness.run.runner import run  # noqa: E402
from dqn_harness.tracking.metrics import read_metrics  # noqa: E402

VARIANTS: dict[str, list[str]] = {
    "base (1-step DQN)": ["algo.n_step=1"],
    "+ double": ["algo.n_step=1", "algo.double=true"],
    "+ dueling": ["algo.n_step=1", "model.dueling=true"],
    "+ 3-step": ["algo.n_step=3"],
    "+ prioritized": ["algo.n_step=1", "buffer=prioritized"],
    "env=pong (4-step)": [],
    "rainbow_lite (all four)": ["+experiment=rainbow_lite"],
}
BASE = "base (1-step DQN)"


def steps_per_s(switches: list[str], a: argparse.Namespace, out: Path, name: str) -> float:
    total = a.warmup + a.steps
    cfg = compose_config(
        ROOT / "conf",
        [
            "env=pong",
            *switches,
            "schedule.epsilon.start=0.02",
            "schedule.epsilon.end=0.02",
            f"learning_starts={a.warmup}",
            f"total_steps={total}",
            f"buffer.capacity={total}",
            f"eval.every={10 * total}",  # no evaluation inside the window
            "eval.episodes=1",
            "env.max_episode_steps=500",  # the final evaluation stays short
            f"logger.every={max(1, a.steps // 6)}",  # a few wall-clock points in the window
            f"logger.save_dir={out}",
            "progress=false",
            f"run_name={name}",
        ],
    )
    run_dir = out / name
    run(cfg, run_dir)
    window = [(s, t) for s, t in read_metrics(run_dir, "perf/wall_s") if s >= a.warmup]
    (s0, t0), (s1, t1) = window[0], window[-1]
    return (s1 - s0) / (t1 - t0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1500, help="learning agent steps timed")
    parser.add_argument("--warmup", type=int, default=2000, help="agent steps of collection first")
    parser.add_argument("--repeats", type=int, default=2)
    a = parser.parse_args()
    os.environ.setdefault("WANDB_MODE", "offline")
    os.environ.setdefault("WANDB_SILENT", "true")
    print(f"Pong, env=pong preset, ε=0.02: {a.steps} learning steps timed, {a.repeats} rounds")
    results: dict[str, list[float]] = {name: [] for name in VARIANTS}
    names = list(VARIANTS)
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(a.repeats):
            for k, name in enumerate(names[i % len(names) :] + names[: i % len(names)]):
                sps = steps_per_s(VARIANTS[name], a, Path(tmp), f"r{i}-{k}")
                results[name].append(sps)
                print(f"  {name:<26}{sps:7.1f} agent steps/s", flush=True)
    med = {name: statistics.median(v) for name, v in results.items()}
    base = med[BASE]
    print("\n| variant | agent steps/s | vs base | ms per agent step | extra ms vs base |")
    print("| --- | --- | --- | --- | --- |")
    for name, sps in med.items():
        extra = 1e3 / sps - 1e3 / base
        print(f"| {name} | {sps:.1f} | {sps / base:.2f}x | {1e3 / sps:.1f} | {extra:+.1f} |")
    print(json.dumps({"median_sps": med, "runs": results}))


if __name__ == "__main__":
    main()
