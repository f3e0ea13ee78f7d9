"""The DQN update against hand-computed cases, and the target net's freeze/sync discipline."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
from torch import nn

from dqn_harness.dqn.clip import clip_grad_norm
from dqn_harness.dqn.module import DQN
from dqn_harness.nets import MLP, NatureCNN
from dqn_harness.schedules import EpsilonSchedule, TargetSync


class Fixed(nn.Module):
    """Q(s, ·) = a fixed table row per scalar state, so targets can be computed by hand."""

    def __init__(self, table):
        super().__init__()
        self.table = nn.Parameter(torch.tensor(table, dtype=torch.float32))

    def forward(self, obs):
        return self.table[obs.long()]


def random_batch() -> dict[str, torch.Tensor]:
    """32 CartPole-shaped transitions: 4 floats per observation, 2 actions."""
    return {
        "obs": torch.randn(32, 4),
        "actions": torch.randint(0, 2, (32,)),
        "rewards": torch.randn(32),
        "next_obs": torch.randn(32, 4),
        "terminated": torch.zeros(32),
        "truncated": torch.zeros(32),
    }


def fit_on_batches(module, batch, steps, callback, precision="32-true"):
    """A real Lightning Trainer over ``batch`` stamped with each agent step in ``steps``."""
    import pytorch_lightning as pl
    from torch.utils.data import DataLoader, IterableDataset

    class Stream(IterableDataset):
        def __iter__(self):
            for s in steps:
                yield {**batch, "env_steps": s}

    pl.Trainer(
        accelerator="cpu",
        precision=precision,
        max_epochs=1,
        logger=False,
        callbacks=[callback],
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    ).fit(module, DataLoader(Stream(), batch_size=None))


def test_td_target_bootstraps_through_truncation_not_termination():
    module = DQN(Fixed([[1.0, 2.0], [3.0, 5.0]]), gamma=0.5, lr=1e-3, loss="mse")
    batch = {
        "obs": torch.tensor([0, 0, 0]),
        "actions": torch.tensor([0, 1, 1]),
        "rewards": torch.tensor([1.0, 1.0, 1.0]),
        "next_obs": torch.tensor([1, 1, 1]),
        "terminated": torch.tensor([0.0, 1.0, 0.0]),
        "truncated": torch.tensor([0.0, 0.0, 1.0]),
    }
    loss, q, _ = module.td_loss(batch)
    # targets: 1 + 0.5*5 = 3.5 (ongoing), 1 (terminal), 3.5 (truncated still bootstraps)
    expected = ((1 - 3.5) ** 2 + (2 - 1.0) ** 2 + (2 - 3.5) ** 2) / 3
    assert q.tolist() == [1.0, 2.0, 2.0]
    assert loss.item() == pytest.approx(expected)


def test_reward_clipping_applies_to_the_target_only():
    module = DQN(Fixed([[0.0, 0.0]]), gamma=0.9, lr=1e-3, loss="mse", reward_clip=True)
    batch = {
        "obs": torch.tensor([0]),
        "actions": torch.tensor([0]),
        "rewards": torch.tensor([25.0]),
        "next_obs": torch.tensor([0]),
        "terminated": torch.tensor([1.0]),
        "truncated": torch.tensor([0.0]),
    }
    loss, _, _ = module.td_loss(batch)
    assert loss.item() == pytest.approx(1.0)  # the target sees sign(25) = 1
    # only the target: the batch (what replay holds and returns are summed from) stays raw
    assert batch["rewards"].item() == 25.0
    unclipped = DQN(Fixed([[0.0, 0.0]]), gamma=0.9, lr=1e-3, loss="mse", reward_clip=False)
    assert unclipped.td_loss(batch)[0].item() == pytest.approx(625.0)


def test_target_syncs_on_the_batch_clock_under_a_real_trainer():
    """A real Lightning Trainer prefetches the next batch before each update runs, so anything
    that read the collector's count would be one batch ahead. Batches stamped 25, 50, ... 300
    with a sync every 100 agent steps: the target must change exactly after the updates of the
    batches stamped 100, 200 and 300, each time to a copy of the online net after that update,
    and stay frozen in between while the online net learns at every update."""
    import pytorch_lightning as pl

    torch.manual_seed(0)
    module = DQN(MLP(gym.spaces.Box(-1, 1, (4,)), 2, [16]), gamma=0.99, lr=1e-2, target_sync=100)
    steps = list(range(25, 301, 25))

    def params(net):
        return [p.detach().clone() for p in net.parameters()]

    seen = []

    class Snapshot(pl.Callback):
        def on_train_batch_end(self, trainer, m, outputs, b, batch_idx):
            seen.append((b["env_steps"], params(m.q_net), params(m.target_net)))

    def same(a, b):
        return all(torch.equal(x, y) for x, y in zip(a, b, strict=True))

    target = params(module.target_net)
    fit_on_batches(module, random_batch(), steps, Snapshot())
    assert [s for s, _, _ in seen] == steps and module.trainer.global_step == len(steps)
    assert all(not p.requires_grad for p in module.target_net.parameters())
    synced_at = []
    online_before = None
    for step, online, after in seen:
        if online_before is not None:
            assert not same(online, online_before), f"the online net did not learn at {step}"
        if not same(after, target):
            synced_at.append(step)
            assert same(after, online), "the target must be the online net after the update"
        target, online_before = after, online
    assert synced_at == [100, 200, 300]


def test_target_sync_counts_agent_steps_across_vector_jumps():
    sync = TargetSync(1000)
    due = [s for s in range(0, 5000, 8) if sync.due(s)]
    assert due == [1000, 2000, 3000, 4000]


def test_epsilon_schedules():
    lin = EpsilonSchedule(kind="linear", start=1.0, end=0.1, steps=100)
    assert (
        lin(0) == 1.0
        and lin(50) == pytest.approx(0.55)
        and lin(100) == lin(10_000) == pytest.approx(0.1)
    )
    exp = EpsilonSchedule(kind="exponential", start=1.0, end=0.01, steps=1000)
    assert exp(0) == 1.0
    assert exp(1000) == pytest.approx(0.01 + 0.99 * 0.01)
    # tau = steps / ln(100): halfway, the gap to `end` has shrunk to 1/10
    assert exp(500) == pytest.approx(0.01 + 0.99 * 0.1)
    assert exp(10_000) == pytest.approx(0.01, abs=1e-6)
    values = [exp(t) for t in range(0, 3000, 100)]
    assert all(a > b for a, b in zip(values, values[1:], strict=False))


def test_nature_cnn_scales_uint8_inside_forward():
    net = NatureCNN(4, 6)
    obs = torch.from_numpy(np.full((2, 4, 84, 84), 255, dtype=np.uint8))
    out = net(obs)
    assert out.shape == (2, 6)
    assert torch.allclose(net(obs), net.head(net.trunk(torch.ones(2, 4, 84, 84))))
    assert sum(isinstance(m, nn.Conv2d) for m in net.modules()) == 3
    assert sum(isinstance(m, nn.Linear) for m in net.modules()) == 2


def test_mlp_one_hot_encodes_discrete_states():
    """A discrete state reaches the first layer as its one-hot row, not as a number."""
    net = MLP(gym.spaces.Discrete(16), 4, [8])
    seen = []
    net.net[0].register_forward_pre_hook(lambda m, args: seen.append(args[0]))
    q = net(torch.tensor([0, 15, 15]))
    assert q.shape == (3, 4)
    assert torch.equal(seen[0], torch.nn.functional.one_hot(torch.tensor([0, 15, 15]), 16).float())
    assert torch.equal(q[1], q[2]) and not torch.equal(q[0], q[1])


def test_fast_cpu_kernels_train_the_same_network():
    """channels_last convolutions and fused Adam are speed choices: the same updates result."""
    torch.manual_seed(0)
    obs = torch.randint(0, 256, (32, 4, 84, 84), dtype=torch.uint8)
    target = torch.randn(32, 6)
    nets, opts = [], []
    for fast in (False, True):
        torch.manual_seed(1)
        net = NatureCNN(4, 6, channels_last=fast)
        nets.append(net)
        opts.append(torch.optim.Adam(net.parameters(), lr=1e-3, fused=fast))
    assert nets[1].trunk[0].weight.is_contiguous(memory_format=torch.channels_last)
    for _ in range(3):
        for net, opt in zip(nets, opts, strict=True):
            loss = nn.functional.mse_loss(net(obs), target)
            opt.zero_grad()
            loss.backward()
            opt.step()
    slow, fast = (dict(n.state_dict()) for n in nets)
    for key in slow:
        torch.testing.assert_close(fast[key], slow[key], rtol=1e-3, atol=1e-4)
    torch.testing.assert_close(nets[1](obs), nets[0](obs), rtol=1e-4, atol=1e-4)


ALLOC_FAULTS = """
import resource, numpy as np
from dqn_harness.perf import tune_allocator
def faults(n=40):
    r0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(n):
        a = np.empty(8 * 2**20, dtype=np.uint8); a[::4096] = 1; del a
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - r0
before = faults(); ok = tune_allocator(); faults(2); after = faults()
print(before, after, ok)
"""


def test_allocator_tuning_takes_effect_on_glibc():
    """What tune_allocator is for: freed multi-MB blocks (activations, replay batches) are
    reused instead of handed back and faulted in again. Measured in a fresh process, since the
    setting is process-wide: page faults of 40 alloc/touch/free cycles of 8 MB, before and after
    (here ~1,000 before, 0 after)."""
    import platform
    import subprocess
    import sys

    if platform.libc_ver()[0] != "glibc":
        pytest.skip("mallopt is glibc's")
    out = subprocess.run(
        [sys.executable, "-c", ALLOC_FAULTS], capture_output=True, text=True, check=True
    )
    before, after, ok = out.stdout.split()
    assert ok == "True"
    assert int(before) >= 200 and int(after) <= int(before) // 5, out.stdout


SUBNORMALS = """
import sys, torch
from dqn_harness.perf import flush_denormals
torch.set_num_threads(2)
if sys.argv[1] == "pool_first":
    torch.ones(1 << 22).mul_(2)  # starts the OpenMP pool before the mode is set
