"""What a run does when the disk fills: one line that says so, and nothing complete lost.

The writers (``files.save_atomic``, the metrics log) raise ``DiskFull`` naming their file and
leave the previous file whole; here the run turns that into the line it ends with, and its
closing steps (summary, metrics, loggers) carry on past a disk that is still full.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from dqn_harness.files import as_disk_full, is_disk_full


def disk_full_line(exc: OSError, run_dir: Path, checkpoint_step: int | None) -> str:
    """``<key>: no space left on device writing <file> (<n> MB free); the last complete
    checkpoint is at step N``: the key is the setting that puts the file where it is."""
    full = as_disk_full(exc)
    path = full.path.absolute()
    if path.is_relative_to((run_dir / "checkpoints").absolute()):
        key = "checkpoint"
    elif path.is_relative_to(run_dir.absolute()):
        key = "hydra.run.dir"
    else:
        key = "logger.save_dir"
    last = (
        "no checkpoint was completed"
        if checkpoint_step is None
        else f"the last complete checkpoint is at step {checkpoint_step:,}"
    )
    return f"{key}: {full}; {last}"


def disk_full_outcome(exc: OSError, run_dir: Path, checkpoint_step: int | None) -> dict[str, Any]:
    """What a run that met a full disk reports (its error line, exit code 2); any other
    OSError is re-raised."""
    if not is_disk_full(exc):
        raise exc
    return {"error": disk_full_line(exc, run_dir, checkpoint_step), "exit_code": 2}


def tolerate_full_disk(write: Callable[..., Any], *args: Any) -> Any:
    """``write(*args)``, or None if the disk is full: the run is already ending with one line
    that says so, and the file it would have replaced is still whole."""
    try:
        return write(*args)
    except OSError as exc:
        if not is_disk_full(exc):
            raise
        return None
