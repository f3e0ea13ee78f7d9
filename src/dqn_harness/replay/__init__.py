from dqn_harness.replay.buffer import ReplayBuffer, make_replay
from dqn_harness.replay.samplers import PrioritizedSampler, SumTree, UniformSampler
from dqn_harness.replay.storage import FrameStorage

__all__ = [
    "FrameStorage",
    "PrioritizedSampler",
    "ReplayBuffer",
    "SumTree",
    "UniformSampler",
    "make_replay",
]
