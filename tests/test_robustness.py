"""Runs that must stop loudly (divergence) and runs that must repeat exactly (same seed, CPU)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import torch

from dqn_harness.tracking.metrics import read_metrics

from .conftest import run_train

QUIET = ["progress=false", "logger=none"]


def test_non_finite_loss_stops_the_run_and_keeps_finite_checkpoints(tmp_path):
    run_dir = tmp_path / "run"
    proc = run_train(
        "env=cartpole",
        "optim.lr=1e30",  # one Adam step moves every weight by ~1e30: Q overflows at once
        "learning_starts=600",
        "eval.every=500",  # due at 500: runs after the first update, before the divergence
        "eval.episodes=2",
        "total_steps=5000",
        f"hydra.run.dir={run_dir}",
        *QUIET,
        cwd=tmp_path,
    )
    assert proc.returncode == 1, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "training diverged: non-finite" in errors[0], proc.stderr
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "diverged"
    assert 600 <= summary["env_steps"] < 5000
    # the update that diverged was sampled one agent step (train_freq 1) before the collector's
    # count: Lightning had already fetched the next batch
    named = int(errors[0].split("agent step ")[1].split(" ")[0].replace(",", ""))
    assert summary["env_steps"] - 1 <= named <= summary["env_steps"], (named, summary)
    # the last checkpoint predates the divergence: its weights are finite
    state = torch.load(run_dir / "checkpoints" / "last.pt", weights_only=True)
    assert 600 <= state["env_steps"] < summary["env_steps"]
    assert all(torch.isfinite(t).all() for t in state["q_net"].values())


def _trace(run_dir: Path) -> dict[str, list[tuple[int, float]]]:
    return {
        key: read_metrics(run_dir, key)
        for key in ("train/episode_return", "train/loss", "train/td_error_abs", "eval/return_mean")
    }


def test_same_seed_same_run_on_cpu(tmp_path):
    """CartPole DQN and FrozenLake tabular: episode returns and losses repeat exactly."""
    setups = {
        "cartpole": [
            "env=cartpole",
            "total_steps=3000",
            "learning_starts=500",
            "eval.every=1500",
            "logger.every=250",
        ],
        "frozenlake": ["algo=tabular", "env=frozenlake", "total_steps=20000", "eval.every=5000"],
    }
    for name, args in setups.items():
        traces = []
        for attempt in range(2):
            run_dir = tmp_path / f"{name}-{attempt}"
            proc = run_train(*args, "seed=3", f"hydra.run.dir={run_dir}", *QUIET, cwd=tmp_path)
            assert proc.returncode == 0, proc.stderr[-2000:]
            traces.append(_trace(run_dir))
        first, second = traces
        assert len(first["train/episode_return"]) > 20, name
        if name == "cartpole":
            assert len(first["train/loss"]) >= 5
            assert all(math.isfinite(v) for _, v in first["train/loss"])
        assert first == second, name
    # and a different seed gives a different run (the comparison can fail)
    other = tmp_path / "cartpole-seed4"
    proc = run_train(*setups["cartpole"], "seed=4", f"hydra.run.dir={other}", *QUIET, cwd=tmp_path)
    assert proc.returncode == 0
    assert (
        _trace(other)["train/episode_return"]
        != _trace(tmp_path / "cartpole-0")["train/episode_return"]
    )
