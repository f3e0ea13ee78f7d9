"""The project's own exceptions: a leaf module every layer may import, importing nothing of ours.

They live apart from the code that raises them so that low layers (envs, replay) can refuse bad
input without importing the config schema, which imports them in turn to check the config.
"""

from __future__ import annotations


class ConfigError(ValueError):
    """A config value is out of range or inconsistent; ``key`` names it for the message.

    The command line prints it as one ``error: <key>: <problem>`` line and exits 2.
    """

    def __init__(self, key: str, message: str) -> None:
        super().__init__(f"{key}: {message}")
        self.key = key


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