ok = flush_denormals(sys.argv[2] == "on")
tiny = torch.finfo(torch.float32).tiny
y = torch.full((1 << 22,), tiny) * 0.25  # all subnormal unless flushed, split across threads
m = torch.zeros(1 << 16); m[0] = 1e-30
for _ in range(200):  # Adam's first moment of a dead unit: m <- 0.9 m
    m.mul_(0.9)
print(ok, int((y == 0).sum()), y.numel(), float(m[0]) == 0.0)
"""


@pytest.mark.parametrize(
    "order, mode, expect_ok, expect_flushed",
    [
        ("fresh", "on", "True", "all"),
        ("fresh", "off", "False", "none"),
        ("pool_first", "on", "None", "some"),  # what the probe is for: stale pool threads
    ],
)
def test_flush_denormals_reaches_every_torch_thread_or_says_it_did_not(
    order, mode, expect_ok, expect_flushed
):
    """perf.flush_denormals in a fresh process (the mode is per thread and inherited by the
    threads a thread creates): set before torch's pool starts, every thread flushes a
    subnormal result to zero, including a dead unit's decaying Adam moment; set after, the
    pool's threads keep subnormals, and the function's probe reports it."""
    import platform
    import subprocess
    import sys

    if platform.machine() not in ("x86_64", "AMD64"):
        pytest.skip("FTZ/DAZ as tested here is x86's")
    out = subprocess.run(
        [sys.executable, "-c", SUBNORMALS, order, mode], capture_output=True, text=True, check=True
    )
    ok, flushed, total, moment_zero = out.stdout.split()
    assert ok == expect_ok, out.stdout
    flushed, total = int(flushed), int(total)
    if expect_flushed == "all":
        assert flushed == total and moment_zero == "True"
    elif expect_flushed == "none":
        assert flushed == 0 and moment_zero == "False"
    else:
        assert 0 < flushed < total, out.stdout


def test_bf16_mixed_computes_in_bf16_but_keeps_fp32_weights_target_and_loss():
    """trainer.precision=bf16-mixed under a real Trainer: the networks' matrix work runs in
    bf16 (autocast), while the weights Adam updates, the TD target and the loss stay fp32, and
    a fused Adam with gradient clipping is accepted (Lightning's own clipping refuses it)."""
    import pytorch_lightning as pl

    torch.manual_seed(0)
    module = DQN(
        MLP(gym.spaces.Box(-1, 1, (4,)), 2, [16]),
        gamma=0.99,
        lr=1e-2,
        fused=True,
        max_grad_norm=1.0,
        target_sync=50,
    )
    seen: dict[str, set] = {"q": set(), "target": set(), "loss": set()}
    module.q_net.register_forward_hook(lambda m, i, o: seen["q"].add(o.dtype))
    original = module.td_target

    def td_target(b):
        y = original(b)
        seen["target"].add(y.dtype)
        return y

    module.td_target = td_target  # type: ignore[method-assign]

    class Losses(pl.Callback):
        def on_train_batch_end(self, trainer, m, outputs, b, batch_idx):
            seen["loss"].add(outputs["loss"].dtype)

    before = [p.detach().clone() for p in module.q_net.parameters()]
    fit_on_batches(module, random_batch(), range(1, 101), Losses(), precision="bf16-mixed")
    assert seen == {"q": {torch.bfloat16}, "target": {torch.float32}, "loss": {torch.float32}}
    assert all(p.dtype == torch.float32 for p in module.q_net.parameters())
    assert all(p.dtype == torch.float32 for p in module.target_net.parameters())
    after = list(module.q_net.parameters())
    assert all(not torch.equal(a, b) for a, b in zip(after, before, strict=True))
    assert module.trainer.global_step == 100


def legacy_forward(net: NatureCNN, obs: torch.Tensor) -> torch.Tensor:
    """NatureCNN.forward as it was before the 16-bit input path (commit 74f65d5)."""
    x = (obs.float() / 255.0).contiguous(memory_format=net.memory_format)
    return net.head(net.trunk(x))


@pytest.mark.parametrize("channels_last", [False, True])
def test_nature_cnn_16_bit_input_path_is_the_same_function_without_the_fp32_frames(
    channels_last,
):
    torch.manual_seed(0)
    net = NatureCNN(4, 6, channels_last=channels_last)
    obs = torch.randint(0, 256, (8, 4, 84, 84), dtype=torch.uint8)
    # fp32 is untouched, bit for bit
    assert torch.equal(net(obs), legacy_forward(net, obs))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        with torch.profiler.profile() as prof:
            new = net(obs)
        old = legacy_forward(net, obs)
    names = [e.name for e in prof.events()]
    assert "aten::div" not in names  # no fp32 frame tensor divided by 255
    assert new.dtype == old.dtype == torch.bfloat16
    exact = legacy_forward(net, obs)
    scale = exact.abs().max()
    # the same function, to bf16's rounding: as close to fp32 as the old bf16 path is
    assert (new.float() - exact).abs().max() / scale < 0.03
    assert (new.float() - exact).abs().max() <= 3 * (old.float() - exact).abs().max() + 1e-6
    # and the gradients the update takes agree with the old path's
    grads = []
    for forward in (net, lambda o: legacy_forward(net, o)):
        net.zero_grad()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            forward(obs).float().square().mean().backward()
        grads.append(torch.cat([p.grad.flatten() for p in net.parameters()]))
    assert torch.nn.functional.cosine_similarity(grads[0], grads[1], dim=0) > 0.99


def test_nature_cnn_fp32_forward_divides_a_copy_never_the_callers_frames():
    """The fp32 input path divides in place to save a buffer: on its own copy, so neither a
    uint8 batch nor a float one handed in (a caller's, a test's) is changed, and the answer
    is the same for both."""
    torch.manual_seed(0)
    net = NatureCNN(4, 6, channels_last=True)
    frames = torch.randint(0, 256, (4, 4, 84, 84), dtype=torch.uint8)
    as_float = frames.float()
    kept_u8, kept_f = frames.clone(), as_float.clone()
    assert torch.equal(net(frames), net(as_float))
    assert torch.equal(frames, kept_u8) and torch.equal(as_float, kept_f)


def test_bf16_updates_use_a_bf16_target_copy_made_again_only_after_a_sync():
    """Under bf16-mixed the frozen target is evaluated in a bf16 copy (autocast would cast its
    fp32 weights at every update), rebuilt after each sync and equal to the synced weights."""
    import pytorch_lightning as pl

    torch.manual_seed(0)
    module = DQN(MLP(gym.spaces.Box(-1, 1, (4,)), 2, [16]), gamma=0.99, lr=1e-2, target_sync=40)
    copies: list[nn.Module] = []

    class Watch(pl.Callback):
        def on_train_batch_end(self, trainer, m, outputs, b, batch_idx):
            if not m._half_target:  # this update synced: the next one makes the copy
                return
            [copy] = m._half_target.values()
            if not copies or copy is not copies[-1]:
                copies.append(copy)
                cast = {k: v.to(torch.bfloat16) for k, v in m.target_net.state_dict().items()}
                assert all(torch.equal(copy.state_dict()[k], v) for k, v in cast.items())
            assert all(p.dtype == torch.bfloat16 for p in copy.parameters())

    fit_on_batches(module, random_batch(), range(1, 101), Watch(), precision="bf16-mixed")
    # agent steps 1..100, syncs at 40 and 80: a copy at the first update and after each sync
    assert len(copies) == 3
    assert set(module.state_dict()) == {
        k for k in module.state_dict() if k.startswith(("q_net.", "target_net."))
    }
    assert module.frozen_target("cpu") is module.target_net  # outside autocast: fp32 itself


@pytest.mark.parametrize("scale", [1e-3, 1.0, 1e3, float("nan")])
def test_clip_grad_norm_is_torchs_bit_for_bit_and_leaves_unclipped_gradients_unwritten(scale):
    """Our clip against torch's clip_grad_norm_ on the Nature CNN's real gradients, under,
    around and over the limit and with a NaN; under it no gradient is written at all."""
    torch.manual_seed(0)
    nets = [NatureCNN(4, 6) for _ in range(2)]
    nets[1].load_state_dict(nets[0].state_dict())
    obs = torch.randint(0, 256, (8, 4, 84, 84), dtype=torch.uint8)
    for net in nets:
        (net(obs).sum() * scale).backward()
    norm = torch.nn.utils.get_total_norm([p.grad for p in nets[0].parameters()])
    max_norm = 10.0
    versions = [p.grad._version for p in nets[0].parameters()]
    ours = clip_grad_norm(list(nets[0].parameters()), max_norm)
    theirs = torch.nn.utils.clip_grad_norm_(nets[1].parameters(), max_norm)
    assert torch.equal(ours, theirs) or (ours.isnan() and theirs.isnan())
    for a, b in zip(nets[0].parameters(), nets[1].parameters(), strict=True):
        assert torch.equal(a.grad.view(-1).view(torch.int32), b.grad.view(-1).view(torch.int32))
    written = [p.grad._version != v for p, v in zip(nets[0].parameters(), versions, strict=True)]
    clipped = not bool(norm + 1e-6 <= max_norm)
    assert all(written) if clipped else not any(written)
    assert clipped == (scale != 1e-3), f"norm {float(norm):.3g}: the cases must cover both sides"


def test_the_nips_network_is_the_2013_papers_and_evaluates_as_it_trained(tmp_path):
    """model=nips_cnn: 16 8x8/4 and 32 4x4/2 convolutions, 256 dense units (Mnih et al. 2013),
    about a third of the Nature CNN's multiply-adds; the config builds it, evaluate.py's
    rebuild from a checkpoint's config gives the same Q-values, and it is refused where there
    are no frames."""
    import gymnasium as gym

    from dqn_harness.config import compose_config, validate
    from dqn_harness.errors import UsageError
    from dqn_harness.nets import NIPS_CONVS, NatureCNN, build_q_net
    from tests.conftest import CONF

    cfg = compose_config(CONF, ["env=pong", "model=nips_cnn", "run_name=x"])
    assert cfg.model.name == "nips_cnn" and list(cfg.model.hidden) == [256]
    space = gym.spaces.Box(0, 255, (4, 84, 84), np.uint8)
    net = build_q_net(cfg.model, space, 6)
    convs = [m for m in net.trunk if isinstance(m, torch.nn.Conv2d)]
    assert [(c.out_channels, c.kernel_size[0], c.stride[0]) for c in convs] == [
        (16, 8, 4),
        (32, 4, 2),
    ]
    assert net.head[0].in_features == 32 * 9 * 9 and net.head[0].out_features == 256

    def macs(model: torch.nn.Module) -> int:
        size, total = 84, 0
        for c in (m for m in model.trunk if isinstance(m, torch.nn.Conv2d)):
            size = (size - c.kernel_size[0]) // c.stride[0] + 1
            total += c.weight.numel() * size * size
        return total + sum(m.weight.numel() for m in model.head if isinstance(m, torch.nn.Linear))

    nature = NatureCNN(4, 6)
    assert 0.28 < macs(net) / macs(nature) < 0.35
    obs = torch.randint(0, 256, (5, 4, 84, 84), dtype=torch.uint8)
    rebuilt = build_q_net(cfg.model, space, 6)
    rebuilt.load_state_dict(net.state_dict())
    assert torch.equal(rebuilt(obs), net(obs)) and net(obs).shape == (5, 6)
    assert NIPS_CONVS == ((16, 8, 4), (32, 4, 2))
    with pytest.raises(UsageError, match="nips_cnn needs Atari frames"):
        validate(compose_config(CONF, ["env=cartpole", "model=nips_cnn", "run_name=x"]))
