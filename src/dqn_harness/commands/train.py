"""``python train.py``: the harness's part before and after Hydra composes the config.

Before: compose once ourselves (:func:`preflight`), so a bad override is one line naming the key
and exit 2, ``resume=`` expands to the run's own arguments, and every job of a ``-m`` grid is
validated before the first runs. After: :func:`train_main` validates the job's config once, runs
it, prints the outcome and sets the exit code; under ``-m`` it records the job's outcome instead
of exiting, so one failure does not end the grid.
"""

from __future__ import annotations

import json
import logging
import sys
import tempfile
import traceback
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from dqn_harness.commands.entry import fail, wants_help
from dqn_harness.commands.multirun import (
    expand,
    is_multirun,
    record,
    report,
    sweep_dir,
    with_sweep_dir,
)
from dqn_harness.commands.suites import expand_suite
from dqn_harness.config import compose_config, register_configs, validate, with_sweep_presets
from dqn_harness.errors import UsageError
from dqn_harness.files import free_bytes, is_disk_full
from dqn_harness.run.resume import (
    auto_resume_argv,
    drop_empty_run_dir,
    resolve_auto_resume,
    resume_argv,
)

register_configs()

USAGE = """\
usage: python train.py [GROUP=OPTION ...] [KEY=VALUE ...] [-m] [--cfg job] [--help]

  python train.py env=pong                      train (groups: env, algo, model, schedule,
  python train.py env=cartpole optim.lr=5e-4      buffer, logger, trainer; any config key)
  python train.py resume=<run dir>              continue a run (resume=auto: the newest like it)
  python train.py -m env=cartpole seed=0,1,2    a grid: every combination is one job
  python train.py -m suite=atari5 seed=0,1,2    a game suite: every game x seed
  python train.py env=cartpole --cfg job        print the composed config

Bad input is one 'error: <key>: <problem>' line and exit 2. README "Training" lists the keys.
Hydra's own help follows.
"""

# Fingerprints of configs a -m preflight validated in this process: their jobs skip validate.
VALIDATED: set[str] = set()


def fingerprint(cfg: DictConfig) -> str:
    """A config's resolved values, less its timestamped name: what validation depends on."""
    values = OmegaConf.to_container(cfg, resolve=True)
    assert isinstance(values, dict)
    values.pop("run_name", None)
    return json.dumps(values, sort_keys=True, default=str)


def preflight_or_exit(conf_dir: Path, argv: list[str]) -> list[str]:
    """:func:`preflight` under the command contract: ``--help`` prints the harness's usage
    first (Hydra's own help follows), bad input exits 2 with one line."""
    if wants_help(argv):
        print(USAGE)
        return argv
    try:
        return preflight(conf_dir, argv)
    except UsageError as exc:
        sys.exit(fail(exc))


def preflight(conf_dir: Path, argv: list[str]) -> list[str]:
    """Compose once before Hydra does, so a bad override gets one line naming the key.

    Returns the arguments Hydra should see: ``resume=<run dir>`` expands to that run's own
    overrides (new ones on top) and its directory; ``resume=auto`` to the newest run started
    with the same arguments that has a checkpoint (or to a fresh start). Under ``-m`` every
    job's config is composed and validated first (see :func:`preflight_multirun`); other flags
    (``--cfg``, ``--help``, ...) are left to Hydra itself.
    """
    argv = with_sweep_presets(conf_dir, argv)
    argv = expand_suite(conf_dir, argv, multirun=is_multirun(argv))
    if is_multirun(argv):
        return preflight_multirun(conf_dir, argv)
    if any(arg.startswith("-") for arg in argv):
        return argv
    argv = auto_resume_argv(argv)
    argv, state = resume_argv(argv)
    cfg = compose_config(conf_dir, argv)
    if state is not None:
        from dqn_harness.run.checkpoint import check_compatible

        check_compatible(OmegaConf.to_container(cfg, resolve=True), state["config"])  # type: ignore[arg-type]
    run_dir = next((a.split("=", 1)[1] for a in argv if a.startswith("hydra.run.dir=")), "outputs")
    check_writable("hydra.run.dir", Path(run_dir))
    if cfg.logger.name == "wandb":
        check_writable("logger.save_dir", Path(cfg.logger.save_dir))
    return argv


def preflight_multirun(conf_dir: Path, argv: list[str]) -> list[str]:
    """Compose and validate every job of a ``-m`` grid before any runs.

    A bad override (unknown key, wrong type, malformed sweep) stops the command with one line
    and exit 2, as without ``-m``. A value only some jobs have wrong (``algo.alpha=0.1,2``)
    fails just those jobs, reported at the end, while the rest run; when every job would fail,
    nothing runs.
    """
    argv = with_sweep_dir(argv)
    overrides = [a for a in argv if not a.startswith("-")]
    if any(a.startswith("resume=") and a not in ("resume=auto", "resume=null") for a in argv):
        raise UsageError("resume", "a -m grid resumes with resume=auto, not a run dir")
    check_writable("hydra.sweep.dir", sweep_dir(argv))
    errors: list[UsageError] = []
    jobs = expand(overrides)
    for job in jobs:
        cfg = compose_config(conf_dir, [o for o in job if not o.startswith("hydra")])
        try:
            validate(cfg)
            VALIDATED.add(fingerprint(cfg))
        except UsageError as exc:
            errors.append(exc)
    if errors and len(errors) == len(jobs):
        raise errors[0]
    return argv


