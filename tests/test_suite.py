"""Game suites as grids (-m suite=atari5) on real games with tiny budgets, and their refusals."""

from __future__ import annotations

import json

import pytest

from dqn_harness.commands.suites import check_game
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
