"""The IterableDataset that streams minibatches into Lightning and drives data collection.

Lightning pulls a batch; the stream first steps the collector until the next update is due
(``train_freq`` agent steps per update, none before ``learning_starts``), then samples
``gradient_steps`` batches for that update (the replay ratio is ``gradient_steps / train_freq``,
as SB3's keys of the same names and the data-efficient Atari work's "replay ratio"), and stamps
each batch with the agent step it was sampled at (``env_steps``, a plain int). That
stamp is the clock of everything the update decides: the target sync, the logs, evaluations and
checkpoints. Lightning fetches the next batch before running this one, so the collector's own
count is already one batch ahead when an update runs; the stamp is not. With
``gradient_steps > 1`` an update's batches share one stamp, so a cadence due at that agent step
(an evaluation, a checkpoint) runs after the first of them, not after all of them.
Iteration ends at ``total_steps`` agent steps or when a stop is requested (solved, Ctrl-C), which
ends Lightning's single epoch cleanly. This is the first half of a DQN update; the second half
(TD target, loss, optimizer step, target sync) is ``DQN.training_step`` in dqn/module.py.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from torch.utils.data import IterableDataset

from dqn_harness.collector import Collector
from dqn_harness.replay.buffer import ReplayBuffer


class ReplayStream(IterableDataset):
    """Collect until an update is due, then yield a sampled batch.

    Args:
        buffer: the replay the collector writes to and batches are sampled from.
        collector: steps the training env.
        batch_size: transitions per batch.
        learning_starts: agent steps of pure collection before the first update.
        train_freq: agent steps between updates.
        gradient_steps: batches (gradient steps) per update, all stamped with its agent step.
        total_steps: agent steps after which the stream ends.
        should_stop: polled between env steps; True ends the stream (Ctrl-C, solved, pruned).
        n_step: length of the return windows batches carry (1: one-step TD), or a function
            of the agent step (``NStepSchedule``).
    """

    def __init__(
        self,
        *,
        buffer: ReplayBuffer,
        collector: Collector,
        batch_size: int,
        learning_starts: int,
        train_freq: int,
        total_steps: int,
        gradient_steps: int = 1,
        should_stop: Callable[[], bool] = lambda: False,
        n_step: int | Callable[[int], int] = 1,
    ) -> None:
        super().__init__()
        self.buffer = buffer
        self.collector = collector
        self.batch_size = batch_size
        self.learning_starts = learning_starts
        self.train_freq = train_freq
        self.gradient_steps = gradient_steps
        self.total_steps = total_steps
        self.should_stop = should_stop
        self.n_step_at: Callable[[int], int] = n_step if callable(n_step) else lambda _: n_step
        self.n_step = self.n_step_at(0)  # the window length of the latest batch
        self.next_update = max(learning_starts, 1)  # agent step at which the next update is due
        self.burst_left = 0  # batches of the current update not yet yielded

    def __iter__(self) -> Iterator[dict[str, Any]]:
        collector = self.collector
        while True:
            if self.burst_left == 0:
                while collector.env_steps < self.next_update or len(self.buffer) < self.batch_size:
                    if collector.env_steps >= self.total_steps or self.should_stop():
                        return
                    collector.step()
                self.next_update += self.train_freq
                self.burst_left = self.gradient_steps
                self.n_step = self.n_step_at(collector.env_steps)
            if self.should_stop():
                return
            self.burst_left -= 1
            batch: dict[str, Any] = self.buffer.sample(
                self.batch_size, self.n_step, collector.env_steps
            )
            batch["env_steps"] = collector.env_steps
            yield batch

    def state_dict(self) -> dict[str, Any]:
        return {"next_update": self.next_update, "burst_left": self.burst_left}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.next_update = int(state["next_update"])
        # a checkpoint from before gradient_steps existed was always between updates
        self.burst_left = int(state.get("burst_left", 0))
