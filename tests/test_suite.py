"""Game suites as grids (-m suite=atari5) on real games with tiny budgets, and their refusals."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from dqn_harness.commands.suites import check_game
from dqn_harness.comparing.normalized import Normalized, reference_scores
from dqn_harness.comparing.suites import ATARI5_WEIGHTS, atari5_lines, atari5_median
from dqn_harness.envs.atari import ale_game
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
    # and from the runs' own summaries and the reference table, independently of the code
    # under test: normalized per game, then the paper's formula written out
    table = reference_scores()
    weights = {
        "battle_zone": 0.3820,
        "double_dunk": 0.0679,
        "name_this_game": 0.3108,
        "phoenix": 0.1241,
        "qbert": 0.0805,
    }
    log = 0.0
    for run_dir in (tmp_path / "multirun" / "atari5").glob("*-*"):
        if not (run_dir / "summary.json").exists():
            continue
        game = ale_game(json.loads((run_dir / "config.json").read_text())["env.id"])
        score = json.loads((run_dir / "summary.json").read_text())["eval_return_mean"]
        random, human = table[game]
        normalized = (score - random) / (human - random)
        assert per_game[game] == pytest.approx(normalized, abs=1e-3)
        log += weights[game] * np.log10(1 + max(100 * normalized, 0.0))
    match = re.search(r"dqn: estimated 57-game median (-?[0-9.]+)", proc.stdout)
    assert match, proc.stdout[-2000:]
    assert float(match[1]) == pytest.approx((10**log - 1) / 100, abs=2e-3)


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


def test_the_atari5_estimate_is_the_papers_regression_by_hand_where_every_game_counts():
    """The paper's model worked by hand on scores where all five games count: 50%, 200%,
    100%, 30% and 10% of human (Battle Zone, Double Dunk, Name This Game, Phoenix, Q*bert),
    with the paper's weights to four places (0.3820, 0.0679, 0.3108, 0.1241, 0.0805):
    0.3820 log10(51) + 0.0679 log10(201) + 0.3108 log10(101) + 0.1241 log10(31)
    + 0.0805 log10(11) = 0.6523 + 0.1564 + 0.6229 + 0.1851 + 0.0838 = 1.7005;
    10^1.7005 - 1 = 49.18% of human."""
    scores = {
        "battle_zone": 0.5,
        "double_dunk": 2.0,
        "name_this_game": 1.0,
        "phoenix": 0.3,
        "qbert": 0.1,
    }
    assert atari5_median(scores) == pytest.approx(0.4918, abs=2e-4)
    # the weights are the paper's published fit (to four places), in its order of games
    assert [round(w, 4) for w in ATARI5_WEIGHTS.values()] == [
        0.3820,
        0.0679,
        0.3108,
        0.1241,
        0.0805,
    ]
    assert list(ATARI5_WEIGHTS) == [
        "battle_zone",
        "double_dunk",
        "name_this_game",
        "phoenix",
        "qbert",
    ]
    # a game below random adds nothing (its log term is log10(1) = 0): Double Dunk at -300%
    # gives the estimate without its 0.0679 log10(201) = 0.1564
    below = {**scores, "double_dunk": -3.0}
    assert atari5_median(below) == pytest.approx((10 ** (1.7005 - 0.1564) - 1) / 100, abs=3e-4)
    # every game at human level: 101^(sum of weights) - 1 = 85.05% of human
    assert atari5_median(dict.fromkeys(scores, 1.0)) == pytest.approx(0.8505, abs=1e-4)


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


def test_a_suite_on_a_named_preset_names_each_game_as_itself():
    """`-m suite=atari5 env=breakout` trains the five games with Breakout's preset: each job is
    named and grouped (W&B group, run dir) by its own game, not as Breakout. env=pong's robust
    solve is a Pong score, so the same suite on env=pong is refused, one job at a time."""
    from dqn_harness.commands.multirun import expand
    from dqn_harness.commands.suites import expand_suite
    from dqn_harness.config import compose_config, register_configs, validate
    from tests.conftest import CONF

    register_configs()
    argv = expand_suite(CONF, ["suite=atari5", "env=breakout", "seed=0"], multirun=True)
    names = set()
    for job in expand(argv):
        cfg = compose_config(CONF, job)
        validate(cfg)
        names.add(cfg.env.name)
        assert cfg.env.name == ale_game(cfg.env.id).replace("_", "")
        assert cfg.run_name.startswith(f"{cfg.env.name}-dqn-s0-")
        assert cfg.env.reward_threshold is None  # no borrowed threshold
    assert names == {"battlezone", "doubledunk", "namethisgame", "phoenix", "qbert"}
    assert compose_config(CONF, ["env=breakout"]).env.name == "breakout"  # the preset's own game
    for job in expand(expand_suite(CONF, ["suite=atari5", "env=pong", "seed=0"], multirun=True)):
        with pytest.raises(UsageError, match="no solve threshold") as info:
            validate(compose_config(CONF, job))
        assert info.value.key == "eval.robust_epsilon"
