"""Workers: run trials until the study's budget is spent, on one machine or many.

- ``n_trials`` is the study's total budget, not a per-command count: workers on any number of
  machines share it, and a re-run after a crash finishes the study rather than starting over.
  Failed trials that were retried don't count; a trial cut short by Ctrl-C is re-queued.
- Killed workers are detected by Optuna's heartbeat: a RUNNING trial whose heartbeat is older
  than the grace period is marked FAIL and re-queued with the same parameters. A journal
  storage has no heartbeat: there a worker stops once the budget is spent instead of waiting
  for trials it cannot tell from a dead worker's.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import socket
import sys
import time
import warnings
from typing import Any

import optuna
from optuna.storages import BaseStorage, RDBStorage, RetryHeartbeatStaleTrialCallback
from optuna.trial import FrozenTrial, TrialState

from dqn_harness.sweeping.objective import DiskFullStop, TrialRunner
from dqn_harness.sweeping.spec import Paths, Plan, SweepSpec, format_param
from dqn_harness.sweeping.study import has_heartbeat, make_sampler, open_storage, open_study


def trials_used(trials: list[FrozenTrial]) -> int:
    """Trials that count against n_trials: all but failures that were re-queued as retries."""
    retried = set()
    for t in trials:
        retried.update(t.system_attrs.get("retry_history", []))  # what the retry callback writes
    return sum(1 for t in trials if not (t.state == TrialState.FAIL and t.number in retried))


def fail_stale(study: optuna.Study) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)


def requeue(study: optuna.Study, trial: FrozenTrial, max_retry: int) -> None:
    """Put an interrupted trial back as WAITING with the same parameters (as a retry)."""
    RetryHeartbeatStaleTrialCallback(max_retry)(study, trial)


class TrialPrinter:
    """One line per finished trial, from the storage, so it works for any number of workers."""

    def __init__(self, study: optuna.Study, write: Any = None) -> None:
        self.study = study
        self.seen = {t.number for t in study.get_trials(deepcopy=False) if t.state.is_finished()}
        self.write = write or (lambda line: print(line, file=sys.stderr))

    def poll(self) -> None:
        for t in self.study.get_trials(deepcopy=False):
            if t.state.is_finished() and t.number not in self.seen:
                self.seen.add(t.number)
                self.write(describe_trial(t, self.study.direction.name.lower() == "maximize"))


def describe_trial(t: FrozenTrial, maximize: bool = True) -> str:
    params = " ".join(f"{k}={format_param(v)}" for k, v in t.params.items())
    if t.state == TrialState.COMPLETE:
        what = f"value {t.value:.6g}"
    elif t.state == TrialState.PRUNED:
        what = f"pruned ({t.user_attrs.get('pruned_at', 'early')})"
    else:
        what = f"failed: {t.user_attrs.get('error') or 'its worker died or was stopped'}"
    seconds = (
        (t.datetime_complete - t.datetime_start).total_seconds()
        if t.datetime_complete and t.datetime_start
        else float("nan")
    )
    return f"trial {t.number:>3} {t.state.name.lower():8} {what} in {seconds:.0f}s | {params}"


def work(plan: Plan, worker_index: int, progress: bool, printer: bool) -> int:
    """One worker: run trials until the study's budget is spent and no trial is left running.

    Returns 130 when interrupted, 2 when a full disk stopped a trial (it is re-queued, and
    the line that says so is printed), else 0.
    """
    spec = plan.spec
    storage = open_storage(plan)
    study = open_study(plan, storage, spec.sampler.seed)
    # Offset the sampler's seed by worker and by what the study holds already, so neither
    # parallel workers nor a resumed command re-propose the random start-up points.
    started_with = len(study.get_trials(deepcopy=False))
    study.sampler = make_sampler(spec, spec.sampler.seed + 1000 * worker_index + started_with)
    runner = TrialRunner(plan, progress, f"{socket.gethostname()}:{os.getpid()}")
    lines = TrialPrinter(study) if printer else None
    deadline = None if spec.timeout is None else time.monotonic() + spec.timeout
    waiting_note = False
    try:
        while True:
            fail_stale(study)
            trials = study.get_trials(deepcopy=False)
            pending = any(t.state == TrialState.WAITING for t in trials)
            running = [t for t in trials if t.state == TrialState.RUNNING]
            if deadline is not None and time.monotonic() >= deadline:
                break
            if pending or trials_used(trials) < spec.n_trials:
                study.optimize(runner, n_trials=1, catch=(Exception,))
                if lines:
                    lines.poll()
                continue
            if not running or not has_heartbeat(storage):
                break
            if not waiting_note and printer:
                print(
                    f"waiting for {len(running)} running trial(s): other workers', or a dead "
                    f"worker's that is retried once stale ({spec.heartbeat.grace}s)",
                    file=sys.stderr,
                )
                waiting_note = True
            time.sleep(1.0)  # cheap to poll; a long sleep would idle after the others finish
    except KeyboardInterrupt as exc:
        if runner.current is not None:
            trial = next(t for t in study.get_trials() if t.number == runner.current)
            if trial.state == TrialState.FAIL:
                requeue(study, trial, spec.heartbeat.max_retry)
        if lines:
            lines.poll()
        if isinstance(exc, DiskFullStop):
            print(
                f"error: {exc}; the study keeps its finished trials and this one is re-queued: "
                "free some space and run the same command to continue",
                file=sys.stderr,
            )
            return 2
        return 130
    return 0


def study_id(storage: BaseStorage, name: str) -> int:
    try:
        return storage.get_study_id_from_name(name)
    except KeyError:
        return -1


def _worker_entry(
    spec: SweepSpec, train_args: list[str], paths: Paths, index: int, threads: int
) -> None:
    import torch

    torch.set_num_threads(threads)
    os.environ.setdefault("WANDB_SILENT", "true")
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    plan = Plan(spec, train_args, paths, check=False)
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(work(plan, index, progress=False, printer=False))
    sys.exit(130)


def run_workers(
    plan: Plan, train_args: list[str], storage: BaseStorage, study: optuna.Study
) -> int:
    """``workers=N``: N processes on the same storage; this process prints what finishes."""
    n = plan.spec.workers
    threads = max(1, (os.cpu_count() or 1) // n)
    # fork where there is one: the workers start with everything imported and checked (spawn
    # re-imports torch, Lightning and Optuna in each, seconds per worker). No database
    # connection may cross the fork (SQLite's locks would break): the pool is emptied first,
    # and each worker opens its own storage.
    if isinstance(storage, RDBStorage):
        storage.engine.dispose()
    methods = multiprocessing.get_all_start_methods()
    ctx: Any = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
    procs = [
        ctx.Process(target=_worker_entry, args=(plan.spec, train_args, plan.paths, i, threads))
        for i in range(n)
    ]
    for p in procs:
        p.start()
    lines = TrialPrinter(study)
    try:
        while any(p.is_alive() for p in procs):
            lines.poll()
            time.sleep(1.0)
    except KeyboardInterrupt:
        for p in procs:
            p.join()
        lines.poll()
        return 130
    lines.poll()
    codes = [p.exitcode for p in procs]
    for code in (130, 2):  # Ctrl-C, then a full disk (its worker printed the line)
        if code in codes:
            return code
    return 0 if all(c == 0 for c in codes) else 1
