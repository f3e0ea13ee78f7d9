"""A robust solve (``eval.robust_epsilon``, ``eval.robust_threshold``): an evaluation that
reaches the solve threshold plays as many games again at a higher epsilon, and the run counts
as solved only if those average the robust threshold too. Played on a real FrozenLake without
slipping (the way to the goal is one exact line of six moves, which random actions break), in
real tabular training runs, and with real weights files."""

from __future__ import annotations

import torch

from dqn_harness.evaluation.evaluator import Evaluator, robust_check
from dqn_harness.run.decisions import BEST, Decisions
from tests.conftest import (
    compose_cfg,
    lake_evaluation,
    run_train,
    stays,
    train_and_read,
    walks,
)

LAKE = ("algo=tabular", "env=frozenlake", "env.kwargs.is_slippery=false", "eval.episodes=20")


def played(policy, robust: tuple[float, float, int] | None) -> tuple[dict[str, float], Evaluator]:
    return lake_evaluation(policy, robust=robust)


def test_only_an_evaluation_that_reaches_the_threshold_plays_the_robust_games():
    steady, evaluator = played(walks, (0.7, 0.0, 20))
    assert steady["eval/return_mean"] == 1.0 and steady["eval/robust_return_mean"] == 1.0
    assert evaluator.last_robust == 1.0
    # at epsilon 1 every move is random: the six-move line to the goal is almost never walked
    shaken, evaluator = played(walks, (0.7, 1.0, 20))
    assert shaken["eval/return_mean"] == 1.0 and shaken["eval/robust_return_mean"] < 0.3
    assert evaluator.last_robust == shaken["eval/robust_return_mean"]
    far, evaluator = played(stays, (0.7, 0.0, 20))  # 0 is far from 0.7: no games spent on it
    assert "eval/robust_return_mean" not in far and evaluator.last_robust is None
    assert "eval/robust_return_mean" not in played(walks, None)[0]
    assert steady["eval/robust_episodes"] == shaken["eval/robust_episodes"] == 20


def test_the_robust_games_can_outnumber_an_evaluations():
    """eval.robust_episodes: 40 robust games after an evaluation of 20, each a whole game at
    the robust epsilon (a mean over 40 games is a multiple of 1/40 that 20 cannot give)."""
    steady, _ = played(walks, (0.7, 0.0, 40))
    assert steady["eval/episodes"] == 20 and steady["eval/robust_episodes"] == 40
    assert steady["eval/robust_return_mean"] == 1.0
    many, _ = played(walks, (0.7, 0.5, 40))
    assert many["eval/robust_episodes"] == 40 and many["eval/episodes"] == 20
    wins = many["eval/robust_return_mean"] * 40
    assert 0 < wins < 40 and round(wins) % 2 == 1  # an odd count of 40: not a mean of 20


def test_a_solve_needs_the_robust_games_and_keeps_the_solving_policy(tmp_path):
    saved: list[tuple[str, int]] = []

    def save_weights(path, env_steps):
        torch.save({"env_steps": env_steps}, path)
        saved.append((path.name, env_steps))

    decisions = Decisions(
        ckpt_dir=tmp_path,
        threshold=19.0,
        stop_on_solve=True,
        save_weights=save_weights,
        robust_epsilon=0.05,
        robust_threshold=15.0,
    )
    said = decisions.after_evaluation(100, 20.0, 14.3)  # brittle: not solved
    assert not decisions.solved and not decisions.should_stop
    assert said is not None and "14.30, under 15.0: not solved yet" in said
    assert decisions.after_evaluation(200, 12.0, None) is None  # far off: nothing to say
    assert decisions.after_evaluation(300, 19.0, 16.0) is None
    assert decisions.solved_at == 300 and decisions.should_stop
    # best.pt is the solving policy, though 20.0 at step 100 scored higher at epsilon 0.01
    assert torch.load(tmp_path / BEST, weights_only=True)["env_steps"] == 300
    assert decisions.summary()["robust_eval_return"] == 16.0
    assert decisions.summary()["best_eval_return"] == 19.0
    plain = Decisions(ckpt_dir=tmp_path / "plain", threshold=19.0, stop_on_solve=True,
                      save_weights=save_weights)  # fmt: skip
    plain.after_evaluation(100, 20.0, None)
    assert plain.solved_at == 100 and plain.summary()["robust_eval_return"] is None


