"""What a run does every N agent steps besides learning: log, evaluate, checkpoint.

DQN (through a Lightning callback after each update) and tabular Q-learning (after each env
step) share these cadences, so both log, evaluate and checkpoint by the same rules, in the same
order, and save the same cadence state for a resume. The agent step they go by is the one the
update was made at: for DQN the step its batch was sampled at (the batch carries it), not the
collector's count, which Lightning's prefetch of the next batch has already moved on.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytorch_lightning as pl

from dqn_harness.evaluation import Evaluator
from dqn_harness.policy import Policy
from dqn_harness.schedules import Cadence
from dqn_harness.tracking import Tracker


class Periodic:
    """Logs the learner's statistics, evaluates and checkpoints when each is due.

    Args:
        tracker: where statistics are logged.
        evaluator: decides when to evaluate and keeps best/last checkpoints.
        log_every: agent steps between statistics logs.
        checkpoint_every: agent steps between resumable checkpoints.
        stats: returns the learner's statistics since the last call (and resets them).
        epsilon: agent step -> exploration, logged with the statistics.
        policy: the greedy policy evaluated.
        save_weights: writes a best/last weights file to the given path.
        save_state: writes the resumable state, given these cadences' own state.
        check: raises ``Diverged`` before anything is written, if the learner has diverged.
    """

    def __init__(
        self,
        *,
        tracker: Tracker,
        evaluator: Evaluator,
        log_every: int,
        checkpoint_every: int,
        stats: Callable[[], dict[str, float]],
        epsilon: Callable[[int], float],
        policy: Policy,
        save_weights: Callable[[Path], None],
        save_state: Callable[[dict[str, Any]], None],
        check: Callable[[], None] = lambda: None,
    ) -> None:
        self.tracker = tracker
        self.evaluator = evaluator
        self.log = Cadence(log_every)
        self.checkpoint = Cadence(checkpoint_every)
        self.stats = stats
        self.epsilon = epsilon
        self.policy = policy
        self.save_weights = save_weights
        self.save_state = save_state
        self.check = check

    def after(self, env_steps: int) -> None:
        """Called after each update (DQN) or env step (tabular) with the agent step count."""
        if self.log.due(env_steps):
            record = {**self.stats(), "train/epsilon": self.epsilon(env_steps)}
            self.tracker.log({**record, **self.tracker.throughput(env_steps)}, env_steps)
        if self.evaluator.due(env_steps):
            self.check()
            self.evaluator.run(env_steps, self.policy, self.save_weights)
        if self.checkpoint.due(env_steps):
            self.check()
            self.save_state(self.state_dict())

    def state_dict(self) -> dict[str, Any]:
        return {"log": self.log.state_dict(), "checkpoint": self.checkpoint.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.log.load_state_dict(state["log"])
        self.checkpoint.load_state_dict(state["checkpoint"])


class PeriodicCallback(pl.Callback):
    """Runs the run's cadences after every DQN update, at the agent step its batch carries.

    When ``done()`` says the run is over (solved, pruned, Ctrl-C) it stops the Trainer at once:
    Lightning has already fetched the next batch, and training on it would change the policy
    the last evaluation just judged.
    """

    def __init__(self, periodic: Periodic, done: Callable[[], bool]) -> None:
        self.periodic = periodic
        self.done = done

    def on_train_batch_end(
        self,
        trainer: pl.Trainer,
        module: pl.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
    ) -> None:
        self.periodic.after(int(batch["env_steps"]))
        if self.done():
            trainer.should_stop = True
