from dqn_harness.replay.buffer import ReplayBuffer, make_replay
from dqn_harness.replay.samplers import PrioritizedSampler, Sampler, SumTree, UniformSampler
from dqn_harness.replay.storage import FrameStorage

__all__ = [
    "FrameStorage",
    "PrioritizedSampler",
    "ReplayBuffer",
    "Sampler",
    "SumTree",
    "UniformSampler",
    "make_replay",
]
