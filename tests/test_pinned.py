"""The reference FrozenLake run reproduces checked-in numbers exactly, on any machine.

Tabular Q-learning on FrozenLake is pure NumPy (gymnasium's env and the Q-table, float64 and
seeded PCG64 streams), so the same command gives the same episodes and evaluations everywhere.
Any change to the env stepping, the autoreset bookkeeping, ε-greedy, evaluation, the TD update
or the cadences shows up here as a changed number. A deliberate change of behaviour re-records
tests/data/frozenlake_tabular_s3.json (and says why in its commit).
"""

from __future__ import annotations

import json

from .conftest import ROOT, run_train

PINNED = json.loads((ROOT / "tests" / "data" / "frozenlake_tabular_s3.json").read_text())


def test_frozenlake_reference_run_matches_pinned_values(tmp_path):
    run_dir = tmp_path / "run"
    args = PINNED["command"].split()[2:]  # after "python train.py"
    proc = run_train(
        *args, "logger=none", "progress=false", f"hydra.run.dir={run_dir}", cwd=tmp_path
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    evals = [[r["env_steps"], r["eval/return_mean"]] for r in records if "eval/return_mean" in r]
    assert evals == PINNED["evaluations"]
    episodes = [r for r in records if "train/episode_return" in r]
    returns = "".join(str(int(r["train/episode_return"])) for r in episodes)
    assert returns == PINNED["episode_returns"]
    assert sum(r["env_steps"] for r in episodes) == PINNED["episode_end_steps_sum"]
    summary = json.loads((run_dir / "summary.json").read_text())
    assert {k: summary[k] for k in PINNED["summary"]} == PINNED["summary"]
