"""What ``python train.py`` does after Hydra has composed the config: short errors, exit codes."""

from __future__ import annotations

import shutil
import sys
import tempfile
import traceback
from pathlib import Path
from typing import Any, NoReturn

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf, open_dict

from dqn_harness.config import compose_config, register_configs, with_sweep_presets
from dqn_harness.errors import ConfigError
from dqn_harness.multirun import expand, is_multirun, record, report, sweep_dir, with_sweep_dir

register_configs()


def preflight(conf_dir: Path, argv: list[str]) -> list[str]:
    """Compose once before Hydra does, so a bad override gets one line naming the key.

    Returns the arguments Hydra should see: ``resume=<run dir>`` expands to that run's own
    overrides (new ones on top) and its directory; ``resume=auto`` to the newest run started
    with the same arguments that has a checkpoint (or to a fresh start). Under ``-m`` every
    job's config is composed and validated first (see :func:`preflight_multirun`); other flags
    (``--cfg``, ``--help``, ...) are left to Hydra itself.
    """
    argv = with_sweep_presets(conf_dir, argv)
    if is_multirun(argv):
        return preflight_multirun(conf_dir, argv)
    if any(arg.startswith("-") for arg in argv):
        return argv
    try:
        argv = auto_resume_argv(argv)
        argv, state = resume_argv(argv)
        cfg = compose_config(conf_dir, argv)
        if state is not None:
            from dqn_harness.training.checkpoint import check_compatible

            check_compatible(OmegaConf.to_container(cfg, resolve=True), state["config"])  # type: ignore[arg-type]
        run_dir = next(
            (a.split("=", 1)[1] for a in argv if a.startswith("hydra.run.dir=")), "outputs"
        )
        check_writable("hydra.run.dir", Path(run_dir))
        if cfg.logger.name == "wandb":
            check_writable("logger.save_dir", Path(cfg.logger.save_dir))
    except ConfigError as exc:
        _fail(str(exc))
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
    try:
        if any(a.startswith("resume=") and a not in ("resume=auto", "resume=null") for a in argv):
            raise ConfigError("resume", "a -m grid resumes with resume=auto, not a run dir")
        check_writable("hydra.sweep.dir", sweep_dir(argv))
        from dqn_harness.config import validate

        errors: list[ConfigError] = []
        jobs = expand(overrides)
        for job in jobs:
            cfg = compose_config(conf_dir, [o for o in job if not o.startswith("hydra")])
            try:
                validate(cfg)
            except ConfigError as exc:
                errors.append(exc)
        if errors and len(errors) == len(jobs):
            raise errors[0]
    except ConfigError as exc:
        _fail(str(exc))
    return argv


def finish_multirun(argv: list[str], launcher_code: int) -> int:
    """After Hydra's sweep: the grid's one-line summary and exit code."""
    jobs = expand([a for a in argv if not a.startswith("-")])
    return report(argv, jobs, launcher_code)


RESUME_OWNED = ("resume=", "hydra.run.dir=", "run_name=")


def auto_resume_argv(argv: list[str]) -> list[str]:
    """``resume=auto`` -> ``resume=<dir>`` of the run to continue, or ``resume=null``.

    What a requeued cluster job needs: it is started again with the same arguments, so the run
    to continue is the newest one (by its checkpoint) started with the same arguments, among the
    runs beside the new one; or ``hydra.run.dir`` itself, when given and it has a checkpoint.
    """
    if "resume=auto" not in argv:
        return argv
    explicit = [a.split("=", 1)[1] for a in argv if a.startswith("hydra.run.dir=")]
    found = find_resumable(Path(explicit[-1]) if explicit else Path("outputs") / "new", argv)
    rest = [a for a in argv if not a.startswith("resume=")]
    if found is None:
        print("resume=auto: no earlier run with these arguments has a checkpoint; starting fresh")
        return [*rest, "resume=null"]
    print(f"resume=auto: continuing {found}")
    return [*rest, f"resume={found}"]


def find_resumable(run_dir: Path, overrides: list[str]) -> Path | None:
    """``run_dir`` if it has a checkpoint, else its newest sibling with one whose saved
    overrides equal ``overrides`` (``resume=``, ``hydra.*`` and ``run_name=`` aside)."""
    from dqn_harness.training.checkpoint import STATE_FILE

    def state(d: Path) -> Path:
        return d / "checkpoints" / STATE_FILE

    if state(run_dir).exists():
        return run_dir.absolute()

    def own(args: list[str]) -> list[str]:
        return sorted(a for a in args if not a.startswith((*RESUME_OWNED, "hydra", "-")))

    wanted = own(overrides)
    candidates = []
    if run_dir.parent.is_dir():
        for d in run_dir.parent.iterdir():
            saved = d / ".hydra" / "overrides.yaml"
            same = saved.exists() and own([str(a) for a in OmegaConf.load(saved)]) == wanted
            if d != run_dir and state(d).exists() and same:
                candidates.append(d)
    if not candidates:
        return None
    return max(candidates, key=lambda d: state(d).stat().st_mtime).absolute()


