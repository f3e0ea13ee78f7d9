"""What ``python train.py`` does after Hydra has composed the config: short errors, exit codes."""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from dqn_harness.config import compose_config, register_configs
from dqn_harness.errors import ConfigError

register_configs()


def preflight(conf_dir: Path, argv: list[str]) -> list[str]:
    """Compose once before Hydra does, so a bad override gets one line naming the key.

    Returns the arguments Hydra should see: ``resume=<run dir>`` expands to that run's own
    overrides (new ones on top) and its directory. Flags (``--cfg``, ``-m``, ...) are left to
    Hydra itself.
    """
    if any(arg.startswith("-") for arg in argv):
        return argv
    try:
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


RESUME_OWNED = ("resume=", "hydra.run.dir=", "run_name=")


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


def _fail(message: str) -> None:
    print(f"error: {message}", file=sys.stderr)
    sys.exit(2)


def _drop_empty_run_dir(run_dir: Path) -> None:
    """Hydra creates the run dir before we validate; remove it if it holds only Hydra's files."""
    if run_dir.is_dir() and all(
        p.name == ".hydra" or p.suffix == ".log" for p in run_dir.iterdir()
    ):
        shutil.rmtree(run_dir, ignore_errors=True)


def train_main(cfg: DictConfig) -> None:
    run_dir = Path(HydraConfig.get().runtime.output_dir)
    from dqn_harness.config import validate

    try:
        validate(cfg)  # run() validates too; this call rejects bad input before torch is imported
        from dqn_harness.training.run import run

        summary = run(cfg, run_dir)
    except ConfigError as exc:
        _drop_empty_run_dir(run_dir)
        _fail(str(exc))
    print(describe(summary, run_dir))
    if summary.get("error"):
        checkpoint = f"; checkpoints keep the last finite weights: {summary['checkpoint']}"
        print(
            f"error: {summary['error']}{checkpoint if summary.get('checkpoint') else ''}",
            file=sys.stderr,
        )
    if summary["exit_code"]:
        sys.exit(summary["exit_code"])


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
