"""Where a Nature-CNN update's time goes on CPU, and what each of the harness's choices buys.

    .venv/bin/python experiments/bench/update_cost.py [--updates 300] [--repeats 3]

One DQN update (target forward on next_obs, online forward and backward on obs, Adam step; batch
32 of 4x84x84 uint8) and one batch-1 acting forward, timed in a fresh subprocess per variant (the
allocator setting is process-wide, so variants must not share a process), variants interleaved
over ``--repeats`` rounds, medians reported, ratios against PyTorch's defaults from the same
command:

- default: per-tensor Adam, NCHW convolutions, glibc's default allocator thresholds (what a
  single-file DQN such as CleanRL's gets);
- +fused: ``Adam(fused=True)`` (``optim.fused``);
- +channels_last: NHWC convolutions (``trainer.channels_last``);
- +allocator: ``dqn_harness.perf.tune_allocator`` (what ``run()`` does), i.e. the harness.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

VARIANTS = {
    "default": dict(fused=False, channels_last=False, allocator=False),
    "+fused": dict(fused=True, channels_last=False, allocator=False),
    "+channels_last": dict(fused=True, channels_last=True, allocator=False),
    "+allocator": dict(fused=True, channels_last=True, allocator=True),
}

CHILD = r"""
import copy, json, sys, time
sys.path.insert(0, {src!r})
opts = json.loads({opts!r})
if opts["allocator"]:
    from dqn_harness.perf import tune_allocator
    assert tune_allocator()
import torch
import torch.nn.functional as F
from dqn_harness.nets import NatureCNN
torch.manual_seed(0)
obs = torch.randint(0, 256, (32, 4, 84, 84), dtype=torch.uint8)
nxt = torch.randint(0, 256, (32, 4, 84, 84), dtype=torch.uint8)
act = torch.randint(0, 6, (32,))
rew = torch.randn(32)
net = NatureCNN(4, 6, channels_last=opts["channels_last"])
target = copy.deepcopy(net)
opt = torch.optim.Adam(net.parameters(), lr=1e-4, eps=1e-8, fused=opts["fused"])
one = obs[:1].clone()
updates, acts = [], []
for i in range({updates}):
    t = time.perf_counter()
    with torch.no_grad():
        y = rew + 0.99 * target(nxt).max(1).values
    q = net(obs).gather(1, act[:, None]).squeeze(1)
    loss = F.mse_loss(q, y)
    opt.zero_grad()
    loss.backward()
    opt.step()
    updates.append(time.perf_counter() - t)
    for _ in range(4):  # train_freq 4: four acting forwards per update
        t = time.perf_counter()
        with torch.no_grad():
            net(one).argmax(1)
        acts.append(time.perf_counter() - t)
skip = {updates} // 10
print(json.dumps({{"update_ms": 1e3 * sorted(updates[skip:])[len(updates[skip:]) // 2],
                   "act_ms": 1e3 * sorted(acts[4 * skip:])[len(acts[4 * skip:]) // 2]}}))
"""


def measure(opts: dict[str, bool], updates: int) -> dict[str, float]:
    code = CHILD.format(src=str(ROOT / "src"), opts=json.dumps(opts), updates=updates)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--updates", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=3)
    a = parser.parse_args()
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in VARIANTS}
    names = list(VARIANTS)
    for r in range(a.repeats):
        for name in names if r % 2 == 0 else names[::-1]:
            runs[name].append(measure(VARIANTS[name], a.updates))
    med = {
        name: {k: statistics.median(m[k] for m in v) for k in ("update_ms", "act_ms")}
        for name, v in runs.items()
    }
    base = med["default"]
    cycle = {n: m["update_ms"] + 4 * m["act_ms"] for n, m in med.items()}
    print(f"Nature-CNN on CPU, batch 32 (median of {a.repeats} processes x {a.updates} updates)")
    print(f"  {'variant':<16}{'update ms':>10}{'act ms':>8}{'update+4 acts':>15}{'speed-up':>10}")
    for name, m in med.items():
        print(
            f"  {name:<16}{m['update_ms']:10.2f}{m['act_ms']:8.3f}{cycle[name]:15.2f}"
            f"{(base['update_ms'] + 4 * base['act_ms']) / cycle[name]:9.2f}x"
        )
    print(json.dumps(med))


if __name__ == "__main__":
    main()
