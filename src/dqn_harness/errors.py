"""The project's own exceptions: a leaf module every layer may import, importing nothing of ours.

They live apart from the code that raises them so that low layers (envs, replay) can refuse bad
input without importing the config schema or a command. One type serves every refusal of every
command (train, evaluate, sweep, compare): the entry wrapper (``commands/entry.py``) prints it
as one ``error: <key>: <problem>`` line and exits 2, whichever step raised it.
"""

from __future__ import annotations

import errno
from pathlib import Path


class UsageError(ValueError):
    """Bad input from the user: ``key`` names what to fix, ``problem`` says what is wrong.

    A config value out of range, an unknown option, a missing checkpoint, a sweep file that does
    not parse, a comparison that matches no run: all of them are this, so every command prints
    them the same way (one line, exit 2) and a test can assert on ``key``.
    """

    def __init__(self, key: str, problem: str) -> None:
        super().__init__(f"{key}: {problem}")
        self.key = key
        self.problem = problem


class Diverged(RuntimeError):
    """A non-finite loss or Q-value: training stops instead of going on with NaN weights.

    On CPU it is raised inside the update, before the optimizer applies the bad gradient; on a
    GPU at the next log, evaluation or checkpoint. Either way it comes before anything is
    written, so the checkpoints on disk keep the last finite weights.
    """

    def __init__(self, what: str, env_steps: int, grad_steps: int) -> None:
        super().__init__(
            f"training diverged: non-finite {what} at agent step {env_steps:,} "
            f"(gradient step {grad_steps:,})"
        )
        self.env_steps = env_steps
        self.grad_steps = grad_steps


class DiskFull(OSError):
    """A write failed for lack of space: which file, and how much space is left.

    Raised by the harness's own writers (``files.save_atomic``, the metrics log) in place of
    the bare ``OSError(ENOSPC)``, whose message names neither. The run that gets it stops, says
    so in one line with the last complete checkpoint, and leaves every complete file as it was.
    """

    def __init__(self, path: Path, free_bytes: int | None) -> None:
        free = "" if free_bytes is None else f" ({free_bytes / 1e6:.1f} MB free)"
        super().__init__(errno.ENOSPC, f"no space left on device writing {path}{free}")
        self.path = path
        self.free_bytes = free_bytes

    def __str__(self) -> str:
        return str(self.strerror)
