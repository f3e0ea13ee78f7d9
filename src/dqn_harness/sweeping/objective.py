"""A trial: suggest its parameters, train one run per seed, report evaluations for pruning.

Pruning sees the evaluation return at each evaluation. With several seeds a trial's seeds run one
after another and report at ``seed_index * total_steps + env_steps``, so the pruner compares
trials seed by seed, and a pruned trial skips its remaining seeds. Steps are rounded down to the
eval cadence so trials with different ``num_envs``/``train_freq`` report at the same steps.
Intermediate values are eval returns oriented to the study's direction (negated when it
minimizes, e.g. ``solved_at_step``), so the pruner always keeps the trials that learn best.
"""

from __future__ import annotations

import json
import math
import traceback
from pathlib import Path
from typing import Any

import numpy as np
import optuna
from optuna.trial import Trial

from dqn_harness.errors import UsageError
from dqn_harness.sweeping.spec import AGGREGATES, ObjectiveSpec, Plan
from dqn_harness.tracking.metrics import read_metrics
from dqn_harness.tracking.summary import SUMMARY_FIELDS


def suggest(trial: Trial, key: str, dist: dict[str, Any]) -> Any:
    kind = dist["type"]
    if kind == "float":
        return trial.suggest_float(
            key, dist["low"], dist["high"], log=dist.get("log", False), step=dist.get("step")
        )
    if kind == "int":
        return trial.suggest_int(
            key, dist["low"], dist["high"], log=dist.get("log", False), step=dist.get("step") or 1
        )
    choices = dist["choices"]
    if all(c is None or isinstance(c, (bool, int, float, str)) for c in choices):
        return trial.suggest_categorical(key, choices)
    # Optuna stores scalars only; lists (e.g. model.hidden) go through their JSON text.
    picked = trial.suggest_categorical(key, [json.dumps(c) for c in choices])
    return json.loads(str(picked))


class Reporter:
    """The pruning hook one seed's run calls at each evaluation."""

    def __init__(self, trial: Trial, offset: int, every: int, sign: float) -> None:
        self.trial, self.offset, self.every, self.sign = trial, offset, every, sign
        self.last_step = -1
        self.pruned_at: int | None = None

    def __call__(self, env_steps: int, mean: float) -> bool:
        step = self.offset + (env_steps // self.every) * self.every
        if step <= self.last_step or not math.isfinite(mean):
            return False
        self.last_step = step
        self.trial.report(self.sign * mean, step)
        if self.trial.should_prune():
            self.pruned_at = env_steps
            return True
        return False


def objective_value(spec: ObjectiveSpec, summary: dict[str, Any], run_dir: Path) -> float:
    if spec.metric in SUMMARY_FIELDS:
        value = summary.get(spec.metric)
    else:
        series = [v for _, v in read_metrics(run_dir, spec.metric)]
        value = None
        if series:
            value = {"last": series[-1], "max": max(series), "min": min(series)}.get(
                spec.reduce, float(np.mean(series))
            )
    if value is None and spec.metric == "solved_at_step" and spec.missing is None:
        value = summary["env_steps"]  # never solved: it took at least every step it ran
    if value is None:
        if spec.missing is None:
            raise RuntimeError(
                f"objective {spec.metric} is null in this run and objective.missing is not set"
            )
        value = spec.missing
    return float(value)


class Interrupted(KeyboardInterrupt):
    """Ctrl-C / SIGTERM ended a trial's run: the sweep stops and the trial is re-queued.

    A KeyboardInterrupt, so Optuna marks the trial failed and re-raises instead of going on.
    """


class DiskFullStop(KeyboardInterrupt):
    """A full disk ended a trial's run: the trial is re-queued and the sweep stops, with the
    run's one line (every later trial would fail the same way). A KeyboardInterrupt, so Optuna
    marks the trial failed and re-raises instead of going on to the next trial."""


class TrialRunner:
    """The objective Optuna calls: one training run per seed, pruned between evaluations."""

    def __init__(self, plan: Plan, progress: bool, worker: str) -> None:
        self.plan = plan
        self.progress = progress
        self.worker = worker
        self.current: int | None = None  # the trial this worker runs now

    def __call__(self, trial: Trial) -> float:
        from dqn_harness.run.runner import run

        self.current = trial.number
        spec = self.plan.spec
        obj = spec.objective
        params = {key: suggest(trial, key, dist) for key, dist in spec.space.items()}
        trial.set_user_attr("worker", self.worker)
        trial.set_user_attr("error", None)  # a retry starts clean
        sign = 1.0 if obj.direction == "maximize" else -1.0
        values: list[float] = []
        for index, seed in enumerate(obj.seeds):
            run_dir = self.plan.out / "trials" / f"{trial.number:04d}-s{seed}"
            try:
                cfg = self.plan.trial_config(params, seed, trial.number, self.progress)
            except UsageError as exc:
                trial.set_user_attr("error", str(exc))
                raise
            reporter = Reporter(trial, index * cfg.total_steps, cfg.eval.every, sign)
            extra = {
                "sweep.study": spec.study,
                "sweep.trial": trial.number,
                "sweep.seed_index": index,
                "sweep.params": sorted(params),
            }
            trial.set_user_attr(f"run_dir_s{seed}", str(run_dir))
            try:
                summary = run(cfg, run_dir, on_eval=reporter, extra_config=extra)
            except Exception as exc:
                run_dir.mkdir(parents=True, exist_ok=True)
                (run_dir / "error.txt").write_text(traceback.format_exc())
                trial.set_user_attr("error", f"{type(exc).__name__}: {exc}"[:500])
                raise
            if summary["status"] == "interrupted":
                trial.set_user_attr("error", "interrupted (Ctrl-C/SIGTERM); re-queued")
                raise Interrupted(f"trial {trial.number} interrupted")
            if summary["status"] == "failed" and summary.get("exit_code") == 2:  # disk full
                trial.set_user_attr("error", summary["error"])
                raise DiskFullStop(f"{summary['error']} (trial {trial.number}, seed {seed})")
            if summary["status"] == "diverged":  # failed; the sweep goes on to the next trial
                trial.set_user_attr("error", summary["error"])
                raise RuntimeError(f"trial {trial.number}, seed {seed}: {summary['error']}")
            if summary["status"] == "pruned":
                trial.set_user_attr("pruned_at", f"seed {seed}, {reporter.pruned_at} steps")
                raise optuna.TrialPruned(f"seed {seed} at {reporter.pruned_at} agent steps")
            value = objective_value(obj, summary, run_dir)
            trial.set_user_attr(f"objective_s{seed}", value)
            trial.set_user_attr(f"wall_s_s{seed}", summary["wall_s"])
            values.append(value)
        return float(AGGREGATES[obj.aggregate](values))
