"""DQN extensions against hand-computed cases: Double DQN, dueling, n-step, prioritized replay."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from torch import nn

from dqn_harness.dqn.module import DQN
from dqn_harness.nets import MLP, DuelingHead, NatureCNN
from dqn_harness.replay import FrameStorage, PrioritizedSampler, SumTree
from dqn_harness.schedules import NStepSchedule
from dqn_harness.tracking.metrics import read_metrics
from tests.conftest import ROOT, make_buffer, run_sweep, run_train


class Table(nn.Module):
    """Q(s, ·) = a fixed row per integer state (observations of shape (B,) or (B, 1))."""

    def __init__(self, table):
        super().__init__()
        self.table = nn.Parameter(torch.tensor(table, dtype=torch.float32))

    def forward(self, obs):
        return self.table[obs.long().reshape(-1)]


def one_step_batch(**extra):
    return {
        "obs": torch.tensor([0]),
        "actions": torch.tensor([0]),
        "rewards": torch.tensor([1.0]),
        "next_obs": torch.tensor([1]),
        "terminated": torch.tensor([0.0]),
        "truncated": torch.tensor([0.0]),
        **extra,
    }


# --- Double DQN -------------------------------------------------------------------------------


@pytest.mark.parametrize(("double", "expected"), [(False, 1 + 0.5 * 7.0), (True, 1 + 0.5 * 2.0)])
def test_double_dqn_target(double, expected):
    # online net prefers action 1 in state 1 (5 > 3); the target net values it at 2, its max is 7
    module = DQN(Table([[0.0, 0.0], [3.0, 5.0]]), gamma=0.5, lr=1e-3, double=double)
    module.target_net.table.data = torch.tensor([[0.0, 0.0], [7.0, 2.0]])
    assert module.td_target(one_step_batch()).item() == pytest.approx(expected)


# --- Dueling ----------------------------------------------------------------------------------


def test_dueling_aggregation_subtracts_the_mean_advantage():
    head = DuelingHead(2, 3, n_actions=3)
    x = torch.tensor([[1.0, -2.0], [0.5, 0.25]])
    value = head.value(x)  # (B, 1)
    advantage = head.advantage(x)  # (B, 3)
    expected = value + advantage - advantage.mean(dim=1, keepdim=True)
    assert torch.allclose(head(x), expected)
    # by hand for one row: Q_a = V + A_a - (A_0 + A_1 + A_2) / 3
    v, a = value[0, 0].item(), advantage[0].tolist()
    assert head(x)[0, 1].item() == pytest.approx(v + a[1] - sum(a) / 3, abs=1e-6)
    # a constant added to every advantage changes nothing: V and A are identified
    with torch.no_grad():
        head.advantage[-1].bias += 10.0
    assert torch.allclose(head(x), expected, atol=1e-5)
    # Q averages to V over actions
    assert torch.allclose(head(x).mean(dim=1, keepdim=True), value, atol=1e-6)


def test_dueling_networks_shapes_and_streams():
    import gymnasium as gym

    mlp = MLP(gym.spaces.Box(-1, 1, (4,)), 2, [16, 8], dueling=True)
    assert mlp(torch.randn(5, 4)).shape == (5, 2)
    streams = [m for m in mlp.modules() if isinstance(m, DuelingHead)]
    assert len(streams) == 1 and streams[0].value[0].in_features == 16  # first layer shared
    cnn = NatureCNN(4, 6, [512], dueling=True)
    assert cnn(torch.zeros(2, 4, 84, 84, dtype=torch.uint8)).shape == (2, 6)
    head = next(m for m in cnn.modules() if isinstance(m, DuelingHead))
    assert head.value[0].out_features == 512 and head.advantage[-1].out_features == 6


# --- n-step returns ---------------------------------------------------------------------------


def n_step_buffer():
    """Two envs, integer states, known rewards: env 0 terminates, env 1 is truncated.

    env 0: states 0 -> 1 -> 2 -> 3, rewards 1, 2, 4, terminated on the third step, then reset
           to state 10 -> 11 (reward 8): the newest step ends that window.
    env 1: states 20 -> 21 -> 22 -> 23 -> 24, rewards 1, 1, 1, 1, truncated on the fourth step
           (24 is the final observation to bootstrap from), then reset to state 30.
    """
    buf = make_buffer(64, 2, (1,), np.int64)
    buf.start(np.array([[0], [20]]))
    steps = [  # (rewards, terminated, truncated, next states, real)
        ([1, 1], [0, 0], [0, 0], [1, 21], [1, 1]),
        ([2, 1], [0, 0], [0, 0], [2, 22], [1, 1]),
        ([4, 1], [1, 0], [0, 0], [3, 23], [1, 1]),
        ([0, 1], [0, 0], [0, 1], [10, 24], [0, 1]),  # env 0 autoresets to 10
        ([8, 0], [0, 0], [0, 0], [11, 30], [1, 0]),  # env 1 autoresets to 30
    ]
    for rewards, term, trunc, nxt, real in steps:
        buf.add(
            np.zeros(2, dtype=np.int64),
            np.array(rewards, dtype=np.float32),
            np.array(term, dtype=bool),
            np.array(trunc, dtype=bool),
            np.array(nxt)[:, None],
            np.array(real, dtype=bool),
        )
    return buf


def test_n_step_targets_across_a_terminal_and_a_truncation_with_two_envs():
    gamma = 0.5
    q_next = np.zeros((40, 2), dtype=np.float32)
    q_next[:, 1] = np.arange(40)  # max Q_target(s') = s'
    module = DQN(Table(q_next.tolist()), gamma=gamma, lr=1e-3)
    buf = n_step_buffer()
    # (env, slot) -> hand-computed 3-step target
    cases = {
        (0, 0): 1 + 0.5 * 2 + 0.25 * 4,  # hits the terminal after 3 rewards: no bootstrap
        (0, 1): 2 + 0.5 * 4,  # window of 2, terminal
        (0, 2): 4,  # the terminal transition itself
        (0, 4): 8 + 0.5 * 11,  # after the reset: the newest step cuts the window to 1
        (1, 0): 1 + 0.5 + 0.25 + 0.125 * 23,  # full window, bootstraps from state 23
        (1, 1): 1 + 0.5 + 0.25 + 0.125 * 24,  # ends at the truncation: bootstraps from 24
        (1, 2): 1 + 0.5 + 0.25 * 24,  # truncation after 2 steps: gamma^2
        (1, 3): 1 + 0.5 * 24,
    }
    envs = np.array([e for e, _ in cases])
    slots = np.array([s for _, s in cases])
    batch = buf.storage.gather(envs, slots, n_step=3)
    assert batch["n_steps"].tolist() == [3, 2, 1, 1, 3, 3, 2, 1]
    target = module.td_target(batch)
    assert target.tolist() == pytest.approx(list(cases.values()))
    # the window never runs into the next episode: env 0's slot 3 holds the final state only
    assert not buf.storage.has_next[0, 3] and not buf.storage.has_next[1, 5]


def test_n_step_rewards_are_clipped_before_discounting():
    module = DQN(Table([[0.0, 0.0]]), gamma=0.5, lr=1e-3, reward_clip=True)
    batch = one_step_batch(
        rewards=torch.tensor([[25.0, -3.0, 0.0]]),
        n_steps=torch.tensor([2]),
        next_obs=torch.tensor([0]),
        terminated=torch.tensor([1.0]),
    )
    assert module.td_target(batch).item() == pytest.approx(1 - 0.5)


# --- Prioritized replay -----------------------------------------------------------------------


def test_sum_tree_sampling_frequencies_match_priorities():
    priorities = np.array([1.0, 0.0, 2.0, 3.0, 0.0, 4.0, 10.0, 0.5, 0.0, 2.5])
    tree = SumTree(len(priorities))
    tree.update(np.arange(len(priorities)), priorities)
    assert tree.total == pytest.approx(priorities.sum()) and tree.min_positive == 0.5
    # the descent finds exactly the leaf whose prefix-sum interval holds the mass
    mass = np.random.default_rng(0).random(10_000) * tree.total
    exact = np.searchsorted(np.cumsum(priorities), mass, side="right")
    assert (tree.find(mass) == exact).all()
    # the sampler's stratified draws: frequencies proportional to priority
    sampler = PrioritizedSampler(size=len(priorities), alpha=1.0, beta_steps=1, seed=0)
    sampler.tree = tree
    storage = FrameStorage(capacity=8, num_envs=1, obs_shape=(1,), obs_dtype=np.int64)
    draws = np.concatenate([sampler.sample(storage, 1000, env_steps=0)[0] for _ in range(200)])
    counts = np.bincount(draws, minlength=len(priorities))
    expected = len(draws) * priorities / priorities.sum()
    assert counts[priorities == 0].sum() == 0  # empty leaves are never drawn
    # chi-square with 6 degrees of freedom: 99.9th percentile is 22.5
    live = priorities > 0
    chi2 = (((counts[live] - expected[live]) ** 2) / expected[live]).sum()
    assert chi2 < 22.5, (counts, expected)


def test_sum_tree_update_touches_one_path():
    size = 1000
    tree = SumTree(size)
    tree.update(np.arange(size), np.ones(size))
    before = tree.sum.copy()
    tree.update(np.array([123]), np.array([5.0]))
    changed = np.flatnonzero(tree.sum != before)
    # O(log n): the leaf and its ancestors, nothing else
    assert tree.depth == math.ceil(math.log2(size)) == 10
    assert len(changed) == tree.depth + 1
    assert tree.total == pytest.approx(size - 1 + 5.0)


def test_sum_tree_leaf_by_leaf_updates_equal_the_vectorised_ones_bit_for_bit():
    """Every agent step updates a few leaves one at a time (the fast path); the tree must be
    exactly what the level-by-level path makes, duplicates (the last value wins) and emptied
    leaves included, or a run with prioritized replay would draw other batches."""
    rng, size = np.random.default_rng(0), 1000
    few, many = SumTree(size), SumTree(size, few_leaves=0)
    start = rng.random(size) * (rng.random(size) > 0.2)
    few.update(np.arange(size), start)
    many.update(np.arange(size), start)
    for _ in range(300):
        n = int(rng.integers(1, few.few_leaves + 1))
        idx = rng.integers(0, size, n)
        if n > 1 and rng.random() < 0.3:
            idx[-1] = idx[0]  # a duplicate leaf
        values = rng.random(n) * (rng.random(n) > 0.3)  # some leaves emptied
        few.update(idx, values)
        many.update(idx, values)
    np.testing.assert_array_equal(few.sum, many.sum)
    np.testing.assert_array_equal(few.min, many.min)
    assert few.total == pytest.approx(few.values().sum())


def test_prioritized_sampler_weights_and_updates():
    # a storage of one env with 8 slots (capacity 7 + the newest frame) and no frame stacks
    storage = FrameStorage(capacity=7, num_envs=1, obs_shape=(1,), obs_dtype=np.int64)
    sampler = PrioritizedSampler(
        size=storage.size, alpha=0.5, beta=0.4, beta_steps=1000, eps=0.0, seed=0
    )
    sampler.on_write(storage, 7, np.arange(4))  # writing slot 7 clears slot 7 only
    assert sampler.tree.get(np.arange(8)).tolist() == [1, 1, 1, 1, 0, 0, 0, 0]  # max priority
    sampler.update_priority(np.arange(4), np.array([1.0, 4.0, 9.0, 16.0]))
    # p = |td|^alpha
    assert sampler.tree.get(np.arange(4)).tolist() == pytest.approx([1, 2, 3, 4])
    assert sampler.max_priority == 4.0
    assert sampler.beta(0) == 0.4 and sampler.beta(500) == pytest.approx(0.7)
    assert sampler.beta(1000) == 1.0 and sampler.beta(5000) == 1.0
    idx, weights = sampler.sample(storage, 64, env_steps=500)
    p = np.array([1.0, 2.0, 3.0, 4.0])[idx]
    # w = (N P(i))^-beta / max_j w_j = (p_i / p_min)^-beta
    assert weights == pytest.approx((p / 1.0) ** -0.7, rel=1e-5)
    assert weights.max() <= 1.0
    # a cleared slot stays cleared even if a stale batch updates it
    sampler.on_write(storage, 2, np.empty(0, dtype=np.int64))
    sampler.update_priority(np.array([2]), np.array([100.0]))
    assert sampler.tree.get(np.array([2]))[0] == 0.0


def test_importance_weights_are_relative_to_the_batch_not_the_buffers_smallest_priority():
    """One stored transition with a TD error of ~0 (priority eps**alpha) must not shrink every
    update: measured against the buffer's smallest priority, every weight here was 2.5e-4."""
    storage = FrameStorage(capacity=1023, num_envs=1, obs_shape=(1,), obs_dtype=np.int64)
    sampler = PrioritizedSampler(
        size=storage.size, alpha=0.6, beta=0.4, beta_steps=1000, eps=1e-6, seed=0
    )
    sampler.on_write(storage, 1023, np.arange(1000))
    td = np.ones(1000)
    td[0] = 0.0
    sampler.update_priority(np.arange(1000), td)
    idx, weights = sampler.sample(storage, 32, env_steps=1000)  # beta 1
    assert 0 not in idx and weights.tolist() == [1.0] * 32  # equal priorities, equal weights
    # within a batch the weights still undo the sampling bias: (p_i / p_min)^-beta
    sampler.update_priority(np.arange(1, 1000), np.linspace(0.1, 10.0, 999))
    idx, weights = sampler.sample(storage, 64, env_steps=1000)
    p = sampler.tree.get(idx)
    assert weights.max() == 1.0 and weights == pytest.approx(p.min() / p, rel=1e-5)


