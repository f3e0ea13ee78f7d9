"""Resumable checkpoint of a Pong run: its size with a 100k-transition replay, and write time.

    .venv/bin/python experiments/bench/checkpoint_cost.py [--capacity 100000] [--repeats 3]

Fills the compact buffer through its own API, builds the Nature-CNN networks and Adam state as
a run holds them, then times ``training.checkpoint.write_state`` (replay file + state.pt, each
written to a temporary name, fsync'ed and renamed) against a plain ``torch.save`` of the same
networks alone, in the same process and directory. Then reads the replay back into a fresh
buffer twice, as a resume does (``load_replay``: each array streamed in chunks) and as a plain
``np.load`` and copy would, and prints the peak memory each needs above the buffer itself
(tracemalloc, which sees NumPy's allocations) and the time each takes.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "experiments" / "bench"))

from replay_throughput import fill  # noqa: E402

from dqn_harness.nets import NatureCNN  # noqa: E402
from dqn_harness.perf import cpu_description  # noqa: E402
from dqn_harness.run.checkpoint import load_replay, write_state  # noqa: E402


def peak_of(load: Callable[[], None]) -> tuple[float, float]:
    """Peak bytes traced while ``load`` runs (the buffer exists already), and its seconds."""
    tracemalloc.start()
    t = time.perf_counter()
    load()
    seconds = time.perf_counter() - t
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return float(peak), seconds


def read_back(buffer, path: Path) -> None:
    """Peak memory and time of reading a replay file into ``buffer``: the resume's streamed
    read against reading each array whole and copying it, alternating, 2 rounds each."""

    def whole() -> None:
        with np.load(path) as data:
            for name in buffer.storage.ARRAYS:
                getattr(buffer.storage, name)[...] = data[f"storage.{name}"]

    streamed: list[tuple[float, float]] = []
    plain: list[tuple[float, float]] = []
    for _ in range(2):
        streamed.append(peak_of(lambda: load_replay(path, buffer.load_state_dict)))
        plain.append(peak_of(whole))
    s_peak, s_time = max(p for p, _ in streamed), min(t for _, t in streamed)
    w_peak, w_time = max(p for p, _ in plain), min(t for _, t in plain)
    print(
        f"resume's read of that replay: peak {s_peak / 2**20:,.0f} MiB above the buffer in "
        f"{s_time:.2f} s; np.load whole and copy: {w_peak / 2**20:,.0f} MiB in {w_time:.2f} s "
        f"(memory {s_peak / w_peak:.3f}x, time {s_time / w_time:.2f}x)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--capacity", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=3)
    a = parser.parse_args()
    print(cpu_description())
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
        replay_file = next(d.glob("replay-*.npz"))
        replay = replay_file.stat().st_size
        small = (d / "state.pt").stat().st_size
        read_back(buffer, replay_file)
    write_s, nets_s = sorted(full)[len(full) // 2], sorted(nets)[len(nets) // 2]
    print(
        f"checkpoint with a {a.capacity:,}-transition Atari replay: "
        f"{(replay + small) / 2**20:,.0f} MiB (replay {replay / 2**20:,.0f} MiB, "
        f"state.pt {small / 2**20:.1f} MiB); write {write_s:.2f} s "
        f"(networks alone {nets_s:.3f} s, {write_s / nets_s:.0f}x)"
    )


if __name__ == "__main__":
    main()
