"""Resumable checkpoint of a Pong run: its size with a 100k-transition replay, and write time.

    .venv/bin/python experiments/bench/checkpoint_cost.py [--capacity 100000] [--repeats 3]

Fills the compact buffer through its own API, builds the Nature-CNN networks and Adam state as
a run holds them, then times ``training.checkpoint.write_state`` (replay file + state.pt, each
written to a temporary name, fsync'ed and renamed) against a plain ``torch.save`` of the same
networks alone, in the same process and directory.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "experiments" / "bench"))

from replay_throughput import fill  # noqa: E402

from dqn_harness.nets import NatureCNN  # noqa: E402
from dqn_harness.run.checkpoint import write_state  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--capacity", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=3)
    a = parser.parse_args()
    buffer, _ = fill(a.capacity)
    net = NatureCNN(4, 6)
    opt = torch.optim.Adam(net.parameters(), fused=True)
    net(torch.zeros(32, 4, 84, 84, dtype=torch.uint8)).sum().backward()
    opt.step()
    state = {
        "q_net": net.state_dict(),
        "target_net": net.state_dict(),
        "optimizer": opt.state_dict(),
        "env_steps": a.capacity,
        "config": {},
    }
    with tempfile.TemporaryDirectory(dir=ROOT) as tmp:
        d = Path(tmp)
        full, nets = [], []
        for i in range(a.repeats):
            state["env_steps"] = a.capacity + i
            t = time.perf_counter()
            write_state(state, d, buffer.state_dict())
            full.append(time.perf_counter() - t)
            t = time.perf_counter()
            torch.save({k: state[k] for k in ("q_net", "target_net", "optimizer")}, d / "n.pt")
            nets.append(time.perf_counter() - t)
        replay = next(d.glob("replay-*.npz")).stat().st_size
        small = (d / "state.pt").stat().st_size
    write_s, nets_s = sorted(full)[len(full) // 2], sorted(nets)[len(nets) // 2]
    print(
        f"checkpoint with a {a.capacity:,}-transition Atari replay: "
        f"{(replay + small) / 2**20:,.0f} MiB (replay {replay / 2**20:,.0f} MiB, "
        f"state.pt {small / 2**20:.1f} MiB); write {write_s:.2f} s "
        f"(networks alone {nets_s:.3f} s, {write_s / nets_s:.0f}x)"
    )


if __name__ == "__main__":
    main()