def test_importance_weights_scale_each_sample_loss():
    module = DQN(Table([[1.0, 2.0], [0.0, 0.0]]), gamma=0.5, lr=1e-3, loss="mse")
    batch = {
        "obs": torch.tensor([0, 0]),
        "actions": torch.tensor([0, 1]),
        "rewards": torch.tensor([3.0, 3.0]),
        "next_obs": torch.tensor([1, 1]),
        "terminated": torch.tensor([1.0, 1.0]),
        "truncated": torch.tensor([0.0, 0.0]),
        "weights": torch.tensor([0.5, 1.0]),
    }
    loss, _, td = module.td_loss(batch)
    assert td.tolist() == [2.0, 1.0]
    assert loss.item() == pytest.approx((0.5 * 4.0 + 1.0 * 1.0) / 2)


def test_prioritized_sampling_only_draws_complete_transitions_of_the_storage():
    """Over the same frame storage, after wrap-around, with stacks: only valid (env, slot)s."""
    stack = 4
    buf = make_buffer(
        200, 3, (stack, 2, 2), np.uint8, stack=stack, prioritized={"beta_steps": 1000}
    )
    store = buf.storage
    rng = np.random.default_rng(1)
    obs = np.zeros((3, stack, 2, 2), dtype=np.uint8)
    buf.start(obs)
    autoreset = np.zeros(3, dtype=bool)
    for t in range(1, 700):
        term = rng.random(3) < 0.05
        obs = np.full((3, stack, 2, 2), t % 256, dtype=np.uint8)
        buf.add(
            rng.integers(4, size=3),
            rng.random(3).astype(np.float32),
            term & ~autoreset,
            np.zeros(3, dtype=bool),
            obs,
            ~autoreset,
        )
        autoreset = term & ~autoreset
        if t % 5 == 0 and len(buf) >= 32:
            batch = buf.sample(32, n_step=3, env_steps=t)
            flat = batch["indices"].numpy()
            envs, slots = flat // store.slots, flat % store.slots
            assert store.has_next[envs, slots].all()
            age = (slots - store.cursor) % store.slots  # 0 = oldest slot in the ring
            assert (age >= stack - 1).all()  # stacks never reach into overwritten frames
            buf.update_priority(flat, rng.random(32) * 5)
    # the tree's live leaves are exactly the uniform sampler's sampleable transitions
    live = buf.sampler.tree.values().reshape(3, store.slots) > 0
    age = (np.arange(store.slots) - store.cursor) % store.slots
    assert (live == (store.has_next & (age >= stack - 1)[None, :])).all()


