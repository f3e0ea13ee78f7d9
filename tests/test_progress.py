"""The progress bar's pace and time left follow the current phase's recent speed."""

from __future__ import annotations

import re

import pytest

from dqn_harness.tracking.progress import Pace, duration

from .conftest import run_train


def test_time_left_ignores_the_warm_up_and_counts_evaluation_pauses():
    pace = Pace(window=300.0)
    t = 0.0
    for step in range(0, 10_000, 1_000):  # warm-up: 2,000 steps/s
        pace.mark(t, step, "warm-up")
        t += 0.5
    assert pace.rate == pytest.approx(2_000)
    step = 10_000
    for _minute in range(10):  # learning: 150 steps/s, then a 60 s evaluation every minute
        for _ in range(120):
            pace.mark(t, step, "learning")
            t += 0.5
            step += 75
        t += 60.0  # evaluation: no steps
    # over the last 300 s the run made 150 steps/s half the time: 75 steps/s on the clock
    assert pace.rate == pytest.approx(75, rel=0.05)
    assert pace.seconds_left(75 * 3600) == pytest.approx(3600, rel=0.05)
    assert Pace().seconds_left(100) is None


def test_durations_read_as_people_write_them():
    assert [duration(s) for s in (None, 45, 725, 5760)] == ["?", "45s", "12m05s", "1h36m"]


def test_the_bar_shows_the_phase_and_the_time_left(tmp_path):
    proc = run_train(
        "env=cartpole",
        "total_steps=4500",
        "learning_starts=1500",
        "eval.every=1500",
        "eval.episodes=2",
        "logger=none",
        f"hydra.run.dir={tmp_path / 'run'}",
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    redraws = proc.stderr.replace("\r", "\n").splitlines()
    assert any("warm-up" in r and "left=?" in r for r in redraws)
    learning = [r for r in redraws if " learning " in r]
    assert learning and all("left=" in r and "sps=" in r for r in learning)
    assert not any("<" in r for r in learning), "tqdm's own whole-run estimate is not shown"
    # after an evaluation (1,500 and 3,000) the bar shows its score and what it cost
    assert any(re.search(r" eval=-?\d+\.\d\d in [\dhms]+ ", r) for r in learning), learning[-1]


def test_time_left_counts_the_evaluations_still_to_come():
    """At epsilon 0.01 an Atari evaluation plays 20 long games: the time left is training at
    its own pace plus every evaluation still to come (and the final one) at the last's cost."""
    from dqn_harness.tracking.progress import ProgressBar

    bar = ProgressBar(total=10_000, warmup_steps=0, eval_every=1000, enabled=False)
    bar.pace.mark(0.0, 0, "learning")
    bar.pace.mark(50.0, 5000, "learning")  # 100 agent steps/s on the training clock
    assert bar.seconds_left(5000) == 50.0  # before any evaluation there is no cost to add
    bar.on_evaluation(30.0)
    assert bar.seconds_left(5000) == 50.0 + 6 * 30.0  # 5 more on the way and the final one
    assert bar.eval_s == 30.0  # kept off the pace: the bar marks wall time less this