def resolve_auto_resume(cfg: DictConfig, run_dir: Path) -> tuple[DictConfig, Path]:
    """A job of a -m grid (or a requeued cluster job) with ``resume=auto`` finds its run here:
    its arguments reach the job without passing through :func:`preflight`."""
    if cfg.resume != "auto":
        return cfg, run_dir
    overrides = list(HydraConfig.get().overrides.task)
    found = find_resumable(run_dir, overrides)
    with open_dict(cfg):
        if found is None:
            cfg.resume = None
            return cfg, run_dir
        from dqn_harness.training.checkpoint import load_state

        state = load_state(found)
        cfg.resume = str(found)
        cfg.run_name = state["config"]["run_name"]
    print(f"resume=auto: continuing {found} from agent step {state['env_steps']:,}")
    if found != run_dir.absolute():
        _drop_empty_run_dir(run_dir)
    return cfg, found


def resume_argv(argv: list[str]) -> tuple[list[str], dict | None]:
    """``resume=DIR [overrides]`` -> DIR's saved overrides, the new ones, and DIR itself.

    The run continues under its own name and directory with the config it was started with;
    overrides given now (``total_steps=2000000`` to train longer) apply on top, and a change
    the checkpoint cannot follow (another env or network) is refused by check_compatible.
    """
    given = [a for a in argv if a.startswith("resume=")]
    if not given or given[-1] in ("resume=", "resume=null"):
        return argv, None
    from dqn_harness.training.checkpoint import load_state

    run_dir = Path(given[-1].split("=", 1)[1]).absolute()
    state = load_state(run_dir)  # missing dir or checkpoint, corrupt file: ConfigError
    saved_file = run_dir / ".hydra" / "overrides.yaml"
    if not saved_file.exists():
        raise ConfigError("resume", f"{run_dir} is not a train.py run directory (no .hydra/)")
    saved = [str(a) for a in OmegaConf.load(saved_file) if not str(a).startswith(RESUME_OWNED)]
    new = [a for a in argv if not a.startswith(RESUME_OWNED)]
    argv = [
        *saved,
        *new,
        f"resume={run_dir}",
        f"hydra.run.dir={run_dir}",
        f"run_name={state['config']['run_name']}",
    ]
    return argv, state


def check_writable(key: str, path: Path) -> None:
    """Fail before Hydra or W&B try to create ``path`` (they would fail with a traceback).

    Probes by creating a file in the nearest existing ancestor: permission bits alone say
    nothing for root or on a read-only mount.
    """
    probe = path.absolute()
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir():
        raise ConfigError(key, f"cannot create {path}: {probe} is a file, not a directory")
    try:
        with tempfile.TemporaryFile(dir=probe):
            pass
    except OSError as exc:
        raise ConfigError(key, f"cannot write to {path} ({exc.strerror or exc})") from None


def _fail(message: str) -> NoReturn:
    print(f"error: {message}", file=sys.stderr)
    sys.exit(2)


def _drop_empty_run_dir(run_dir: Path) -> None:
    """Hydra creates the run dir before we validate; remove it if it holds only Hydra's files."""
    if run_dir.is_dir() and all(
        p.name == ".hydra" or p.suffix == ".log" for p in run_dir.iterdir()
    ):
        shutil.rmtree(run_dir, ignore_errors=True)


def run_job(cfg: DictConfig, run_dir: Path) -> dict[str, Any]:
    """One training as the command line runs it: prints its result or a one-line error, and
    returns its outcome (status, exit code, error)."""
    from dqn_harness.config import validate

    try:
        cfg, run_dir = resolve_auto_resume(cfg, run_dir)
        validate(cfg)  # run() validates too; this call rejects bad input before torch is imported
        from dqn_harness.training.run import run

        summary = run(cfg, run_dir)
    except ConfigError as exc:
        _drop_empty_run_dir(run_dir)
        print(f"error: {exc}", file=sys.stderr)
        return {"status": "rejected", "exit_code": 2, "error": str(exc), "run_dir": None}
    print(describe(summary, run_dir))
    if summary.get("error"):
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


def describe(summary: dict, run_dir: Path) -> str:
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
    lines.append(f"run dir: {run_dir}")
    if summary.get("wandb_run_dir"):
        lines.append(f"W&B run: {summary['wandb_run_dir']}")
    return "\n".join(lines)
