"""evaluate.py on real short runs: its numbers equal a recomputation from the checkpoint, its JSON,
video and W&B run, compare.py source=evaluate, and one-line errors for bad input."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from dqn_harness.envs import make_vec_env
from dqn_harness.evaluation.evaluator import evaluate
from tests.conftest import run_cli, run_train


def run_eval(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return run_cli("evaluate.py", *args, cwd=cwd, timeout=300)


def result_files(run_dir: Path) -> list[Path]:
    return sorted(run_dir.glob("eval-*.json"))


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    """A tabular FrozenLake run logged to W&B (offline) and a DQN CartPole run."""
    tmp = tmp_path_factory.mktemp("evaluate")
    fl, cp = tmp / "frozenlake", tmp / "cartpole"
    for run_dir, args in (
        (fl, ["algo=tabular", "env=frozenlake", "total_steps=20000", "eval.every=5000"]),
        (cp, ["env=cartpole", "total_steps=3000", "learning_starts=500", "eval.every=1500"]),
    ):
        proc = run_train(
            *args,
            "logger=wandb" if run_dir == fl else "logger=none",
            "progress=false",
            f"hydra.run.dir={run_dir}",
            cwd=tmp,
        )
        assert proc.returncode == 0, proc.stderr[-2000:]
    return {"frozenlake": fl, "cartpole": cp, "cwd": tmp}


def test_tabular_result_equals_a_recomputation_and_is_logged(runs):
    run_dir = runs["frozenlake"]
    proc = run_eval(f"run={run_dir}", "episodes=60", "seed=7", "video=1", cwd=runs["cwd"])
    assert proc.returncode == 0, proc.stderr[-2000:]
    [path] = result_files(run_dir)
    assert path.name.startswith("eval-best-")
    result = json.loads(path.read_text())

    # recompute: the best checkpoint's table, played greedily on the same seed
    from dqn_harness.scoring.protocol import Protocol, scoring_config
    from dqn_harness.tabular.qtable import QTable

    weights = torch.load(run_dir / "checkpoints" / "best.pt", weights_only=True)
    table = QTable(4)
    table.load_state_dict(weights)
    cfg = scoring_config(weights["config"], Protocol())
    env = make_vec_env(cfg.env, 1)
    returns = evaluate(env, table.greedy, 60, 0.0, np.random.default_rng(7), seed=7)
    env.close()
    assert result["returns"] == returns and len(returns) == 60
    assert result["return_mean"] == pytest.approx(np.mean(returns))
    assert result["return_std"] == pytest.approx(np.std(returns))
    assert result["return_min"] == min(returns) and result["return_max"] == max(returns)
    low, high = result["return_ci95"]
    assert low <= result["return_mean"] <= high and low < high  # returns are 0s and 1s
    assert result["checkpoint_env_steps"] == weights["env_steps"]
    assert result["epsilon"] == 0.0 and result["episodes"] == 60 and result["seed"] == 7
    assert f"return {result['return_mean']:.2f}" in proc.stdout

    [video] = result["videos"]
    assert Path(video).stat().st_size > 1000 and Path(video).suffix == ".gif"

    # the W&B run: an eval job in the training run's group, holding the same statistics
    leet = Path(sys.executable).parent / "wandb"
    records = subprocess.run(
        [str(leet), "leet", "inspect", "--json", result["wandb_run_dir"]],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    run = [json.loads(r)["run"] for r in records if '"type":"run"' in r][-1]
    assert run["job_type"] == "eval" and run["run_group"] == "frozenlake"
    inspected = json.loads(
        subprocess.run(
            [str(leet), "leet", "inspect", "--summary", "--json", result["wandb_run_dir"]],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    )
    summary = inspected["summary"]
    for stat in ("mean", "std", "min", "max"):
        assert summary[f"eval/return_{stat}"] == pytest.approx(result[f"return_{stat}"])
    low, high = result["return_ci95"]
    assert (summary["eval/return_ci95_low"], summary["eval/return_ci95_high"]) == (low, high)
    assert inspected["config"]["episodes"] == 60 and inspected["config"]["epsilon"] == 0
    # the returns table holds every episode's return and length, as the result file does
    table = summary["eval/returns"]
    assert (table["nrows"], table["ncols"]) == (60, 3)
    data = json.loads((Path(result["wandb_run_dir"]) / "files" / table["path"]).read_text())
    assert data["columns"] == ["episode", "return", "length"]
    assert [row[1] for row in data["data"]] == result["returns"]
    assert [row[2] for row in data["data"]] == result["lengths"]


def test_dqn_protocol_caps_episodes_and_compare_reads_it(runs):
    run_dir = runs["cartpole"]
    proc = run_eval(
        f"checkpoint={run_dir / 'checkpoints' / 'last.pt'}",
        "episodes=6",
        "num_envs=2",
        "epsilon=0",
        "env.max_episode_steps=40",
        "logger=none",
        cwd=runs["cwd"],
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    [path] = result_files(run_dir)
    result = json.loads(path.read_text())
    assert path.name.startswith("eval-last-") and result["wandb_run_dir"] is None
    assert len(result["lengths"]) == 6 and max(result["lengths"]) <= 40
    assert result["capped_episodes"] == sum(n == 40 for n in result["lengths"])
    assert all(r <= 40 for r in result["returns"])  # CartPole pays 1 per step

    # recompute with the saved network
    from dqn_harness.scoring.protocol import Protocol, load_policy, scoring_config

    weights = torch.load(run_dir / "checkpoints" / "last.pt", weights_only=True)
    cfg = scoring_config(weights["config"], Protocol(env={"max_episode_steps": 40}))
    env = make_vec_env(cfg.env, 2)
    policy = load_policy(cfg, weights, 2, env.single_observation_space)
    seed = result["seed"]
    returns = evaluate(env, policy, 6, 0.0, np.random.default_rng(seed), seed=seed)
    env.close()
    assert sorted(returns) == sorted(result["returns"])

    # compare.py puts the evaluation in its table
    out = runs["cwd"] / "cmp"
    cmp = run_cli(
        "compare.py",
        "env=cartpole",
        "source=evaluate",
        f"runs={runs['cwd']}",
        f"out={out}",
        cwd=runs["cwd"],
    )
    assert cmp.returncode == 0, cmp.stderr[-2000:]
    rows = (out / "runs.csv").read_text().splitlines()
    assert len(rows) == 2 and f"{result['return_mean']}" in rows[1]


def test_bad_input_is_one_line(runs, tmp_path):
    corrupt = tmp_path / "corrupt" / "checkpoints"
    corrupt.mkdir(parents=True)
    data = (runs["cartpole"] / "checkpoints" / "last.pt").read_bytes()
    (corrupt / "best.pt").write_bytes(data[: len(data) // 2])
    other = tmp_path / "other"
    shutil.copytree(runs["frozenlake"], other, ignore=shutil.ignore_patterns("eval-*"))
    cases = [
        ([f"run={tmp_path / 'nope'}"], "error: run: no run directory"),
        ([f"run={corrupt.parent}"], "error: checkpoint: "),
        (
            [f"run={other}", f"checkpoint={runs['cartpole'] / 'checkpoints' / 'last.pt'}"],
            "error: algo.name: the checkpoint was trained with 'dqn'",
        ),
        ([f"run={other}", "env.id=CartPole-v1"], "error: env.id: evaluate.py plays the run's own"),
        (
            [f"run={other}", "env.repeat_action_probability=0.25"],
            "error: env.repeat_action_probability: sticky actions are an ALE setting",
        ),
        ([f"run={other}", "episodes=0"], "error: episodes: must be >= 1"),
        ([f"run={other}", "epsilon=2"], "error: epsilon: must be [0, 1]"),
        ([f"run={other}", "checkpoint=middle.pt"], "error: checkpoint: no checkpoint file"),
        ([f"run={other}", "eposides=5"], "error: eposides: unknown option"),
    ]
    for args, expected in cases:
        proc = run_eval(*args, cwd=tmp_path)
        lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
        assert proc.returncode == 2 and len(lines) == 1, (args, proc.stderr[-2000:])
        assert lines[0].startswith(expected), (args, lines[0])
    assert not result_files(other) and not result_files(corrupt.parent)
