"""Game suites as grids (-m suite=atari5) on real games with tiny budgets, and their refusals."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from dqn_harness.commands.suites import check_game
from dqn_harness.comparing.normalized import Normalized
from dqn_harness.comparing.suites import ATARI5_WEIGHTS, atari5_lines, atari5_median
from dqn_harness.errors import UsageError
from tests.conftest import run_cli, run_train

ATARI5 = {
    "ALE/BattleZone-v5",
    "ALE/DoubleDunk-v5",
    "ALE/NameThisGame-v5",
    "ALE/Phoenix-v5",
    "ALE/Qbert-v5",
}


@pytest.mark.slow
def test_atari5_runs_every_game_as_a_job_and_compare_summarizes_the_suite(tmp_path):
    proc = run_train(
        "-m",
        "suite=atari5",
        "seed=0",
        "total_steps=250",
        "learning_starts=200",
        "buffer.capacity=1000",
        "eval.every=250",
        "eval.episodes=1",
        "env.max_num_frames_per_episode=2000",
        "logger=none",
        "progress=false",
        "hydra.sweep.dir=multirun/atari5",
        cwd=tmp_path,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "all 5 jobs finished" in proc.stdout
    configs = [
        json.loads(p.read_text()) for p in (tmp_path / "multirun" / "atari5").glob("*/config.json")
    ]
    assert {c["env.id"] for c in configs} == ATARI5
    assert all(c["suite.name"] == "atari5" and c["protocol.name"] == "harness" for c in configs)
    proc = run_cli("compare.py", "normalize=human", "suite.name=atari5", "out=s", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "suite atari5: 5 games" in proc.stdout and "dqn: 5 of 5" in proc.stdout
    for game in ("battle_zone", "double_dunk", "name_this_game", "phoenix", "qbert"):
        assert f"| dqn | {game} |" in proc.stdout
    # The paper's 57-game median estimate, from the five games' normalized scores on disk.
    per_game = {}
    for line in (tmp_path / "s" / "normalized.md").read_text().splitlines():
        cells = [c.strip() for c in line.strip("|").split("|")]
        if len(cells) == 3 and cells[0] == "dqn" and cells[1] in ATARI5_WEIGHTS:
            per_game[cells[1]] = float(cells[2])
    assert sorted(per_game) == sorted(ATARI5_WEIGHTS)
    estimate = atari5_median(per_game)  # from 3-decimal scores: equal to the printed 3 decimals
    assert re.search(r"dqn: estimated 57-game median (-?[0-9.]+)", proc.stdout), proc.stdout[-2000:]
    printed = float(re.search(r"dqn: estimated 57-game median (-?[0-9.]+)", proc.stdout)[1])
    assert printed == pytest.approx(estimate, abs=2e-3)


@pytest.mark.parametrize(
    "args, key",
    [
        (["suite=atari5"], "suite"),  # a suite is a grid
        (["-m", "suite=atari6"], "suite"),  # no such suite
        (["-m", "suite=atari5", "env.id=ALE/Pong-v5"], "env.id"),  # the suite sets the games
    ],
)
def test_bad_suites_are_one_line(tmp_path, args, key):
    proc = run_train(*args, cwd=tmp_path, timeout=120)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert proc.stderr.strip().splitlines() == [proc.stderr.strip()]
    assert proc.stderr.startswith(f"error: {key}: ")


def test_a_suite_with_an_unknown_game_is_refused():
    with pytest.raises(UsageError, match="no ALE game 'ALE/NoSuchGame-v5'"):
        check_game("mine", "ALE/NoSuchGame-v5")
    check_game("atari5", "ALE/Qbert-v5")  # a real one passes


def test_the_atari5_estimate_is_the_papers_regression_recomputed_on_a_small_table():
    # The paper's model in percent of human, written out: log10(1 + median) is the weighted
    # sum of log10(1 + max(score, 0)) with no intercept.
    weights = [0.3819751237831753, 0.0679099488887574, 0.310804148620847, 0.12412619402774641]
    weights.append(0.08048518286466755)
    games = ["battle_zone", "double_dunk", "name_this_game", "phoenix", "qbert"]
    assert list(ATARI5_WEIGHTS) == games and list(ATARI5_WEIGHTS.values()) == weights
    # Every game at human level: 101 ** sum(w) - 1 percent.
    assert atari5_median(dict.fromkeys(games, 1.0)) == pytest.approx(
        (101 ** sum(weights) - 1) / 100, rel=1e-12
    )
    assert atari5_median(dict.fromkeys(games, 1.0)) == pytest.approx(0.8505, abs=1e-4)
    # A below-random game adds nothing; so does one exactly at random.
    scores = {"battle_zone": 2.0, "double_dunk": -3.0, "name_this_game": 0.5, "phoenix": 0.0}
    scores["qbert"] = 0.25
    log = weights[0] * np.log10(201) + weights[2] * np.log10(51) + weights[4] * np.log10(26)
    assert atari5_median(scores) == pytest.approx((10**log - 1) / 100, rel=1e-12)


def test_the_atari5_estimate_uses_the_mean_over_seeds_and_needs_all_five_games():
    games = sorted(ATARI5_WEIGHTS)
    scores = np.array([[0.2, 0.1, 1.0, 0.3, 0.5], [0.4, -0.1, 2.0, 0.5, 0.7]])  # seeds x games
    res = Normalized("dqn", games, scores, {}, {})
    [line] = atari5_lines(res)
    mean = atari5_median(dict(zip(games, scores.mean(axis=0), strict=True)))
    per_seed = [atari5_median(dict(zip(games, row, strict=True))) for row in scores]
    assert f"estimated 57-game median {mean:.3f}" in line
    assert f"per seed {min(per_seed):.3f} to {max(per_seed):.3f}" in line
    partial = Normalized("dqn", games[:4], scores[:, :4], {}, {})
    assert atari5_lines(partial) == ["  dqn: no 57-game median estimate without qbert"]
