"""What a run does every N agent steps besides learning: log, evaluate, checkpoint.

DQN (through a Lightning callback after each update, ``dqn/learner.py``) and tabular
Q-learning (after each env step) share these cadences, so both log, evaluate and checkpoint by
the same rules, in the same order, and save the same cadence state for a resume. The agent step
they go by is the one the update was made at: for DQN the step its batch was sampled at (the
batch carries it), not the collector's count, which Lightning's prefetch of the next batch has
already moved on.
"""

from __future__ import annotations

from typing import Any, Protocol

from dqn_harness.schedules import Cadence


class PeriodicWork(Protocol):
    """What the cadences call (the runner): each is one named piece of the run's work."""

    def log_stats(self, env_steps: int) -> None: ...
    def evaluate(self, env_steps: int) -> None: ...
    def save_state(self) -> None: ...


class Periodic:
    """Calls the run's logging, evaluation and checkpointing when each is due.

    Args:
        work: what to call.
        log_every: agent steps between statistics logs.
        eval_every: agent steps between evaluations.
        checkpoint_every: agent steps between resumable checkpoints.
    """

    def __init__(
        self, work: PeriodicWork, *, log_every: int, eval_every: int, checkpoint_every: int
    ) -> None:
        self.work = work
        self.log = Cadence(log_every)
        self.eval = Cadence(eval_every)
        self.checkpoint = Cadence(checkpoint_every)

    def after(self, env_steps: int) -> None:
        """Called after each update (DQN) or env step (tabular) with the agent step count."""
        if self.log.due(env_steps):
            self.work.log_stats(env_steps)
        if self.eval.due(env_steps):
            self.work.evaluate(env_steps)
        if self.checkpoint.due(env_steps):
            self.work.save_state()

    def state_dict(self) -> dict[str, Any]:
        return {
            "log": self.log.state_dict(),
            "eval": self.eval.state_dict(),
            "checkpoint": self.checkpoint.state_dict(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.log.load_state_dict(state["log"])
        self.eval.load_state_dict(state["eval"])
        self.checkpoint.load_state_dict(state["checkpoint"])
