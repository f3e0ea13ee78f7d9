"""An evaluation that can no longer solve stops short (``eval.min_episodes``, ``env.max_return``):
after its first games, when even the best score in every game left could not lift the mean to
the threshold. Played on a real FrozenLake, whose best return is 1, and in a real training run;
the solve decision stays the full evaluation's."""

from __future__ import annotations

import numpy as np
from gymnasium.vector import SyncVectorEnv

from dqn_harness.envs import make_env
from dqn_harness.evaluation.evaluator import Evaluator, stop_short
from tests.conftest import compose_cfg, run_train, train_and_read

# The way to the goal of the 4x4 lake, not slippery: right, right, down, down, down, right (the
# goal itself, seen once as an episode ends, needs no action).
TO_GOAL = {0: 2, 1: 2, 2: 1, 6: 1, 10: 1, 14: 2}


def lake(n: int) -> SyncVectorEnv:
    cfg = compose_cfg("env=frozenlake", "env.kwargs.is_slippery=false").env
    return SyncVectorEnv([lambda: make_env(cfg) for _ in range(n)])


def played(policy, short: tuple[int, float, float] | None) -> dict[str, float]:
    """What one evaluation of 20 games at epsilon 0 on 4 envs logs."""
    logged: dict[str, float] = {}
    evaluator = Evaluator(
        env=lake(4),
        episodes=20,
        epsilon=0.0,
        seed=0,
        log=lambda record, step: logged.update(record),
        stop_short=short,
    )
    evaluator.run(100, policy)
    evaluator.close()
    return logged


def stays(obs: np.ndarray) -> np.ndarray:
    return np.zeros(len(obs), dtype=np.int64)  # left, into the wall: every game scores 0


def walks(obs: np.ndarray) -> np.ndarray:
    return np.array([TO_GOAL.get(int(s), 0) for s in obs])  # every game scores 1


def test_an_evaluation_stops_only_once_it_cannot_reach_the_threshold():
    # 10 games of 0: 10 more games of 1 would make 10/20 = 0.5, under 0.55: hopeless
    cut = played(stays, (10, 0.55, 1.0))
    assert cut["eval/episodes"] == 10 and cut["eval/return_mean"] == 0.0
    # at a threshold of 0.5 those 10 games could still reach it exactly: all 20 are played
    assert played(stays, (10, 0.5, 1.0))["eval/episodes"] == 20
    # an agent that wins every game always plays all 20, as does an evaluation without the rule
    solving = played(walks, (10, 0.7, 1.0))
    assert solving["eval/episodes"] == 20 and solving["eval/return_mean"] == 1.0
    assert played(stays, None)["eval/episodes"] == 20


def test_the_rule_needs_min_episodes_a_threshold_and_the_games_best_score():
    assert stop_short(compose_cfg("env=pong")) == (10, 19.0, 21.0)  # the preset sets 10
    assert stop_short(compose_cfg("env=pong", "eval.min_episodes=null")) is None
    # at least 10 games of 5 (a preset's evaluation made shorter): all 5 are played
    assert stop_short(compose_cfg("env=pong", "eval.episodes=5")) is None
    # CartPole's best return depends on its step cap, so the harness does not assume one
    assert stop_short(compose_cfg("env=cartpole", "eval.min_episodes=5")) is None
    assert stop_short(compose_cfg("env=cartpole", "eval.min_episodes=5", "env.max_return=500")) == (
        5,
        475.0,
        500.0,
    )


def test_a_real_run_cuts_hopeless_evaluations_and_solves_on_a_full_one(tmp_path):
    """Tabular Q-learning on the lake without slipping: its first evaluations (an empty table,
    every game 0) stop after 10 of their 20 games; the one that solves played all 20."""
    summary, evals, _ = train_and_read(
        tmp_path / "run",
        "algo=tabular",
        "env=frozenlake",
        "env.kwargs.is_slippery=false",
        "env.max_return=1",
        "eval.episodes=20",
        "eval.min_episodes=10",
        "eval.every=100",
        "total_steps=20000",
    )
    assert evals[0]["eval/episodes"] == 10 and evals[0]["eval/return_mean"] == 0.0
    assert evals[-1]["eval/return_mean"] >= 0.7 and evals[-1]["eval/episodes"] == 20
    assert summary["solved"] and summary["solved_at_step"] == evals[-1]["env_steps"]


def test_bad_settings_are_one_line(tmp_path):
    for args, expected in (
        (("eval.min_episodes=0",), "error: eval.min_episodes: must be > 0"),
        (("env.max_return=0.5",), "error: env.max_return: 0.5 is below the solve threshold 0.7"),
    ):
        done = run_train("env=frozenlake", "eval.episodes=10", *args, "logger=none", cwd=tmp_path)
        assert done.returncode == 2 and done.stderr.strip().startswith(expected), done.stderr
