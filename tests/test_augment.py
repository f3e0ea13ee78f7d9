"""algo.augment=shift (DrQ's random shift) on real uint8 frame stacks, and its off switch."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch

from dqn_harness.dqn.augment import RandomShift, random_shift

PAD = 4


def reference_shift(frame: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """Pad by 4 with the edge, crop the 84x84 window at (dy, dx): DrQ's definition."""
    padded = np.pad(frame, ((PAD, PAD), (PAD, PAD)), mode="edge")
    return padded[dy : dy + frame.shape[0], dx : dx + frame.shape[1]]


def test_a_shift_is_a_crop_of_the_edge_padded_frame_and_stays_uint8():
    rng = np.random.default_rng(0)
    frames = torch.from_numpy(rng.integers(0, 256, (81, 4, 84, 84), dtype=np.uint8))
    shifts = torch.tensor([(dy, dx) for dy in range(2 * PAD + 1) for dx in range(2 * PAD + 1)])
    out = random_shift(frames, shifts, PAD)
    assert out.dtype == torch.uint8 and out.shape == frames.shape
    for b, (dy, dx) in enumerate(shifts.tolist()):
        for c in range(4):  # every frame of the stack moved by the sample's one shift
            expected = reference_shift(frames[b, c].numpy(), dy, dx)
            assert np.array_equal(out[b, c].numpy(), expected), (b, c, dy, dx)
    centre = shifts.tolist().index([PAD, PAD])
    assert torch.equal(out[centre], frames[centre])  # the zero shift is the frame itself


def batch_of(obs: torch.Tensor) -> dict:
    return {"obs": obs, "next_obs": obs.clone(), "actions": torch.zeros(len(obs))}


def test_obs_and_next_obs_shift_independently_and_frames_of_a_stack_together():
    gradient = torch.arange(84, dtype=torch.uint8)[None, :].expand(84, 84) * 3  # column index
    obs = gradient.expand(256, 4, 84, 84).contiguous()
    out = RandomShift(seed=0)(batch_of(obs))

    def dx(frames: torch.Tensor) -> torch.Tensor:  # a column shift reads off the centre pixel
        return frames[:, :, 42, 42].long() // 3 - 42 + PAD

    first, second = dx(out["obs"]), dx(out["next_obs"])
    assert (first == first[:, :1]).all() and (second == second[:, :1]).all()  # one per stack
    assert set(first[:, 0].tolist()) == set(range(2 * PAD + 1))  # every shift is drawn
    same = (first[:, 0] == second[:, 0]).float().mean().item()
    assert same < 0.3, same  # independent draws agree ~1/9 of the time, not always
    assert torch.equal(out["actions"], torch.zeros(256))  # nothing else is touched


def test_the_shift_stream_is_seeded_and_resumes():
    obs = torch.from_numpy(np.random.default_rng(1).integers(0, 256, (32, 4, 84, 84), np.uint8))
    a, b = RandomShift(seed=5), RandomShift(seed=5)
    assert torch.equal(a(batch_of(obs))["obs"], b(batch_of(obs))["obs"])
    state = a.state_dict()
    following = a(batch_of(obs))["obs"]
    c = RandomShift(seed=99)
    c.load_state_dict(state)
    assert torch.equal(c(batch_of(obs))["obs"], following)


def test_augment_none_trains_on_the_sampled_batch_bit_for_bit_and_shift_does_not(tmp_path):
    """The off switch leaves the batch the update sees exactly as replay returned it."""
    from dqn_harness.config import compose_config
    from dqn_harness.dqn.learner import build_dqn
    from tests.conftest import CONF

    seen = {}
    for augment in ("none", "shift"):
        cfg = compose_config(CONF, ["env=pong", f"algo.augment={augment}", "run_name=x"])
        space = gym.spaces.Box(0, 255, (4, 84, 84), np.uint8)
        env = gym.vector.SyncVectorEnv([lambda s=space: _FrameEnv(s)])
        learner = build_dqn(cfg, env, tmp_path)
        module = learner.module
        assert (module.augment is None) == (augment == "none")
        obs = torch.from_numpy(np.random.default_rng(2).integers(0, 256, (8, 4, 84, 84), np.uint8))
        batch = {
            "obs": obs,
            "next_obs": obs.clone(),
            "actions": torch.zeros(8, dtype=torch.int64),
            "rewards": torch.zeros(8),
            "terminated": torch.zeros(8),
            "truncated": torch.zeros(8),
            "env_steps": 100,
        }
        inputs: list[torch.Tensor] = []
        module.q_net.register_forward_pre_hook(lambda m, args, seen=inputs: seen.append(args[0]))
        augmented = module.augment(batch) if module.augment is not None else batch
        module.td_loss(augmented)
        seen[augment] = (obs, inputs)
        env.close()
    obs, inputs = seen["none"]
    assert any(x.data_ptr() == obs.data_ptr() for x in inputs)  # the sampled tensor itself
    obs, inputs = seen["shift"]
    assert all(not torch.equal(x, obs) for x in inputs if x.shape == obs.shape)


class _FrameEnv(gym.Env):
    """Only its spaces are read: build_dqn sizes the network and the replay from them."""

    def __init__(self, space):
        self.observation_space = space
        self.action_space = gym.spaces.Discrete(6)


def test_shift_is_refused_where_there_are_no_frames():
    from dqn_harness.config import compose_config, validate
    from dqn_harness.errors import UsageError
    from tests.conftest import CONF

    cfg = compose_config(CONF, ["env=cartpole", "algo.augment=shift", "run_name=x"])
    with pytest.raises(UsageError, match="algo.augment"):
        validate(cfg)


@pytest.mark.gpu
def test_shift_on_the_gpu_equals_the_cpu():
    frames = torch.from_numpy(np.random.default_rng(3).integers(0, 256, (64, 4, 84, 84), np.uint8))
    shifts = torch.randint(0, 2 * PAD + 1, (64, 2))
    on_gpu = random_shift(frames.cuda(), shifts.cuda(), PAD)
    assert on_gpu.dtype == torch.uint8 and torch.equal(
        on_gpu.cpu(), random_shift(frames, shifts, PAD)
    )
