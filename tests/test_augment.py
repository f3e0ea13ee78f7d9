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


def _one_update(augment: str, tmp_path, obs: torch.Tensor):
    """One real update through Lightning (DQN.training_step) on a batch of ``obs``; returns
    the inputs the online network saw, and the learner."""
    import pytorch_lightning as pl
    from torch.utils.data import DataLoader

    from dqn_harness.config import compose_config
    from dqn_harness.dqn.learner import build_dqn
    from tests.conftest import CONF

    cfg = compose_config(
        CONF, ["env=pong", f"algo.augment={augment}", "trainer.precision=32-true", "run_name=x"]
    )
    space = gym.spaces.Box(0, 255, (4, 84, 84), np.uint8)
    env = gym.vector.SyncVectorEnv([lambda s=space: _FrameEnv(s)])
    learner = build_dqn(cfg, env, tmp_path)
    env.close()
    module = learner.module
    batch = {
        "obs": obs,
        "next_obs": obs.clone(),
        "actions": torch.zeros(len(obs), dtype=torch.int64),
        "rewards": torch.zeros(len(obs)),
        "terminated": torch.zeros(len(obs)),
        "truncated": torch.zeros(len(obs)),
        "env_steps": 100,
    }
    inputs: list[torch.Tensor] = []
    module.q_net.register_forward_pre_hook(lambda m, args: inputs.append(args[0]))
    trainer = pl.Trainer(
        max_epochs=1,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=str(tmp_path),
    )
    trainer.fit(module, DataLoader([batch], batch_size=None))
    assert module.grad_steps == 1
    return inputs, learner


def test_the_update_trains_on_the_sampled_batch_or_on_its_shift(tmp_path):
    """Through DQN.training_step (Lightning's own loop): with augment=none the online network
    sees the sampled tensor itself, bit for bit; with shift it sees exactly the shifts of the
    learner's seeded stream (seed + 2), drawn for obs, then next_obs."""
    obs = torch.from_numpy(np.random.default_rng(2).integers(0, 256, (8, 4, 84, 84), np.uint8))
    inputs, _ = _one_update("none", tmp_path / "none", obs)
    online = [x for x in inputs if x.shape == obs.shape]
    assert online and any(torch.equal(x, obs) for x in online)

    inputs, learner = _one_update("shift", tmp_path / "shift", obs)
    expected = RandomShift(seed=0 + 2)(batch_of(obs))["obs"]  # the run's seed is 0
    online = [x for x in inputs if x.shape == obs.shape]
    assert any(torch.equal(x, expected) for x in online)
    assert not any(torch.equal(x, obs) for x in online)


def test_a_checkpoint_carries_the_shift_stream_and_resume_draws_what_comes_next(tmp_path):
    """The learner's state (what state.pt holds) has the shift generator; a resumed learner
    draws the shifts the uninterrupted one draws next, not its seed's first ones."""
    obs = torch.from_numpy(np.random.default_rng(4).integers(0, 256, (8, 4, 84, 84), np.uint8))
    _, learner = _one_update("shift", tmp_path / "a", obs)
    state = learner.state_dict()
    assert isinstance(state["augment"]["generator"], torch.Tensor)
    torch.save(state, tmp_path / "learner.pt")  # as state.pt holds it: data only
    saved = torch.load(tmp_path / "learner.pt", weights_only=True)
    following = learner.module.augment(batch_of(obs))["obs"]
    _, fresh = _one_update("shift", tmp_path / "b", obs)  # same seed: at the same point now
    fresh.module.augment = RandomShift(seed=2)  # back at the seed's start...
    fresh.module.augment.load_state_dict(saved["augment"])  # ...then restored
    assert torch.equal(fresh.module.augment(batch_of(obs))["obs"], following)
    fresh.load_state_dict(saved)  # and through the learner's own load_state_dict
    assert torch.equal(fresh.module.augment(batch_of(obs))["obs"], following)


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
