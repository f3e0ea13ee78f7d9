"""``python sweep.py sweep=<name> [n_trials=N] [workers=N] [storage=URL|journal:FILE]
[study=NAME] [report=true] [export=true] [objective.*=...] [sampler.*=...] [pruner.*=...]
[KEY=VALUE ...]``

Runs an Optuna study: each trial is one config composed by Hydra from conf/ (the sweep file's
``base``, the command line's ``KEY=VALUE`` train overrides and the sampled parameters) and
trained by train.py's own runner. ``report=true`` prints the study as it stands and runs
nothing. The sweep file format and every option: README "Sweeps".
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import optuna

from dqn_harness.commands.entry import entry
from dqn_harness.errors import UsageError
from dqn_harness.sweeping.report import write_report
from dqn_harness.sweeping.spec import Paths, Plan, load_spec
from dqn_harness.sweeping.study import open_storage, open_study, redact, storage_url
from dqn_harness.sweeping.workers import run_workers, study_id, trials_used, work

USAGE = """\
usage: python sweep.py sweep=<name|file.yaml> [n_trials=N] [workers=N] [timeout=S]
         [storage=sqlite:///F|postgresql://...|journal:F] [study=NAME] [out=DIR]
         [report=true] [export=true] [objective.*=V] [sampler.*=V] [pruner.*=V] [KEY=VALUE ...]

Runs an Optuna study over sweeps/<name>.yaml; KEY=VALUE that is no sweep option is a train.py
override for every trial. README "Sweeps".
"""


def open_sweep(argv: list[str], root: Path) -> tuple[Plan, Any, optuna.Study | None]:
    """The checked plan, its storage, and its study (None: ``report=true`` printed it)."""
    paths = Paths(root / "conf", root / "sweeps", root / "experiments")
    spec, train_args = load_spec(argv, paths)
    if spec.presets_dir:
        paths.presets = Path(spec.presets_dir).resolve()
    plan = Plan(spec, train_args, paths)
    if spec.report and not spec.storage and not (plan.out / "study.db").exists():
        raise UsageError("study", f"no study '{spec.study}' in {plan.out / 'study.db'}")
    storage = open_storage(plan)
    if spec.report:
        if study_id(storage, spec.study) < 0:
            raise UsageError("study", f"no study '{spec.study}' in {redact(storage_url(plan))}")
        print(write_report(optuna.load_study(study_name=spec.study, storage=storage), plan))
        return plan, storage, None
    return plan, storage, open_study(plan, storage, spec.sampler.seed)


def announce(plan: Plan, study: optuna.Study) -> None:
    """Where the study is, how to watch it, where W&B puts the trials."""
    spec = plan.spec
    done = trials_used(study.get_trials(deepcopy=False))
    print(
        f"study '{spec.study}' in {redact(storage_url(plan))}: {done}/{spec.n_trials} trials "
        f"so far; {spec.workers} worker(s); trials in {plan.out / 'trials'}\n"
        f"  watch: optuna-dashboard {redact(storage_url(plan)).removeprefix('journal:')}",
        file=sys.stderr,
    )
    if plan.example.logger.name == "wandb":
        from dqn_harness.tracking.wandb_mode import wandb_mode

        if wandb_mode(plan.example.logger.mode) == "offline":
            save_dir = Path(plan.example.logger.save_dir) / "wandb"
            print(
                f"  W&B offline: each trial is a run in group '{spec.study}' under {save_dir}/\n"
                f"  browse: wandb leet {save_dir}   upload: wandb sync --sync-all",
                file=sys.stderr,
            )


def sweep_command(argv: list[str], root: Path) -> int:
    """Open (or report) the study, run its workers, write the report; the exit code."""
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    os.environ.setdefault("WANDB_SILENT", "true")  # no per-trial W&B run summaries on the console
    plan, storage, study = open_sweep(argv, root)
    if study is None:
        return 0
    announce(plan, study)
    if plan.spec.workers == 1:
        code = work(plan, 0, progress=True, printer=True)
    else:
        code = run_workers(plan, plan.train_args, storage, study)
    if code == 2:  # a full disk: the line is out, and the report could not be written either
        return code
    print(write_report(study, plan))
    return code


def sweep_main(argv: list[str], root: Path) -> int:
    """``python sweep.py``: :func:`sweep_command` under the one command contract."""
    return entry(lambda args: sweep_command(args, root), USAGE, argv)
