"""Resume after SIGKILL and after Ctrl-C, from real training subprocesses; bad resume input."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

from dqn_harness.perf import cpu_description
from dqn_harness.replay.storage import FrameStorage

from .conftest import ROOT, run_train

BASE = ["env=cartpole", "total_steps=1000000", "eval.every=1000000", "progress=false"]


def start(run_dir: Path, *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, str(ROOT / "train.py"), *BASE, f"hydra.run.dir={run_dir}", *args],
        cwd=run_dir.parent,
        env={**os.environ, "WANDB_MODE": "offline"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def state_of(run_dir: Path) -> dict:
    return torch.load(run_dir / "checkpoints" / "state.pt", weights_only=True)


def wait_for(predicate, proc: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return
        assert proc.poll() is None, proc.communicate()[1][-2000:]
        time.sleep(0.2)
    raise AssertionError("timed out")


def replay_arrays(run_dir: Path, state: dict) -> dict[str, np.ndarray]:
    with np.load(run_dir / "checkpoints" / state["replay_file"]) as data:
        return {k: data[f"storage.{k}"] for k in FrameStorage.ARRAYS}


def replay_meta(run_dir: Path, state: dict) -> dict:
    with np.load(run_dir / "checkpoints" / state["replay_file"]) as data:
        return json.loads(bytes(data["meta"]).decode())["storage"]


def logged_steps(run_dir: Path, key: str) -> list[int]:
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    return [json.loads(ln)["env_steps"] for ln in lines if key in json.loads(ln)]


def test_kill_9_loses_at_most_one_checkpoint_interval(tmp_path):
    run_dir = tmp_path / "run"
    proc = start(run_dir, "logger=none", "checkpoint.every=1000", "logger.every=250")

    def checkpointed() -> bool:
        path = run_dir / "checkpoints" / "state.pt"
        return path.exists() and state_of(run_dir)["env_steps"] >= 2000

    wait_for(checkpointed, proc)
    seed = int(os.environ.get("KILL_SEED", time.time_ns() % 2**32))
    delay = random.Random(seed).uniform(0.0, 3.0)  # a random moment, maybe mid-save
    print(f"SIGKILL after {delay:.2f}s (KILL_SEED={seed} repeats it)")
    time.sleep(delay)
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    before = state_of(run_dir)
    steps = before["env_steps"]
    # what the name promises: the checkpoint is at most one interval behind the kill. Records
    # are flushed at each checkpoint, which is taken at the update of the batch sampled one
    # agent step (train_freq) before the collector's count that state.pt holds.
    last_logged = max(logged_steps(run_dir, "train/epsilon"))
    assert steps - 1 <= last_logged < steps + 1000 + 250, (steps, last_logged)
    buffer_before = replay_arrays(run_dir, before)
    cursor = replay_meta(run_dir, before)["cursor"]
    assert before["replay_file"] == f"replay-{steps}.npz"
    assert len(list((run_dir / "checkpoints").glob("replay-*.npz"))) <= 2  # at most mid-swap

    extra = 1500
    resumed = run_train(f"resume={run_dir}", f"total_steps={steps + extra}", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    summary = json.loads((run_dir / "summary.json").read_text())
    after = state_of(run_dir)
    assert summary["env_steps"] == after["env_steps"] == steps + extra
    assert summary["episodes"] > before["collector"]["episodes"]
    assert summary["cpus"] == [cpu_description()]  # resumed on the same machine: named once
    # one gradient step per agent step (CartPole's train_freq 1), continuing the count
    assert abs(summary["grad_steps"] - (before["learner"]["grad_steps"] + extra)) <= 2
    # Adam's step count came back with the optimizer state
    adam_step = next(iter(after["learner"]["optimizer"]["state"].values()))["step"]
    assert abs(float(adam_step) - summary["grad_steps"]) <= 2
    # every slot written before the kill is still in the ring, unchanged (the ring has not
    # wrapped: CartPole's buffer holds 50,000); the newest of them never gets a transition
    buffer_after = replay_arrays(run_dir, after)
    assert cursor > steps > 0 and replay_meta(run_dir, after)["cursor"] > cursor
    for key in FrameStorage.ARRAYS:
        np.testing.assert_array_equal(
            buffer_after[key][:, :cursor], buffer_before[key][:, :cursor], err_msg=key
        )
    assert not buffer_after["has_next"][0, cursor - 1]
    assert buffer_after["ep_step"][0, cursor] == 0  # the resumed run starts a new episode
    # the curves carry on without repeating the steps the killed process logged after its save
    eps_steps = logged_steps(run_dir, "train/epsilon")
    assert eps_steps == sorted(set(eps_steps))
    assert eps_steps[-1] == (steps + extra) // 250 * 250  # the last logger.every boundary


def test_ctrl_c_checkpoints_and_resume_continues_the_same_wandb_run(tmp_path):
    run_dir = tmp_path / "run"
    proc = start(run_dir, "logger=wandb", "logger.save_dir=.", "checkpoint.every=1000000")
    metrics = run_dir / "metrics.jsonl"
    wait_for(lambda: metrics.exists() and "train/loss" in metrics.read_text(), proc)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err[-2000:]
    summary = json.loads((run_dir / "summary.json").read_text())
    state = state_of(run_dir)
    assert summary["status"] == "interrupted"
    assert state["env_steps"] == summary["env_steps"]  # the exit checkpoint is at the stop
    run_id = state["wandb_id"]
    assert run_id

    target = state["env_steps"] + 800
    resumed = run_train(f"resume={run_dir}", f"total_steps={target}", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert json.loads((run_dir / "summary.json").read_text())["env_steps"] == target
    assert state_of(run_dir)["wandb_id"] == run_id
    runs = sorted((tmp_path / "wandb").glob(f"offline-run-*-{run_id}"))
    assert len(runs) == 2, list((tmp_path / "wandb").iterdir())

    # bad resume input: one line naming the problem, exit 2, the run left as it was
    before = (run_dir / "summary.json").read_text()
    cases = [
        ([f"resume={tmp_path / 'nope'}"], "no run directory"),
        ([f"resume={run_dir}", "env=frozenlake", "algo=tabular"], "algo.name: the checkpoint"),
        ([f"resume={run_dir}", "model.hidden=[32]"], "model.hidden: the checkpoint"),
    ]
    state_file = run_dir / "checkpoints" / "state.pt"
    for args, expected in cases:
        proc2 = run_train(*args, cwd=tmp_path)
        assert proc2.returncode == 2 and expected in proc2.stderr, proc2.stderr
        assert "Traceback" not in proc2.stderr
    data = state_file.read_bytes()
    state_file.write_bytes(data[: len(data) // 2])
    proc2 = run_train(f"resume={run_dir}", cwd=tmp_path)
    assert proc2.returncode == 2 and "corrupt or truncated" in proc2.stderr, proc2.stderr
    assert "Traceback" not in proc2.stderr
    assert (run_dir / "summary.json").read_text() == before


def test_a_resume_streams_the_replay_frames_instead_of_holding_them_twice(tmp_path):
    """The frames are nearly all of a replay file (0.7 GB for Pong's 100k): a resume copies
    them into the new buffer a chunk at a time, so its memory peaks at the buffer plus a chunk,
    not at twice the frames. Measured with tracemalloc, which sees NumPy's allocations."""
    import tracemalloc

    from dqn_harness.run.checkpoint import READ_CHUNK, load_replay, save_replay

    def storage() -> FrameStorage:
        return FrameStorage(capacity=6_000, num_envs=1, obs_shape=(84, 84), obs_dtype=np.uint8)

    saved = storage()
    rng = np.random.default_rng(0)
    saved.frames[...] = rng.integers(0, 256, saved.frames.shape, dtype=np.uint8)
    saved.rewards[...] = rng.normal(size=saved.rewards.shape)
    saved.cursor, saved.written, saved.transitions = 17, 5_999, 5_990
    name = save_replay({"storage": saved.state_dict()}, tmp_path, 6_000)
    frames = saved.frames.nbytes
    assert frames > 8 * READ_CHUNK  # room for a few chunks to be told from the whole array
    loaded = storage()
    tracemalloc.start()
    load_replay(tmp_path / name, lambda state: loaded.load_state_dict(state["storage"]))
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    for key in FrameStorage.ARRAYS:
        assert np.array_equal(getattr(loaded, key), getattr(saved, key)), key
    assert (loaded.cursor, loaded.written, loaded.transitions) == (17, 5_999, 5_990)
    assert peak < frames / 2, (peak, frames)  # reading it whole first would be over frames
