"""What subnormal floats cost a trained network's update on CPU, and what flushing them saves.

    .venv/bin/python experiments/bench/denormals.py --checkpoint RUN_DIR/checkpoints/last.pt \
        [--updates 60] [--repeats 3]

A fresh network's update (``update_cost.py``) never meets a subnormal float, but a trained
one's does: Adam's moments of units whose gradient is exactly zero (dead ReLUs) decay by 0.9
and 0.999 per update through the subnormal range (below 1.2e-38), where x86 arithmetic is
~100x slower. So this benchmark starts from a real run's checkpoint (weights, target net and
Adam state), counts the subnormals in it, and times the update (target forward, online
forward, backward, gradient clipping, fused Adam) on real Pong frames, with the CPU's FTZ/DAZ
mode off (IEEE, torch's default) and on (``trainer.flush_denormal=true``, the harness's
default). Each mode runs in a fresh subprocess (the mode is per thread and torch's threads
inherit it when they start), modes interleaved over ``--repeats`` rounds, medians reported,
the first line naming the CPU.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "src"))

from dqn_harness.perf import cpu_description  # noqa: E402

CHILD = r"""
import copy, json, sys, time
sys.path.insert(0, {src!r})
import numpy as np
import torch
from dqn_harness.perf import flush_denormals, tune_allocator
tune_allocator()
mode = flush_denormals({flush})  # before any other torch work: the pool inherits it
import torch.nn.functional as F
from omegaconf import OmegaConf
from dqn_harness.config import EnvConfig
from dqn_harness.envs import make_vec_env
from dqn_harness.nets import CONVS, NatureCNN
ck = torch.load({checkpoint!r}, map_location="cpu", weights_only=True)
model = ck["config"]["model"]  # the checkpoint's own network (env=pong's: nips_cnn)
net = NatureCNN(4, ck["q_net"]["head.2.weight"].shape[0], hidden=model["hidden"],
                channels_last=True, convs=CONVS[model["name"]])
net.load_state_dict(ck["q_net"])
target = copy.deepcopy(net)
target.load_state_dict(ck["target_net"])
opt = torch.optim.Adam(net.parameters(), lr=1e-4, eps=1.5e-4, fused=True)
opt.load_state_dict(ck["optimizer"])
env = make_vec_env(OmegaConf.structured(EnvConfig(name="pong", id="ALE/Pong-v5")), 1)
obs, _ = env.reset(seed=0)
rng = np.random.default_rng(0)
frames = []
for _ in range(200):
    obs, *_ = env.step(rng.integers(env.single_action_space.n, size=1))
    frames.append(obs[0])
obs_b = torch.from_numpy(np.stack(frames[100:132]))
next_b = torch.from_numpy(np.stack(frames[110:142]))
actions = torch.from_numpy(rng.integers(env.single_action_space.n, size=32))
rewards = torch.zeros(32)
parts = []
for i in range({updates} + 5):
    t0 = time.perf_counter()
    with torch.no_grad():
        y = rewards + 0.99**10 * target(next_b).max(1).values
    q = net(obs_b).gather(1, actions[:, None]).squeeze(1)
    loss = F.smooth_l1_loss(q, y)
    t1 = time.perf_counter()
    opt.zero_grad()
    loss.backward()
    t2 = time.perf_counter()
    torch.nn.utils.clip_grad_norm_(net.parameters(), 10.0)
    t3 = time.perf_counter()
    opt.step()
    t4 = time.perf_counter()
    if i >= 5:
        parts.append((t1 - t0, t2 - t1, t3 - t2, t4 - t3))
med = [1e3 * float(np.median([p[k] for p in parts])) for k in range(4)]
print(json.dumps({{"mode": mode, "threads": torch.get_num_threads(), "forward": med[0],
                   "backward": med[1], "clip": med[2], "adam": med[3], "update": sum(med)}}))
"""

PARTS = ("forward", "backward", "clip", "adam", "update")


def subnormals(checkpoint: str) -> tuple[dict[str, tuple[int, int]], int, str]:
    """(subnormal, all) values of the checkpoint's weights and of each Adam moment, the agent
    step it was saved at and the network it trained (env=pong's: nips_cnn)."""
    import torch

    ck = torch.load(checkpoint, map_location="cpu", weights_only=True)
    tiny = torch.finfo(torch.float32).tiny
    count: dict[str, list[int]] = {}

    def add(name: str, t: torch.Tensor) -> None:
        c = count.setdefault(name, [0, 0])
        c[0] += int(((t != 0) & (t.abs() < tiny)).sum())
        c[1] += t.numel()

    for t in ck["q_net"].values():
        add("weights", t.float())
    for state in ck["optimizer"]["state"].values():
        for key in ("exp_avg", "exp_avg_sq"):
            add(key, state[key].float())
    counts = {k: (v[0], v[1]) for k, v in count.items()}
    return counts, int(ck["env_steps"]), str(ck["config"]["model"]["name"])


def measure(checkpoint: str, flush: bool, updates: int) -> dict[str, float]:
    code = CHILD.format(src=str(ROOT / "src"), checkpoint=checkpoint, flush=flush, updates=updates)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", required=True, help="a DQN run's last.pt or best.pt")
    parser.add_argument("--updates", type=int, default=60)
    parser.add_argument("--repeats", type=int, default=3)
    a = parser.parse_args()
    if not Path(a.checkpoint).is_file():
        print(f"error: --checkpoint: no such file: {a.checkpoint}", file=sys.stderr)
        sys.exit(2)
    counts, env_steps, ck_model = subnormals(a.checkpoint)  # one read of the checkpoint
    runs: dict[bool, list[dict[str, float]]] = {False: [], True: []}
    for r in range(a.repeats):
        for flush in (False, True) if r % 2 == 0 else (True, False):
            runs[flush].append(measure(a.checkpoint, flush, a.updates))
    med = {f: {p: statistics.median(m[p] for m in v) for p in PARTS} for f, v in runs.items()}
    updates = {f: [m["update"] for m in v] for f, v in runs.items()}
    spread = {f: (min(u), max(u)) for f, u in updates.items()}
    threads = runs[False][0]["threads"]
    print(
        f"{cpu_description()}: {ck_model} update from {a.checkpoint} (agent step {env_steps:,}), "
        f"{threads} threads "
        f"(median of {a.repeats} processes x {a.updates} updates per mode)"
    )
    for name, (n, total) in counts.items():
        print(f"  subnormal {name}: {n:,} of {total:,} ({100 * n / total:.2f}%)")
    print(f"  {'mode':<28}" + "".join(f"{p + ' ms':>12}" for p in PARTS) + "   update range")
    for flush, label in ((False, "IEEE subnormals (off)"), (True, "flushed (FTZ/DAZ, harness)")):
        lo, hi = spread[flush]
        row = "".join(f"{med[flush][p]:>12.2f}" for p in PARTS)
        print(f"  {label:<28}{row}   {lo:.2f}-{hi:.2f}")
    ratio = {p: med[False][p] / med[True][p] for p in PARTS}
    print("  off / flushed:            " + "".join(f"{ratio[p]:>11.2f}x" for p in PARTS))
    if not all(m["mode"] is True for m in runs[True]):
        print("  warning: the flushed runs' probe did not find every thread flushing")
    print(json.dumps({"cpu": cpu_description(), "subnormals": counts, "median_ms": med}))


if __name__ == "__main__":
    main()