def finish_multirun(argv: list[str], launcher_code: int) -> int:
    """After Hydra's sweep: the grid's one-line summary and exit code."""
    jobs = expand([a for a in argv if not a.startswith("-")])
    return report(argv, jobs, launcher_code)


# Space a run needs before its first step: Hydra's own config files (~6 KB) and the harness's
# config.json and first metrics, with room to spare. Below it Hydra would fail with a traceback.
MIN_FREE_BYTES = 64 * 1024


def check_writable(key: str, path: Path) -> None:
    """Fail before Hydra or W&B try to create ``path`` (they would fail with a traceback).

    Probes by creating a file in the nearest existing ancestor: permission bits alone say
    nothing for root or on a read-only mount. A disk with less than ``MIN_FREE_BYTES`` left is
    refused too: Hydra writes its config files there before the run starts.
    """
    probe = path.absolute()
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir():
        raise UsageError(key, f"cannot create {path}: {probe} is a file, not a directory")
    try:
        with tempfile.TemporaryFile(dir=probe):
            pass
    except OSError as exc:
        if is_disk_full(exc):
            raise UsageError(key, f"no space left on device at {path} (0.0 MB free)") from None
        raise UsageError(key, f"cannot write to {path} ({exc.strerror or exc})") from None
    free = free_bytes(probe)
    if free is not None and free < MIN_FREE_BYTES:
        raise UsageError(key, f"no space left on device at {path} ({free / 1e6:.1f} MB free)")


def run_job(cfg: DictConfig, run_dir: Path) -> dict[str, Any]:
    """One training as the command line runs it: prints its result or a one-line error, and
    returns its outcome (status, exit code, error)."""
    try:
        overrides = list(HydraConfig.get().overrides.task)
        cfg, run_dir = resolve_auto_resume(cfg, run_dir, overrides)
        if fingerprint(cfg) not in VALIDATED:  # once per run: a -m preflight may have done it
            validate(cfg)
        from dqn_harness.run.runner import run

        summary = run(cfg, run_dir)
    except UsageError as exc:
        drop_empty_run_dir(run_dir)
        fail(exc)
        return {"status": "rejected", "exit_code": 2, "error": str(exc), "run_dir": None}
    if "env_steps" in summary:  # a run that got as far as its summary
        print(describe(summary, run_dir))
    if summary.get("error") and summary["status"] != "diverged":  # it says it all (disk full)
        print(f"error: {summary['error']}", file=sys.stderr)
    elif summary.get("error"):
        checkpoint = f"; checkpoints keep the last finite weights: {summary['checkpoint']}"
        print(
            f"error: {summary['error']}{checkpoint if summary.get('checkpoint') else ''}",
            file=sys.stderr,
        )
    return {
        "status": summary["status"],
        "exit_code": summary["exit_code"],
        "error": summary.get("error"),
        "run_dir": str(run_dir),
    }


def train_main(cfg: DictConfig) -> None:
    # A log record that cannot be written (train.log on a full disk) is dropped, not printed
    # as a traceback: the run says what went wrong in its own one line.
    logging.raiseExceptions = False
    hydra_cfg = HydraConfig.get()
    run_dir = Path(hydra_cfg.runtime.output_dir)
    if hydra_cfg.mode != RunMode.MULTIRUN:
        outcome = run_job(cfg, run_dir)
        if outcome["exit_code"]:
            sys.exit(outcome["exit_code"])
        return
    # One job of a -m grid: it must not raise or exit, or Hydra skips the jobs after it.
    try:
        outcome = run_job(cfg, run_dir)
    except Exception as exc:  # noqa: BLE001 (a crash ends this job, not the grid)
        traceback.print_exc()
        outcome = {"status": "failed", "exit_code": 1, "error": f"{type(exc).__name__}: {exc}"}
    entry = {"num": hydra_cfg.job.num, "overrides": list(hydra_cfg.overrides.task), **outcome}
    record(Path(hydra_cfg.sweep.dir), entry)
    if outcome["status"] == "interrupted":
        sys.exit(outcome["exit_code"])  # Ctrl-C or SIGTERM stops the grid, not just one job


def describe(summary: dict[str, Any], run_dir: Path) -> str:
    """What a finished run prints: status, steps and pace, evaluation, solved, where it is."""
    lines = [
        f"{summary['status']} after {summary['env_steps']:,} agent steps "
        f"in {summary['wall_s']:.0f}s ({summary['sps']:.0f} steps/s)"
    ]
    if summary.get("eval_return_mean") is not None:
        lines.append(
            f"eval return {summary['eval_return_mean']:.3f} "
            f"(best {summary['best_eval_return']:.3f})"
        )
    if summary.get("solved"):
        lines.append(
            f"SOLVED at {summary['solved_at_step']:,} agent steps "
            f"(eval mean >= {summary['reward_threshold']})"
        )
    if summary.get("robust_eval_return") is not None:
        lines.append(
            f"robust eval return {summary['robust_eval_return']:.3f} (eval.robust_epsilon)"
        )
    lines.append(f"run dir: {run_dir}")
    if summary.get("wandb_run_dir"):
        lines.append(f"W&B run: {summary['wandb_run_dir']}")
    return "\n".join(lines)
