"""Sweep benchmark: FrozenLake trials per minute with 1 and 2 workers, and the sweep's overhead.

    .venv/bin/python experiments/bench/sweep_throughput.py [--trials 8] [--steps 30000]

Runs the real CLI (``python sweep.py sweep=frozenlake_tabular ...``) three times in one process,
each on a fresh SQLite study in a temporary folder: 1 worker, 2 workers, and 1 worker logging to
W&B (offline). Every trial trains the same number of agent steps (no solved-stop, no pruning) so
the configurations compare like for like. Figures:

- trials/min of the whole command (start-up and report included) and the 2-worker speed-up;
- per-trial overhead = the trial's wall time in the storage (start to complete) minus the
  training's own ``wall_s`` from its summary.json: composing the config, Optuna's sampling and
  bookkeeping, the heartbeat, W&B set-up and teardown.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import optuna

ROOT = Path(__file__).resolve().parents[2]


def one(workers: int, logger: str, trials: int, steps: int, tmp: Path) -> dict[str, float]:
    study = f"bench_w{workers}_{logger}"
    args = [
        sys.executable,
        str(ROOT / "sweep.py"),
        "sweep=frozenlake_tabular",
        f"study={study}",
        f"n_trials={trials}",
        f"workers={workers}",
        f"out={tmp / 'sweeps'}",
        f"presets_dir={tmp / 'presets'}",
        "pruner.name=none",
        f"logger={logger}",
        "progress=false",
        f"total_steps={steps}",
        "eval.stop_on_solve=false",
    ]
    env = {**os.environ, "WANDB_MODE": "offline", "WANDB_SILENT": "true"}
    start = time.perf_counter()
    subprocess.run(args, cwd=tmp, env=env, check=True, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    storage = f"sqlite:///{tmp / 'sweeps' / study / 'study.db'}"
    done = [
        t
        for t in optuna.load_study(study_name=study, storage=storage).get_trials()
        if t.state == optuna.trial.TrialState.COMPLETE
    ]
    overhead, train = [], []
    for t in done:
        assert t.datetime_start and t.datetime_complete
        trial_s = (t.datetime_complete - t.datetime_start).total_seconds()
        wall = json.loads((Path(t.user_attrs["run_dir_s0"]) / "summary.json").read_text())["wall_s"]
        overhead.append(trial_s - wall)
        train.append(wall)
    return {
        "trials": len(done),
        "elapsed_s": elapsed,
        "trials_per_min": 60 * len(done) / elapsed,
        "train_s": float(np.mean(train)),
        "overhead_s": float(np.mean(overhead)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=8)
    parser.add_argument("--steps", type=int, default=30_000)
    a = parser.parse_args()
    print(
        f"FrozenLake tabular sweep, {a.trials} trials x {a.steps:,} agent steps, "
        f"{os.cpu_count()} CPUs"
    )
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        for workers, logger in ((1, "none"), (2, "none"), (1, "wandb")):
            key = f"{workers} worker{'s' if workers > 1 else ''}, logger={logger}"
            rows[key] = r = one(workers, logger, a.trials, a.steps, Path(tmp))
            print(
                f"{key:28} {r['trials_per_min']:6.1f} trials/min  ({r['elapsed_s']:.0f}s for "
                f"{r['trials']:.0f})  training {r['train_s']:.2f}s/trial  "
                f"overhead {r['overhead_s']:.2f}s/trial"
            )
    base = rows["1 worker, logger=none"]
    speedup = rows["2 workers, logger=none"]["trials_per_min"] / base["trials_per_min"]
    print(
        f"2 workers vs 1: {speedup:.2f}x"
        f" trials/min; overhead per trial {base['overhead_s']:.2f}s "
        f"({100 * base['overhead_s'] / (base['overhead_s'] + base['train_s']):.0f}% of a trial); "
        f"W&B offline adds {rows['1 worker, logger=wandb']['overhead_s'] - base['overhead_s']:.2f}s"
        " per trial"
    )


if __name__ == "__main__":
    main()