def test_the_check_is_off_unless_asked():
    assert robust_check(compose_cfg("+experiment=pong_nips_lr2e4")) is None
    assert robust_check(compose_cfg("env=pong")) == (19.0, 0.05, 40)  # env=pong asks for it
    cfg = compose_cfg("env=pong", "eval.robust_epsilon=0.1", "eval.robust_threshold=15")
    assert robust_check(cfg) == (19.0, 0.1, 40)
    # unset, the robust games are as many as the evaluation's
    assert robust_check(compose_cfg("env=pong", "eval.robust_episodes=null")) == (19.0, 0.05, 20)
    assert robust_check(compose_cfg("+experiment=pong_f1")) == (19.0, 0.05, 20)
    assert robust_check(compose_cfg("+experiment=pong_f2_r40")) == (19.0, 0.05, 40)


def lake_run(tmp_path, name: str, *args: str) -> tuple[dict, list[dict], str]:
    return train_and_read(tmp_path / name, *LAKE, "eval.every=200", "total_steps=3000", *args)


def test_real_runs_solve_only_when_the_policy_survives_random_actions(tmp_path):
    """The same training twice: robust games at epsilon 0 pass and the run solves where the
    plain rule would; at epsilon 1 they never pass, so it trains to total_steps unsolved."""
    summary, evals, _ = lake_run(
        tmp_path, "steady", "eval.robust_epsilon=0", "eval.robust_threshold=0.9"
    )
    assert summary["solved"] and summary["robust_eval_return"] == 1.0
    assert evals[-1]["eval/robust_return_mean"] == 1.0
    assert summary["solved_at_step"] == evals[-1]["env_steps"] < 3000
    summary, evals, stderr = lake_run(
        tmp_path, "shaken", "eval.robust_epsilon=1", "eval.robust_threshold=0.9"
    )
    assert not summary["solved"] and summary["status"] == "finished"
    assert summary["env_steps"] >= 3000
    reached = [r for r in evals if r["eval/return_mean"] >= 0.7]
    assert len(reached) >= 2 and all(r["eval/robust_return_mean"] < 0.9 for r in reached)
    assert "not solved yet, training goes on" in stderr
    assert summary["robust_eval_return"] == reached[-1]["eval/robust_return_mean"]


def test_bad_settings_are_one_line(tmp_path):
    for args, expected in (
        (
            ("eval.robust_epsilon=0.05",),
            "error: eval.robust_epsilon: needs eval.robust_threshold too",
        ),
        (
            ("eval.robust_threshold=0.5",),
            "error: eval.robust_threshold: needs eval.robust_epsilon too",
        ),
        (
            ("eval.robust_episodes=40",),
            "error: eval.robust_episodes: needs eval.robust_epsilon too",
        ),
        (
            ("eval.robust_epsilon=0.05", "eval.robust_threshold=0.5", "eval.robust_episodes=0"),
            "error: eval.robust_episodes: must be > 0",
        ),
        (
            ("eval.robust_epsilon=1.5", "eval.robust_threshold=0.5"),
            "error: eval.robust_epsilon: must be in [0, 1], got 1.5",
        ),
        (
            (
                "env.id=CliffWalking-v1",
                "~env.kwargs.map_name",
                "~env.kwargs.is_slippery",
                "eval.robust_epsilon=0.05",
                "eval.robust_threshold=0.5",
            ),
            "error: eval.robust_epsilon: CliffWalking-v1 has no solve threshold",
        ),
    ):
        done = run_train("env=frozenlake", *args, "logger=none", cwd=tmp_path)
        assert done.returncode == 2 and done.stderr.strip().startswith(expected), done.stderr