# --- real trainings ---------------------------------------------------------------------------

SWITCHES = {
    "double": ("algo.double=true",),
    "dueling": ("model=dueling_mlp",),
    "n_step": ("algo.n_step=3",),
    "prioritized": ("buffer=prioritized",),
    "rainbow_lite": ("+experiment=rainbow_lite", "env.num_envs=2"),
}
# What each switch must have set in the run's own config (a dropped switch fails its own case).
EXPECTED = {
    "double": {"algo.double": True},
    "dueling": {"model.dueling": True},
    "n_step": {"algo.n_step": 3},
    "prioritized": {"buffer.sampler": "prioritized"},
}
EXPECTED["rainbow_lite"] = {
    k: v
    for name in ("double", "dueling", "n_step", "prioritized")
    for k, v in EXPECTED[name].items()
} | {"env.num_envs": 2}
DEFAULTS = {
    "algo.double": False,
    "model.dueling": False,
    "algo.n_step": 1,
    "buffer.sampler": "uniform",
}


def assert_switches_took_effect(run_dir, expected: dict) -> None:
    """The config the run logged has exactly these switches; where a switch leaves a trace in
    the run's files, the trace is there too: a dueling network's weights have value and
    advantage streams, a prioritized replay's checkpoint holds priorities learned from TD
    errors (not only the initial maximum), a uniform one none."""
    config = json.loads((run_dir / "config.json").read_text())
    for key, default in DEFAULTS.items():
        assert config[key] == expected.get(key, default), (key, config[key])
    weights = torch.load(run_dir / "checkpoints" / "last.pt", weights_only=True)["q_net"]
    dueling = any(".advantage." in k for k in weights) and any(".value." in k for k in weights)
    assert dueling == expected.get("model.dueling", False), sorted(weights)
    replay = np.load(next((run_dir / "checkpoints").glob("replay-*.npz")))
    if expected.get("buffer.sampler") == "prioritized":
        priorities = replay["sampler.priorities"]
        assert len(np.unique(priorities[priorities > 0])) > 10  # updated from TD errors
    else:
        assert "sampler.priorities" not in replay.files


