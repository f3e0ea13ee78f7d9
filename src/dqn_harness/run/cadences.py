"""What a run does every N agent steps besides learning: log, evaluate, checkpoint.

DQN (through a Lightning callback after each update, ``dqn/learner.py``) and tabular
Q-learning (after each env step) share these cadences, so both log, evaluate and checkpoint by
the same rules, in the same order, and save the same cadence state for a resume. The agent step
they go by is the one the update was made at: for DQN the step its batch was sampled at (the
batch carries it), not the collector's count, which Lightning's prefetch of the next batch has
already moved on.
"""

from __future__ import annotations

from collections import deque
from typing import Any, Protocol

from dqn_harness.schedules import Cadence


class PeriodicWork(Protocol):
    """What the cadences call (the runner): each is one named piece of the run's work."""

    def log_stats(self, env_steps: int) -> None: ...
    def evaluate(self, env_steps: int) -> None: ...
    def save_state(self) -> None: ...


class EvalTrigger:
    """Calls an evaluation early when the training episodes say it could decide the run.

    An evaluation of a good Atari agent is long (20 whole games), and one at a fixed cadence
    mostly confirms what the training episodes already show. Once the mean return of the last
    ``episodes`` training episodes is within ``margin`` of the solve threshold, and ``gap``
    agent steps have passed since the last evaluation, this says an evaluation is due; the
    evaluation alone decides whether the run is solved. Off when ``episodes`` is 0 or the env
    has no threshold.

    A scheduled evaluation that falls fewer than ``gap`` agent steps after a called one is
    skipped (:meth:`covers`): the policy has barely moved, so it would spend 20 games deciding
    nothing, and the called evaluation already gave the curve its point.
    """

    def __init__(self, *, threshold: float | None, episodes: int, margin: float, gap: int) -> None:
        self.threshold, self.margin, self.gap = threshold, margin, gap
        self.returns: deque[float] = deque(maxlen=max(episodes, 1))
        self.enabled = episodes > 0 and threshold is not None
        self.last_eval: int | None = None  # agent step of the last evaluation of either kind
        self.last_called: int | None = None  # agent step of the last evaluation this called

    def on_episode(self, episode_return: float) -> None:
        self.returns.append(float(episode_return))

    def due(self, env_steps: int) -> bool:
        if not self.enabled or len(self.returns) < (self.returns.maxlen or 1):
            return False
        assert self.threshold is not None
        close = sum(self.returns) / len(self.returns) >= self.threshold - self.margin
        rested = self.last_eval is None or env_steps - self.last_eval >= self.gap
        return close and rested

    def covers(self, env_steps: int) -> bool:
        """Whether an evaluation this called is recent enough to stand in for a scheduled one."""
        return self.last_called is not None and env_steps - self.last_called < self.gap

    def state_dict(self) -> dict[str, Any]:
        return {
            "returns": list(self.returns),
            "last_eval": self.last_eval,
            "last_called": self.last_called,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.returns.extend(state["returns"])
        self.last_eval = state["last_eval"]
        self.last_called = state.get("last_called")  # absent in checkpoints from before it


class Periodic:
    """Calls the run's logging, evaluation and checkpointing when each is due.

    Args:
        work: what to call.
        log_every: agent steps between statistics logs.
        eval_every: agent steps between evaluations.
        checkpoint_every: agent steps between resumable checkpoints.
        trigger: calls evaluations between those of ``eval_every`` (``eval.trigger_*``).
    """

    def __init__(
        self,
        work: PeriodicWork,
        *,
        log_every: int,
        eval_every: int,
        checkpoint_every: int,
        trigger: EvalTrigger | None = None,
    ) -> None:
        self.work = work
        self.log = Cadence(log_every)
        self.eval = Cadence(eval_every)
        self.checkpoint = Cadence(checkpoint_every)
        self.trigger = trigger or EvalTrigger(threshold=None, episodes=0, margin=0.0, gap=1)

    def after(self, env_steps: int) -> None:
        """Called after each update (DQN) or env step (tabular) with the agent step count."""
        if self.log.due(env_steps):
            self.work.log_stats(env_steps)
        scheduled = self.eval.due(env_steps)  # first: it counts periods whatever the trigger
        if scheduled and self.trigger.covers(env_steps):
            scheduled = False  # a called evaluation just saw (almost) this policy
        elif not scheduled and self.trigger.due(env_steps):
            self.trigger.last_called = env_steps
            scheduled = True
        if scheduled:
            self.trigger.last_eval = env_steps
            self.work.evaluate(env_steps)
        if self.checkpoint.due(env_steps):
            self.work.save_state()

    def state_dict(self) -> dict[str, Any]:
        return {
            "log": self.log.state_dict(),
            "eval": self.eval.state_dict(),
            "checkpoint": self.checkpoint.state_dict(),
            "trigger": self.trigger.state_dict(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.log.load_state_dict(state["log"])
        self.eval.load_state_dict(state["eval"])
        self.checkpoint.load_state_dict(state["checkpoint"])
        if "trigger" in state:  # checkpoints from before the trigger existed have none
            self.trigger.load_state_dict(state["trigger"])
