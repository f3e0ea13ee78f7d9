from dqn_harness.replay.buffer import ReplayBuffer
from dqn_harness.replay.dataset import ReplayDataset

__all__ = ["ReplayBuffer", "ReplayDataset"]
