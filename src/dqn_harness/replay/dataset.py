"""The IterableDataset that streams minibatches into Lightning and drives data collection.

Lightning pulls a batch, the dataset first steps the collector until the next update is due
(``train_freq`` agent steps per gradient step, none before ``learning_starts``), then samples.
Iteration ends at ``total_steps`` agent steps or when a stop is requested (solved, Ctrl-C), which
ends Lightning's single epoch cleanly.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import torch
from torch.utils.data import IterableDataset

from dqn_harness.replay.buffer import ReplayBuffer

if TYPE_CHECKING:
    from dqn_harness.collector import Collector


class ReplayDataset(IterableDataset):
    def __init__(
        self,
        buffer: ReplayBuffer,
        collector: Collector,
        batch_size: int,
        learning_starts: int,
        train_freq: int,
        total_steps: int,
        should_stop: Callable[[], bool] = lambda: False,
        n_step: int = 1,
    ) -> None:
        super().__init__()
        self.buffer = buffer
        self.collector = collector
        self.batch_size = batch_size
        self.learning_starts = learning_starts
        self.train_freq = train_freq
        self.total_steps = total_steps
        self.should_stop = should_stop
        self.n_step = n_step
        self.next_update = max(learning_starts, 1)

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        collector = self.collector
        while True:
            while collector.env_steps < self.next_update or len(self.buffer) < self.batch_size:
                if collector.env_steps >= self.total_steps or self.should_stop():
                    return
                collector.step()
            if self.should_stop():
                return
            self.next_update += self.train_freq
            yield self.buffer.sample(self.batch_size, self.n_step, collector.env_steps)
