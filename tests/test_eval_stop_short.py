"""An evaluation that can no longer solve stops short (``eval.min_episodes``, ``env.max_return``):
it plays its games min_episodes at a time and stops after any lot once even the best score in
every game left could not lift the mean to the threshold. Played on a real FrozenLake, whose
best return is 1, and in a real training run; the solve decision stays the full evaluation's."""

from __future__ import annotations

from dqn_harness.evaluation.evaluator import stop_short
from tests.conftest import (
    compose_cfg,
    lake_evaluation,
    run_train,
    stays,
    train_and_read,
    walks,
)


def played(policy, short: tuple[int, float, float] | None) -> dict[str, float]:
    """What one evaluation of 20 games at epsilon 0 on 4 envs logs."""
    return lake_evaluation(policy, stop_short=short)[0]


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


def test_it_looks_again_after_every_lot_of_min_episodes_games():
    # 20 games of 0, looked at every 4: 16 or 12 more games of 1 could still make the 11 that
    # 0.55 of 20 needs, so the lots after 4 and 8 go on; after 12, the 8 left make only 8
    cut = played(stays, (4, 0.55, 1.0))
    assert cut["eval/episodes"] == 12 and cut["eval/return_mean"] == 0.0
    # at 0.8 (16 of 20) the first lot leaves exactly 16 within reach; the second does not
    assert played(stays, (4, 0.8, 1.0))["eval/episodes"] == 8
    # at 0.2 (4 of 20) no lot ever rules it out: all 20 are played, in lots of 4
    assert played(stays, (4, 0.2, 1.0))["eval/episodes"] == 20
    assert played(walks, (4, 0.7, 1.0))["eval/episodes"] == 20


def test_the_rule_needs_min_episodes_a_threshold_and_the_games_best_score():
    assert stop_short(compose_cfg("env=pong")) == (4, 19.0, 21.0)  # one game per eval env
    assert stop_short(compose_cfg("env=pong", "eval.min_episodes=null")) is None
    # at least 4 games of 4 (a preset's evaluation made shorter): all 4 are played
    assert stop_short(compose_cfg("env=pong", "eval.episodes=4")) is None
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