@pytest.mark.parametrize("name", list(SWITCHES))
def test_each_extension_trains_and_stays_finite(tmp_path, name):
    run_dir = tmp_path / "run"
    proc = run_train(
        "env=cartpole",
        *SWITCHES[name],
        "total_steps=3000",
        "learning_starts=500",
        "eval.every=1500",
        "eval.episodes=3",
        "logger=none",
        "logger.every=250",
        f"hydra.run.dir={run_dir}",
        "progress=false",
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "finished" and summary["grad_steps"] >= 2400
    losses = [v for _, v in read_metrics(run_dir, "train/loss")]
    assert len(losses) >= 8 and all(math.isfinite(v) for v in losses)
    assert_switches_took_effect(run_dir, EXPECTED[name])


def test_rainbow_lite_on_atari_frames_with_vector_envs(tmp_path):
    run_dir = tmp_path / "run"
    proc = run_train(
        "env=pong",
        "+experiment=rainbow_lite",
        "env.backend=ale_vector",
        "env.num_envs=2",
        "total_steps=1200",
        "learning_starts=400",
        "buffer.capacity=2000",
        "train_freq=8",
        "eval.every=1200",
        "eval.episodes=1",
        "env.max_episode_steps=300",
        "logger=none",
        "logger.every=200",
        f"hydra.run.dir={run_dir}",
        "progress=false",
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    losses = [v for _, v in read_metrics(run_dir, "train/loss")]
    assert losses and all(math.isfinite(v) for v in losses)
    summary = json.loads((run_dir / "summary.json").read_text())
    # one update per 8 agent steps from 400 to 1,200, on the C++ vector env's two envs
    assert summary["env_steps"] >= 1200 and 95 <= summary["grad_steps"] <= 101, summary
    config = json.loads((run_dir / "config.json").read_text())
    assert config["env.backend"] == "ale_vector" and config["model.name"] == "nips_cnn"
    assert_switches_took_effect(run_dir, EXPECTED["rainbow_lite"])
    weights = torch.load(run_dir / "checkpoints" / "last.pt", weights_only=True)["q_net"]
    assert weights["trunk.0.weight"].shape == (16, 4, 8, 8)  # env=pong's NIPS-2013 trunk, 4 frames
    evals = [v for _, v in read_metrics(run_dir, "eval/return_mean")]
    assert evals and all(-21 <= v <= 21 and v == int(v) for v in evals)  # whole Pong scores


def test_extension_switches_are_a_sweep_space(tmp_path):
    import optuna

    proc = run_sweep(
        f"sweep={ROOT / 'sweeps' / 'cartpole_extensions.yaml'}",
        "study=ext",
        "n_trials=2",
        f"out={tmp_path / 'out'}",
        f"presets_dir={tmp_path}",
        "total_steps=1500",
        "learning_starts=300",
        "eval.every=750",
        "eval.episodes=2",
        "logger=none",
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    study = optuna.load_study(study_name="ext", storage=f"sqlite:///{tmp_path}/out/ext/study.db")
    trials = study.get_trials()
    assert len(trials) == 2 and all(t.state.name in ("COMPLETE", "PRUNED") for t in trials)
    assert {"algo.double", "model", "algo.n_step", "buffer"} <= set(trials[0].params)
    # each trial ran the switches it was given
    for t in trials:
        config = json.loads(
            (tmp_path / "out" / "ext" / "trials" / f"{t.number:04d}-s0" / "config.json").read_text()
        )
        assert config["algo.double"] == t.params["algo.double"]
        assert config["algo.n_step"] == t.params["algo.n_step"]
        assert config["model.dueling"] == (t.params["model"] == "dueling_mlp")
        assert config["buffer.sampler"] == (
            "prioritized" if t.params["buffer"] == "prioritized" else "uniform"
        )


def test_prioritized_replay_resumes_with_its_priorities(tmp_path):
    from dqn_harness.run.checkpoint import load_replay

    run_dir = tmp_path / "run"
    args = ("logger=none", "progress=false")
    proc = run_train(
        "env=cartpole",
        "buffer=prioritized",
        "total_steps=2000",
        "learning_starts=500",
        "eval.every=1000",
        "eval.episodes=2",
        f"hydra.run.dir={run_dir}",
        *args,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    replay = next((run_dir / "checkpoints").glob("replay-*.npz"))
    saved = np.load(replay)["sampler.priorities"]
    # learned priorities: not all equal to the initial max priority, none on empty slots
    assert len(np.unique(saved[saved > 0])) > 100
    buf = make_buffer(50_000, 1, (4,), np.float32, prioritized={"beta_steps": 2000})
    load_replay(replay, buf.load_state_dict)
    assert np.array_equal(buf.sampler.tree.values(), saved)
    assert buf.sampler.tree.total == pytest.approx(saved.sum())
    proc = run_train(f"resume={run_dir}", "total_steps=3000", *args, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads((run_dir / "summary.json").read_text())["env_steps"] == 3000
    # a uniform config cannot continue a prioritized checkpoint
    proc = run_train(f"resume={run_dir}", "buffer=default", "total_steps=4000", cwd=tmp_path)
    assert proc.returncode == 2 and "buffer.sampler" in proc.stderr


def test_the_n_step_schedule_recedes_geometrically_from_learning_starts():
    n = NStepSchedule(start=10, end=3, steps=1000, begin=100)
    assert [n(t) for t in (0, 100)] == [10, 10]  # fixed through the warm-up
    assert n(600) == round(10 * 0.3**0.5) == 5  # geometric, not linear (6.5 -> 6)
    assert [n(1100), n(10**6)] == [3, 3]
    values = [n(t) for t in range(0, 1200, 10)]
    assert values == sorted(values, reverse=True)
    assert NStepSchedule(start=4, end=None, steps=1, begin=0)(10**6) == 4


def test_an_annealed_n_step_trains_with_windows_that_shrink_as_scheduled(tmp_path, monkeypatch):
    """The windows of the batches that reach the update shrink as scheduled: n = 6 at
    learning_starts (500), 6 * (2/6)^((step - 500) / 1000) rounded in between, 2 from 1,500 on,
    written out here rather than asked of NStepSchedule. A sampler that ignored the schedule
    would hand the update 6-step windows throughout."""
    from omegaconf import OmegaConf

    from dqn_harness.config import compose_config, validate
    from dqn_harness.dqn.module import DQN
    from dqn_harness.run.runner import run
    from tests.conftest import CONF

    seen: list[tuple[int, int, int]] = []
    update = DQN.training_step

    def recording(self, batch, batch_idx):  # the real update, with the batch written down
        seen.append(
            (int(batch["env_steps"]), batch["rewards"].shape[1], int(batch["n_steps"].max()))
        )
        return update(self, batch, batch_idx)

    monkeypatch.setattr(DQN, "training_step", recording)
    cfg = compose_config(
        CONF,
        [
            "env=cartpole",
            "algo.n_step=6",
            "algo.n_step_end=2",
            "algo.n_step_steps=1000",
            "total_steps=2500",
            "learning_starts=500",
            "eval.every=2500",
            "eval.episodes=2",
            "logger=none",
            "logger.every=100",
            "progress=false",
            "run_name=annealed",
        ],
    )
    validate(cfg)
    summary = run(cfg, tmp_path / "run")
    assert summary["status"] in ("finished", "solved")

    def scheduled(step: int) -> int:
        frac = min(max(step - 500, 0), 1000) / 1000
        return int(round(6 * (2 / 6) ** frac))

    assert len(seen) >= 1900 and seen[0][0] == 500
    for step, width, longest in seen:
        assert width == scheduled(step), (step, width)  # the windows the update trains on
        assert longest <= width  # a window stops at an episode's end, never runs past n
    widths = [w for _, w, _ in seen]
    assert widths[0] == 6 and widths[-1] == 2 and widths == sorted(widths, reverse=True)
    assert {w for _, w, _ in seen} == {6, 5, 4, 3, 2}
    assert max(longest for _, w, longest in seen if w == 6) == 6  # full windows do occur
    assert OmegaConf.select(cfg, "algo.n_step_end") == 2
    logged = read_metrics(tmp_path / "run", "train/n_step")
    assert all(n == scheduled(step) for step, n in logged), logged  # and it is logged as such
    losses = [v for _, v in read_metrics(tmp_path / "run", "train/loss")]
    assert losses and all(math.isfinite(v) for v in losses)


def train_reading_the_rate(monkeypatch, run_dir, *keys: str) -> list[tuple[int, float]]:
    """Train CartPole to 2,000 agent steps (learning from 500, lr 1e-3) with ``keys``, in this
    process, and return (agent step, rate) for every update: the rate read from the real
    optimizer after the update, so a rate computed but never handed to Adam shows."""
    from dqn_harness.config import compose_config, validate
    from dqn_harness.run.runner import run
    from tests.conftest import CONF

    seen: list[tuple[int, float]] = []
    update = DQN.training_step

    def recording(self, batch, batch_idx):  # the real update, then the rate it applied
        loss = update(self, batch, batch_idx)
        seen.append((int(batch["env_steps"]), self.trainer.optimizers[0].param_groups[0]["lr"]))
        return loss

    monkeypatch.setattr(DQN, "training_step", recording)
    quiet = ["eval.episodes=2", "logger=none", "logger.every=100", "progress=false"]
    base = ["env=cartpole", "optim.lr=1e-3", "total_steps=2000", "learning_starts=500"]
    cfg = compose_config(CONF, [*base, *quiet, *keys])
    validate(cfg)
    assert run(cfg, run_dir)["status"] in ("finished", "solved")
    return seen


def test_the_learning_rate_decays_linearly_in_the_optimizer_from_learning_starts(
    tmp_path, monkeypatch
):
    """optim.lr_end: the rate Adam applies at each update is lr (1e-3) at learning_starts
    (500), falls linearly to lr_end (1e-5) at lr_steps (1,500), written out here rather than
    asked of LrSchedule, and stays there. A schedule logged but never handed to the optimizer
    would leave Adam at 1e-3 throughout."""
    seen = train_reading_the_rate(
        monkeypatch, tmp_path / "run", "optim.lr_end=1e-5", "optim.lr_steps=1500",
        "eval.every=2000", "run_name=decayed",
    )  # fmt: skip

    def scheduled(step: int) -> float:
        return 1e-3 + min(max(step - 500, 0), 1000) / 1000 * (1e-5 - 1e-3)

    assert len(seen) >= 1400 and seen[0] == (500, pytest.approx(1e-3))
    for step, lr in seen:
        assert lr == pytest.approx(scheduled(step), rel=1e-9), (step, lr)
    assert seen[-1][1] == pytest.approx(1e-5)
    logged = read_metrics(tmp_path / "run", "train/lr")
    assert logged and all(lr == pytest.approx(scheduled(s), abs=2e-5) for s, lr in logged)


@pytest.mark.parametrize("score", [0.0, 1e6])
def test_the_learning_rate_drops_after_the_first_evaluation_that_reaches_the_score(
    tmp_path, monkeypatch, capsys, score
):
    """optim.lr_drop_score / lr_drop_to: the rate Adam applies is 1e-3 up to and including the
    update whose agent step the evaluation at 1,000 judged, 1e-5 for every update after it
    when that evaluation reached the score (CartPole's mean is > 0), and 1e-3 throughout when
    no evaluation can (1e6). The run says so in one line, and logs it."""
    seen = train_reading_the_rate(
        monkeypatch, tmp_path / "run", f"optim.lr_drop_score={score}", "optim.lr_drop_to=1e-5",
        "eval.every=1000", "eval.stop_on_solve=false", "run_name=dropped",
    )  # fmt: skip
    dropped = score <= 0

    def expected(step: int) -> float:
        return 1e-5 if dropped and step > 1000 else 1e-3

    assert len(seen) >= 1400 and sum(step > 1000 for step, _ in seen) >= 900
    for step, lr in seen:
        assert lr == pytest.approx(expected(step), rel=1e-9), (step, lr)
    logged = read_metrics(tmp_path / "run", "train/lr")
    assert logged and all(lr == pytest.approx(expected(s)) for s, lr in logged)
    said = "learning rate 0.001 -> 1e-05 from agent step 1,000 (evaluation mean"
    assert (said in capsys.readouterr().err) is dropped


def test_a_dropped_learning_rate_stays_dropped_when_the_run_resumes(tmp_path):
    """The drop is state: a run that dropped at its evaluation at 500 and resumes to 2,000
    with no evaluation before the end trains every later update at lr_drop_to. Without the
    state in the checkpoint it would climb back to optim.lr until the next evaluation."""
    keys = ("env=cartpole", "optim.lr=1e-3", "optim.lr_drop_score=0", "optim.lr_drop_to=1e-5")
    quiet = ("eval.episodes=2", "eval.stop_on_solve=false", "logger=none", "logger.every=100")
    first = run_train(
        *keys, *quiet, "learning_starts=200", "total_steps=1000", "eval.every=500",
        "hydra.run.dir=run", cwd=tmp_path,
    )  # fmt: skip
    assert first.returncode == 0, first.stderr
    again = run_train("resume=run", "total_steps=2000", "eval.every=100000", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    logged = read_metrics(tmp_path / "run", "train/lr")
    later = [lr for step, lr in logged if step > 1000]
    assert len(later) >= 9 and all(lr == pytest.approx(1e-5) for lr in later), logged


def test_a_learning_rate_schedule_that_makes_no_sense_is_one_line(tmp_path):
    for args, expected in (
        (("optim.lr_end=-1e-5",), "error: optim.lr_end: must be > 0"),
        (("optim.lr_end=1e-5", "optim.lr_steps=400"), "error: optim.lr_steps: 400 is not after"),
        (("optim.lr_steps=4000",), "error: optim.lr_steps: needs optim.lr_end"),
        (("optim.lr_drop_score=15",), "error: optim.lr_drop_score: needs optim.lr_drop_to"),
        (("optim.lr_drop_to=3e-5",), "error: optim.lr_drop_to: needs optim.lr_drop_score"),
        (("optim.lr_drop_score=15", "optim.lr_drop_to=-3e-5"), "error: optim.lr_drop_to: must be"),
        (
            ("optim.lr_drop_score=15", "optim.lr_drop_to=3e-5", "optim.lr_end=1e-5"),
            "error: optim.lr_drop_score: choose one of",
        ),
    ):
        done = run_train("env=cartpole", "learning_starts=500", *args, "logger=none", cwd=tmp_path)
        assert done.returncode == 2 and done.stderr.strip().startswith(expected), done.stderr
        assert "Traceback" not in done.stderr
