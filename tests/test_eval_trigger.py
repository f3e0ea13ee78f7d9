"""The evaluation trigger (``eval.trigger_*``): training episodes call an evaluation early when
they come within a margin of the solve threshold, never more often than the gap allows, and
only the evaluation decides whether the run is solved."""

from __future__ import annotations

import json

from dqn_harness.run.cadences import EvalTrigger, Periodic
from tests.conftest import run_train


class Work:
    """What the cadences call, recording the evaluations."""

    def __init__(self) -> None:
        self.evaluations: list[int] = []

    def log_stats(self, env_steps: int) -> None:
        pass

    def evaluate(self, env_steps: int) -> None:
        self.evaluations.append(env_steps)

    def save_state(self) -> None:
        pass


def trigger(**kw) -> EvalTrigger:
    return EvalTrigger(**{"threshold": 19.0, "episodes": 3, "margin": 1.0, "gap": 100, **kw})


def test_it_fires_when_the_last_episodes_average_within_the_margin():
    t = trigger()
    for r in (21.0, 18.0):
        t.on_episode(r)
    assert not t.due(1000)  # two episodes: the window is not full yet
    t.on_episode(14.0)
    assert not t.due(1000)  # mean 17.67: below threshold - margin
    t.on_episode(15.0)  # the window slides: 18, 14, 15 -> 15.67
    assert not t.due(1000)
    t = trigger()
    for r in (18.0, 18.0, 18.0):
        t.on_episode(r)
    assert t.due(1000)  # mean 18.0: exactly at threshold - margin is enough
    t.on_episode(14.0)  # the window slides: 18, 18, 14 -> 16.67
    assert not t.due(1000)


def test_it_waits_the_gap_after_any_evaluation_and_is_off_without_a_threshold():
    t = trigger()
    for _ in range(3):
        t.on_episode(20.0)
    t.last_eval = 950
    assert not t.due(1049)  # 99 agent steps after the last evaluation
    assert t.due(1050)
    off = trigger(threshold=None)
    disabled = trigger(episodes=0)
    for _ in range(3):
        off.on_episode(21.0)
        disabled.on_episode(21.0)
    assert not off.due(10_000) and not disabled.due(10_000)


def periodic(work: Work, t: EvalTrigger | None = None) -> Periodic:
    """Evaluations every 1000 agent steps, and those ``t`` calls; nothing else."""
    return Periodic(work, log_every=10**9, eval_every=1000, checkpoint_every=10**9, trigger=t)


def run_close_from(close_at: int, steps: range, t: EvalTrigger) -> tuple[Work, Periodic]:
    """The cadences over ``steps``, the training episodes within the margin from ``close_at``."""
    work = Work()
    cadences = periodic(work, t)
    for step in steps:
        if step == close_at:
            for _ in range(3):
                t.on_episode(19.5)
        cadences.after(step)
    return work, cadences


def resumed(work: Work, cadences: Periodic) -> Periodic:
    """A new run's cadences from ``cadences``' state, passed as plain data (as in state.pt)."""
    again = periodic(work, trigger(gap=300))
    again.load_state_dict(json.loads(json.dumps(cadences.state_dict())))
    return again


def test_periodic_runs_triggered_and_scheduled_evaluations_and_resumes_the_trigger():
    work, cadences = run_close_from(100, range(1, 1201), trigger(gap=300))
    # triggered at 100, 400, 700; the cadence at 1000; the gap from 1000 again at 1300
    assert work.evaluations == [100, 400, 700, 1000]
    again = resumed(work, cadences)
    again.after(1299)
    assert work.evaluations[-1] == 1000
    again.after(1300)
    assert work.evaluations[-1] == 1300


def test_a_scheduled_evaluation_just_after_a_called_one_is_skipped_and_that_resumes():
    """Called at 900, the cadence's 1000 comes 100 agent steps later (under the gap of 300):
    skipped. Called again at 1200, 1500, 1800; the cadence's 2000 is 200 after 1800: skipped;
    2100 is called. A resumed run remembers the last called evaluation."""
    work, cadences = run_close_from(900, range(1, 1951), trigger(gap=300))
    assert work.evaluations == [900, 1200, 1500, 1800]
    again = resumed(work, cadences)
    for step in range(1951, 2101):
        again.after(step)
    assert work.evaluations == [900, 1200, 1500, 1800, 2100]
    # the trigger off: the cadence alone, nothing skipped
    work = Work()
    alone = periodic(work)
    for step in range(1, 2101):
        alone.after(step)
    assert work.evaluations == [1000, 2000]


def _evals(run_dir):
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    return [r["env_steps"] for r in map(json.loads, lines) if "eval/return_mean" in r]


def test_a_real_run_evaluates_when_training_episodes_come_close_and_only_evaluations_solve(
    tmp_path,
):
    """CartPole with a threshold of 500 (a full episode) and a margin of 495: every window of
    training episodes is "close", so evaluations come every trigger_gap agent steps between the
    cadence's (every 100k: none); none of them reaches 500, so the run is not solved, however
    close the training episodes were. With margin 0 the trigger never fires."""
    common = (
        "env=cartpole",
        "total_steps=2000",
        "learning_starts=300",
        "eval.every=100000",
        "eval.episodes=2",
        "env.reward_threshold=500",
        "eval.trigger_episodes=5",
        "eval.trigger_gap=500",
        "logger=none",
        "progress=false",
    )
    fired = tmp_path / "fired"
    done = run_train(*common, "eval.trigger_margin=495", f"hydra.run.dir={fired}", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    steps = _evals(fired)
    assert len(steps) >= 3, steps  # triggered ones, then the final evaluation
    assert all(b - a >= 500 for a, b in zip(steps[:-2], steps[1:-1], strict=False)), steps
    summary = json.loads((fired / "summary.json").read_text())
    assert summary["evaluations"] == len(steps) and not summary["solved"]

    quiet = tmp_path / "quiet"
    done = run_train(*common, "eval.trigger_margin=0", f"hydra.run.dir={quiet}", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert _evals(quiet) == [2000]  # only the final evaluation


def test_bad_trigger_settings_are_one_line(tmp_path):
    for arg, expected in (
        ("eval.trigger_episodes=-1", "error: eval.trigger_episodes: must be >= 0"),
        ("eval.trigger_margin=-0.5", "error: eval.trigger_margin: must be >= 0"),
        ("eval.trigger_gap=0", "error: eval.trigger_gap: must be > 0"),
    ):
        done = run_train("env=cartpole", arg, "logger=none", cwd=tmp_path)
        assert done.returncode == 2 and done.stderr.strip().startswith(expected), done.stderr
