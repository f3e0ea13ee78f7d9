"""Training throughput: the full harness (what train.py runs) against a bare PyTorch DQN loop.

    .venv/bin/python experiments/bench/train_throughput.py [--steps 4000] [--warmup 1000]
        [--repeats 2] [--backend gymnasium] [--num-envs 1] [--epsilon 0.01] [--device cpu]
    .venv/bin/python experiments/bench/train_throughput.py --preset pong [--steps 1500]
        [--warmup 1000] [--repeats 2] [--profile]

The first line names the CPU (model, cores, AVX512-BF16, AMX).

``--preset classic`` (the default):

Both sides train DQN on Pong with CleanRL's Atari hyperparameters (batch 32, one update every 4
agent steps, Adam 1e-4 with eps 1e-8, MSE loss, no gradient clipping, target sync every 1000
agent steps, γ 0.99, sign-clipped rewards in the target) on the same env backend, the same Nature
CNN and the same number of agent steps and updates.

- harness: ``dqn_harness.run.runner.run`` on a config composed exactly as ``python train.py``
  composes it (Lightning trainer, replay stream, compact frame replay, collector, W&B offline
  logging, progress bookkeeping, summary and checkpoints).
- bare: one plain loop, the way a single-file DQN is written: ε-greedy from the same network,
  ``env.step``, stacked ``obs``/``next_obs`` copied into preallocated uint8 tensors, a uniform
  batch indexed out of them, ``loss.backward()``, ``optimizer.step()``, a hard target copy. It is
  the limit: nothing but the work DQN must do, with the same kernels the harness picks (fused
  Adam, NHWC convolutions on CPU), so the ratio measures what the harness itself adds.
- bare_default: the same loop with PyTorch's defaults (per-tensor Adam, NCHW), as CleanRL's
  ``dqn_atari.py`` runs; harness / bare_default is what a researcher gains by switching.

ε is held at ``--epsilon`` (default 0.01, where a Pong run spends most of its steps) so every agent
step runs the acting forward pass. Steps/s are taken over the training window only (after
``--warmup`` agent steps, which fill the replay and warm the allocator), from ``perf/wall_s`` in
the harness's metrics.jsonl and from the loop's own clock. Runs alternate bare/harness
``--repeats`` times and the ratio is of the medians, so drift on a noisy machine hits both sides.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "src"))

from dqn_harness.config import compose_config  # noqa: E402
from dqn_harness.envs import make_vec_env  # noqa: E402
from dqn_harness.nets import NatureCNN  # noqa: E402
from dqn_harness.perf import cpu_description, native_bf16, tune_allocator  # noqa: E402
from dqn_harness.run.runner import run  # noqa: E402
from dqn_harness.tracking.metrics import read_metrics  # noqa: E402

LOG_EVERY = 500


def window(a: argparse.Namespace, out: Path) -> list[str]:
    """What every timed run shares: ε held, ``--warmup`` steps before learning, ``--steps``
    timed, no evaluation inside the window, no progress bar, W&B offline under ``out``."""
    total = a.warmup + a.steps
    return [
        f"schedule.epsilon.start={a.epsilon}",
        f"schedule.epsilon.end={a.epsilon}",
        f"learning_starts={a.warmup}",
        f"total_steps={total}",
        f"buffer.capacity={total}",
        f"eval.every={10 * total}",  # no evaluation inside the window
        "eval.episodes=1",
        f"logger.every={LOG_EVERY}",
        f"logger.save_dir={out}",
        "progress=false",
        f"trainer={'gpu' if a.device == 'cuda' else 'cpu'}",
    ]


def overrides(a: argparse.Namespace, out: Path) -> list[str]:
    return [
        "env=pong",
        "model=nature_cnn",  # the network the bare loop builds, whatever env=pong trains
        f"env.backend={a.backend}",
        f"env.num_envs={a.num_envs}",
        "batch_size=32",
        "train_freq=4",
        "algo.n_step=1",  # the classic DQN the baseline loop implements, whatever env=pong holds
        "trainer.precision=32-true",
        "optim.lr=1e-4",
        "optim.eps=1e-8",
        "algo.loss=mse",
        "algo.max_grad_norm=null",
        "algo.target_sync=1000",
        *window(a, out),
    ]


def harness(a: argparse.Namespace, out: Path, i: int, args: list[str] | None = None) -> float:
    args = overrides(a, out) if args is None else args
    cfg = compose_config(ROOT / "conf", args + [f"run_name=bench-{i}"])
    run_dir = out / f"bench-{i}"
    run(cfg, run_dir)
    walls = read_metrics(run_dir, "perf/wall_s")
    window = [(s, t) for s, t in walls if s >= a.warmup]
    (s0, t0), (s1, t1) = window[0], window[-1]
    return (s1 - s0) / (t1 - t0)


def bare(a: argparse.Namespace, out: Path, same_kernels: bool) -> float:
    """``same_kernels``: the harness's fused Adam and NHWC convolutions (else PyTorch defaults)."""
    cfg = compose_config(ROOT / "conf", overrides(a, out))
    device = torch.device(a.device)
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    env = make_vec_env(cfg.env, a.num_envs)
    n, n_actions = a.num_envs, int(env.single_action_space.n)
    channels_last = same_kernels and cfg.trainer.channels_last
    q_net = NatureCNN(4, n_actions, channels_last=channels_last).to(device)
    target = copy.deepcopy(q_net)
    fused = same_kernels and cfg.optim.fused
    opt = torch.optim.Adam(q_net.parameters(), lr=1e-4, eps=1e-8, fused=fused)
    cap = a.warmup + a.steps + n
    obs_buf = torch.zeros((cap, 4, 84, 84), dtype=torch.uint8)
    next_buf = torch.zeros((cap, 4, 84, 84), dtype=torch.uint8)
    act_buf = torch.zeros(cap, dtype=torch.int64)
    rew_buf = torch.zeros(cap)
    term_buf = torch.zeros(cap)
    size = 0
    obs, _ = env.reset(seed=0)
    autoreset = np.zeros(n, dtype=bool)
    steps, next_update, next_sync, t0 = 0, a.warmup, 1000, 0.0
    while steps < a.warmup + a.steps:
        if steps >= a.warmup and not t0:
            t0, s0 = time.perf_counter(), steps
        if rng.random() < a.epsilon:
            actions = rng.integers(n_actions, size=n)
        else:
            with torch.no_grad():
                actions = q_net(torch.as_tensor(obs, device=device)).argmax(1).cpu().numpy()
        next_obs, rewards, terminated, truncated, _ = env.step(actions)
        for e in np.flatnonzero(~autoreset):  # gymnasium 1.x: skip the autoreset step
            obs_buf[size] = torch.from_numpy(obs[e])
            next_buf[size] = torch.from_numpy(next_obs[e])
            act_buf[size], rew_buf[size] = int(actions[e]), float(rewards[e])
            term_buf[size] = float(terminated[e])
            size += 1
            steps += 1
        autoreset = terminated | truncated
        obs = next_obs
        while steps >= next_update:
            next_update += 4
            idx = torch.from_numpy(rng.integers(size, size=32))
            b_obs, b_next = obs_buf[idx].to(device), next_buf[idx].to(device)
            b_r, b_t = rew_buf[idx].to(device), term_buf[idx].to(device)
            with torch.no_grad():
                y = torch.sign(b_r) + 0.99 * (1 - b_t) * target(b_next).max(1).values
            q = q_net(b_obs).gather(1, act_buf[idx].to(device).unsqueeze(1)).squeeze(1)
            loss = F.mse_loss(q, y)
            opt.zero_grad()
            loss.backward()
            opt.step()
        if steps >= next_sync:
            next_sync += 1000
            target.load_state_dict(q_net.state_dict())
    if device.type == "cuda":
        torch.cuda.synchronize()
    elapsed = time.perf_counter() - t0
    env.close()
    return (steps - s0) / elapsed


