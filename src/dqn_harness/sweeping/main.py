"""``python sweep.py``: parse and check the sweep, open its study, run workers, write the report.

Each trial is one composed Hydra config trained by train.py's own ``run()``.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import optuna

from dqn_harness.sweeping.report import write_report
from dqn_harness.sweeping.spec import Paths, Plan, SweepError, load_spec
from dqn_harness.sweeping.study import open_storage, open_study, redact, storage_url
from dqn_harness.sweeping.workers import _study_id, run_workers, trials_used, work


def sweep_main(argv: list[str], root: Path) -> int:
    """What ``python sweep.py`` does; returns the exit code."""
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    os.environ.setdefault("WANDB_SILENT", "true")  # no per-trial W&B run summaries on the console
    paths = Paths(root / "conf", root / "sweeps", root / "experiments")
    try:
        spec, train_args = load_spec(argv, paths)
        if spec.presets_dir:
            paths.presets = Path(spec.presets_dir).resolve()
        plan = Plan(spec, train_args, paths)
        if spec.report and not spec.storage and not (plan.out / "study.db").exists():
            raise SweepError(f"study: no study '{spec.study}' in {plan.out / 'study.db'}")
        storage = open_storage(plan)
        if spec.report:
            if _study_id(storage, spec.study) < 0:
                raise SweepError(f"study: no study '{spec.study}' in {redact(storage_url(plan))}")
            study = optuna.load_study(study_name=spec.study, storage=storage)
            print(write_report(study, plan))
            return 0
        study = open_study(plan, storage, spec.sampler.seed)
    except SweepError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    done = trials_used(study.get_trials(deepcopy=False))
    print(
        f"study '{spec.study}' in {redact(storage_url(plan))}: {done}/{spec.n_trials} trials "
        f"so far; {spec.workers} worker(s); trials in {plan.out / 'trials'}\n"
        f"  watch: optuna-dashboard {redact(storage_url(plan)).removeprefix('journal:')}",
        file=sys.stderr,
    )
    if plan.example.logger.name == "wandb":
        from dqn_harness.wandb_mode import wandb_mode

        if wandb_mode(plan.example.logger.mode) == "offline":
            save_dir = Path(plan.example.logger.save_dir) / "wandb"
            print(
                f"  W&B offline: each trial is a run in group '{spec.study}' under {save_dir}/\n"
                f"  browse: wandb leet {save_dir}   upload: wandb sync --sync-all",
                file=sys.stderr,
            )
    if spec.workers == 1:
        code = work(plan, 0, progress=True, printer=True)
    else:
        code = run_workers(plan, train_args, storage, study)
    print(write_report(study, plan))
    return code