def accounting(a: argparse.Namespace, out: Path, rounds: int = 3) -> dict[str, float]:
    """The harness's own costs, each timed against its bare equivalent in alternation.

    End-to-end steps/s on a shared machine drift by ±10% between runs, more than the few percent
    the harness adds, so this measures the pieces with the network's compute taken out:
    - Lightning's per-update cost: ``Trainer.fit`` over a stream of ready batches against a plain
      ``zero_grad/backward/step`` loop, with a tiny MLP so the maths is negligible;
    - the collector's per-agent-step cost (ε-greedy bookkeeping, replay write, the progress
      bar and summary hooks)
      against a bare ``env.step`` with a copy into a preallocated array;
    - replay sampling (stacks rebuilt from frames) against indexing stored stacks.
    """
    import gymnasium as gym
    import pytorch_lightning as pl
    from torch.utils.data import DataLoader, IterableDataset

    from dqn_harness.collector import Collector
    from dqn_harness.dqn.learner import quiet_lightning
    from dqn_harness.dqn.module import DQN
    from dqn_harness.nets import MLP
    from dqn_harness.replay import ReplayBuffer
    from dqn_harness.tracking.progress import ProgressBar
    from dqn_harness.tracking.summary import RunSummary

    quiet_lightning()
    small = {
        "obs": torch.randn(32, 4),
        "next_obs": torch.randn(32, 4),
        "actions": torch.randint(0, 2, (32,)),
        "rewards": torch.randn(32),
        "terminated": torch.zeros(32),
        "truncated": torch.zeros(32),
        "env_steps": 0,  # the clock a batch carries (ReplayStream stamps it)
    }
    n_updates = 1500

    class Stream(IterableDataset):
        def __init__(self) -> None:
            self.times: list[float] = []

        def __iter__(self):  # type: ignore[no-untyped-def]
            for _ in range(n_updates):
                self.times.append(time.perf_counter())
                yield small

    def module() -> DQN:
        net = MLP(gym.spaces.Box(-1, 1, (4,)), 2, [8])
        return DQN(net, gamma=0.99, lr=1e-4, loss="mse", fused=True)

    def lightning_ms() -> float:
        m, stream = module(), Stream()
        pl.Trainer(
            accelerator="cpu",
            max_epochs=1,
            logger=False,
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
        ).fit(m, DataLoader(stream, batch_size=None))
        t = stream.times[100:]
        return 1e3 * (t[-1] - t[0]) / (len(t) - 1)

    def plain_ms() -> float:
        m = module()
        opt = m.configure_optimizers()
        t = []
        for _ in range(n_updates):
            t.append(time.perf_counter())
            loss, _, _ = m.td_loss(small)
            opt.zero_grad()
            loss.backward()
            opt.step()
        t = t[100:]
        return 1e3 * (t[-1] - t[0]) / (len(t) - 1)

    cfg = compose_config(ROOT / "conf", overrides(a, out) + ["logger=none"])
    env = make_vec_env(cfg.env, a.num_envs)
    buffer = ReplayBuffer.uniform(
        capacity=20_000, num_envs=a.num_envs, obs_shape=(4, 84, 84), obs_dtype=np.uint8, stack=4
    )
    (out / "acct").mkdir(exist_ok=True)
    bar = ProgressBar(cfg.total_steps, cfg.learning_starts, enabled=False)
    run_summary = RunSummary(out / "acct")

    def on_step(env_steps: int, epsilon: float) -> None:  # what the runner hooks in
        run_summary.on_step(env_steps)
        bar.on_step(env_steps, epsilon)

    zeros = np.zeros(a.num_envs, dtype=np.int64)
    collector = Collector(
        env=env,
        policy=lambda o: zeros,
        epsilon_schedule=lambda s: 0.0,
        buffer=buffer,
        on_step=on_step,
    )
    collector.start()
    store = np.zeros((20_000, a.num_envs, 4, 84, 84), dtype=np.uint8)
    n_steps = 2000

    def collector_ms() -> float:
        t = time.perf_counter()
        for _ in range(n_steps):
            collector.step()
        return 1e3 * (time.perf_counter() - t) / (n_steps * a.num_envs)

    def env_ms() -> float:
        t = time.perf_counter()
        for i in range(n_steps):
            o = env.step(zeros)[0]
            store[i] = o
        return 1e3 * (time.perf_counter() - t) / (n_steps * a.num_envs)

    stacked = np.zeros((20_000, 4, 84, 84), dtype=np.uint8)
    stacked[:] = 1
    rng = np.random.default_rng(0)

    def sample_ms() -> float:
        t = time.perf_counter()
        for _ in range(2000):
            buffer.sample(32)
        return 1e3 * (time.perf_counter() - t) / 2000

    def index_ms() -> float:
        t = time.perf_counter()
        for _ in range(2000):
            idx = rng.integers(len(stacked), size=32)
            torch.from_numpy(stacked[idx]), torch.from_numpy(stacked[(idx + 1) % len(stacked)])
        return 1e3 * (time.perf_counter() - t) / 2000

    pairs = {
        "lightning": (lightning_ms, plain_ms),
        "collector": (collector_ms, env_ms),
        "sample": (sample_ms, index_ms),
    }
    cost: dict[str, list[float]] = {k: [] for k in pairs}
    for _ in range(rounds):
        for name, (ours, theirs) in pairs.items():
            cost[name].append(ours() - theirs())
    bar.close(0)
    env.close()
    return {f"{k}_ms": statistics.median(v) for k, v in cost.items()}


def pong_overrides(a: argparse.Namespace, out: Path) -> list[str]:
    """``env=pong`` as ``python train.py env=pong`` runs it (its network, its update rate and
    batch, its n-step returns), in the shared timing window."""
    return ["env=pong", *window(a, out)]


def isolated_cycle_ms(updates: int) -> float:
    """ms per agent step of env=pong's update cycle alone: one update of env=pong's batch at the
    precision train.py picks on this CPU, shared by its ``train_freq`` agent steps, and one
    batch-1 acting forward per agent step (``update_cost.py``'s child process)."""
    sys.path.insert(0, str(Path(__file__).parent))
    from update_cost import HARNESS, measure, per_agent_step_ms

    pong = compose_config(ROOT / "conf", ["env=pong"])  # what env=pong trains, as it trains it
    model = dict(model=pong.model.name, hidden=list(pong.model.hidden))
    opts = dict(HARNESS, train_freq=pong.train_freq, batch=pong.batch_size, **model)
    if native_bf16():  # where train.py keeps bf16-mixed (elsewhere it falls back to 32-true)
        opts.update(bf16=True, half_target=True)
    return per_agent_step_ms(measure(opts, updates))


def profile_pong(a: argparse.Namespace, out: Path, top: int = 12) -> None:
    """The real loop under torch.profiler: which operators the learning phase spends its time
    in (the profiler's own overhead inflates the small ones)."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        harness(a, out, 99, pong_overrides(a, out))
    events = sorted(prof.key_averages(), key=lambda e: -e.self_cpu_time_total)
    total = sum(e.self_cpu_time_total for e in events)
    print(f"profile of one harness run ({a.warmup} warm-up + {a.steps} learning agent steps):")
    for e in events[:top]:
        share = 100 * e.self_cpu_time_total / total
        print(f"  {e.key:<44}{share:6.1f}%  {e.count:>8} calls")


def main_pong(a: argparse.Namespace) -> None:
    """The full harness against its isolated update cycle, interleaved in one command."""
    print(
        f"{cpu_description()}: env=pong through the harness vs its isolated update cycle; "
        f"{a.steps} agent steps timed after {a.warmup}, {a.repeats} repeats, ε={a.epsilon}"
    )
    harness_ms, cycle_ms = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(a.repeats):
            for side in ("isolated", "harness") if i % 2 == 0 else ("harness", "isolated"):
                if side == "harness":
                    sps = harness(a, Path(tmp), i, pong_overrides(a, Path(tmp)))
                    harness_ms.append(1e3 / sps)
                else:
                    cycle_ms.append(isolated_cycle_ms(max(a.steps // 5, 20)))
                ms = (harness_ms if side == "harness" else cycle_ms)[-1]
                print(f"  {side:<10}{ms:7.2f} ms per agent step", flush=True)
        h, c = statistics.median(harness_ms), statistics.median(cycle_ms)
        print(
            f"median: harness {h:.2f} ms per agent step ({1e3 / h:.1f} agent steps/s), isolated "
            f"update cycle {c:.2f} ms: harness / isolated {h / c:.3f}; the harness adds "
            f"{h - c:.2f} ms per agent step (the emulator, frames, replay, logging)"
        )
        if a.profile:
            profile_pong(a, Path(tmp))
    print(
        json.dumps(
            {
                "cpu": cpu_description(),
                "harness_ms": harness_ms,
                "isolated_ms": cycle_ms,
                "ratio": h / c,
            }
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=4000, help="agent steps timed")
    parser.add_argument("--warmup", type=int, default=1000, help="agent steps before the window")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--backend", default="gymnasium", choices=["gymnasium", "ale_vector"])
    parser.add_argument("--num-envs", type=int, default=1)
    parser.add_argument("--epsilon", type=float, default=0.01)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--preset", default="classic", choices=["classic", "pong"])
    parser.add_argument("--profile", action="store_true", help="--preset pong: profile one run")
    a = parser.parse_args()
    tune_allocator()  # process-wide, and run() sets it anyway: every side runs with it
    os.environ.setdefault("WANDB_MODE", "offline")
    os.environ.setdefault("WANDB_SILENT", "true")
    if a.preset == "pong":
        return main_pong(a)
    print(
        f"{cpu_description()}: Pong, {a.backend} x{a.num_envs}, {a.device}, ε={a.epsilon}: "
        f"{a.steps} agent steps timed after {a.warmup}, {a.repeats} repeats, "
        f"torch threads {torch.get_num_threads()}"
    )
    runs = {
        "bare": lambda tmp, i: bare(a, tmp, same_kernels=True),
        "harness": lambda tmp, i: harness(a, tmp, i),
        "bare_default": lambda tmp, i: bare(a, tmp, same_kernels=False),
    }
    results: dict[str, list[float]] = {name: [] for name in runs}
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(a.repeats):
            order = list(runs)[i % 3 :] + list(runs)[: i % 3]  # rotate: no side always first
            for name in order:
                results[name].append(runs[name](Path(tmp), i))
                print(f"  {name:<13}{results[name][-1]:7.1f} agent steps/s", flush=True)
        acct = accounting(a, Path(tmp))
    med = {name: statistics.median(v) for name, v in results.items()}
    print(
        f"median agent steps/s: bare {med['bare']:.1f}, harness {med['harness']:.1f}, "
        f"bare with PyTorch's default kernels {med['bare_default']:.1f}\n"
        f"harness / bare (same kernels): {med['harness'] / med['bare']:.3f}   "
        f"harness / bare (default kernels, CleanRL-style): "
        f"{med['harness'] / med['bare_default']:.3f}"
    )
    cycle_ms = 1e3 * 4 / med["bare"]  # one update and its 4 agent steps, at the bare loop's rate
    extra = acct["lightning_ms"] + 4 * acct["collector_ms"] + acct["sample_ms"]
    print(
        f"accounted harness cost per update cycle ({cycle_ms:.1f} ms at the bare rate): "
        f"Lightning {acct['lightning_ms']:.3f} ms + collector 4 x {acct['collector_ms']:.3f} ms "
        f"+ replay sampling {acct['sample_ms']:.3f} ms = {extra:.2f} ms "
        f"({100 * extra / cycle_ms:.1f}%): expected ratio {cycle_ms / (cycle_ms + extra):.3f}"
    )
    print(json.dumps({"median_sps": med, "runs": results, "accounting_ms": acct}))


if __name__ == "__main__":
    main()
