"""Checkpoints are data: no file the harness reads runs code.

Every ``.pt`` the harness writes loads with ``torch.load(weights_only=True)``; every entry point
that reads one refuses a file that needs more (a crafted pickle, an older harness's state.pt)
in one line that names the switch, ``trust_checkpoint=true``; the replay ``.npz`` is read
without ``allow_pickle``. The crafted file here would create a marker file the moment it was
unpickled, so a reader that unpickled it would leave the marker behind.
"""

from __future__ import annotations

import json
import random
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

from dqn_harness.run.checkpoint import restore_rng, rng_states
from tests.conftest import run_cli, run_train

RUN = (
    "env=cartpole",
    "total_steps=1500",
    "learning_starts=300",
    "checkpoint.every=500",
    "eval.every=500",
    "eval.episodes=2",
    "logger=none",
    "progress=false",
)


class WritesMarker:
    """Unpickling this calls ``open(marker, "w")``: a file appears if anything unpickled it."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


@pytest.fixture(scope="module")
def real_run(tmp_path_factory) -> Path:
    """A real CartPole run with state.pt, best.pt, last.pt and a replay file."""
    cwd = tmp_path_factory.mktemp("trust")
    run_dir = cwd / "run"
    done = run_train(*RUN, f"hydra.run.dir={run_dir}", cwd=cwd)
    assert done.returncode == 0, done.stderr
    return run_dir


def test_every_checkpoint_the_harness_writes_loads_as_data_only(real_run):
    ckpt = real_run / "checkpoints"
    for name in ("state.pt", "best.pt", "last.pt"):
        data = torch.load(ckpt / name, weights_only=True)
        assert data["env_steps"] > 0 and data["config"]["env"]["id"] == "CartPole-v1", name
    state = torch.load(ckpt / "state.pt", weights_only=True)
    with np.load(ckpt / state["replay_file"], allow_pickle=False) as replay:
        assert all(replay[name].dtype != object for name in replay.files)  # nothing pickled
        json.loads(bytes(replay["meta"]).decode())


def test_a_replay_file_holding_a_pickled_object_is_refused_and_runs_nothing(real_run, tmp_path):
    """The replay .npz is read without allow_pickle: an object array in it (which NumPy would
    unpickle) stops the resume in one line, before anything is unpickled."""
    marker = tmp_path / "MARKER"
    run_dir = tmp_path / "run"
    shutil.copytree(real_run, run_dir)
    state = torch.load(run_dir / "checkpoints" / "state.pt", weights_only=True)
    replay = run_dir / "checkpoints" / state["replay_file"]
    with np.load(replay) as data:
        arrays = {name: data[name] for name in data.files}
    arrays["storage.rewards"] = np.array([WritesMarker(marker)], dtype=object)
    with open(replay, "wb") as f:
        np.savez(f, **arrays)

    done = run_train(f"resume={run_dir}", "total_steps=2000", cwd=tmp_path)

    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    assert done.stderr.strip().startswith("error: resume: replay file"), done.stderr
    assert "allow_pickle" in done.stderr
    assert not marker.exists()


def test_the_global_rngs_round_trip_through_a_data_only_checkpoint(tmp_path):
    random.seed(1)
    np.random.seed(2)
    torch.manual_seed(3)
    np.random.standard_normal()  # a cached Gaussian is part of NumPy's state too
    torch.save(rng_states(), tmp_path / "rng.pt")
    expected = (random.random(), np.random.standard_normal(3), torch.rand(3))
    random.seed(9)
    np.random.seed(9)
    torch.manual_seed(9)
    restore_rng(torch.load(tmp_path / "rng.pt", weights_only=True))
    got = (random.random(), np.random.standard_normal(3), torch.rand(3))
    assert got[0] == expected[0]
    np.testing.assert_array_equal(got[1], expected[1])
    assert torch.equal(got[2], expected[2])


def test_resuming_from_the_same_checkpoint_twice_gives_the_same_run_bit_for_bit(real_run, tmp_path):
    """state.pt and its replay restore everything: two resumes from copies of one checkpoint
    learn the same weights to the last bit and log the same curve, evaluations included (the
    evaluation env is new after a resume, and must not draw its games' seeds from the OS)."""
    results = []
    for name in ("a", "b"):
        copy = tmp_path / name
        shutil.copytree(real_run, copy)
        done = run_train(f"resume={copy}", "total_steps=2500", cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        weights = torch.load(copy / "checkpoints" / "last.pt", weights_only=True)
        records = [json.loads(line) for line in (copy / "metrics.jsonl").read_text().splitlines()]
        losses = [r.get("train/loss") for r in records]
        evals = [
            (r["env_steps"], r["eval/return_mean"], r["eval/length_mean"])
            for r in records
            if "eval/return_mean" in r
        ]
        results.append((weights, losses, evals))
    (wa, la, ea), (wb, lb, eb) = results
    assert la == lb and any(v is not None for v in la)
    assert [step for step, *_ in ea if step > 1500] == [2000, 2500]
    assert ea == eb
    assert wa["env_steps"] == wb["env_steps"] == 2500
    for key in wa["q_net"]:
        assert torch.equal(wa["q_net"][key], wb["q_net"][key]), key
    first = torch.load(real_run / "checkpoints" / "last.pt", weights_only=True)
    assert not all(torch.equal(first["q_net"][k], wa["q_net"][k]) for k in first["q_net"])


def crafted(path: Path, marker: Path, like: Path) -> None:
    """A checkpoint shaped like ``like`` (config, agent step, weights) with the marker-writing
    object inside."""
    data = torch.load(like, weights_only=True)
    data["payload"] = WritesMarker(marker)
    torch.save(data, path)


def refused(done: subprocess.CompletedProcess, key: str, marker: Path) -> None:
    assert done.returncode == 2, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith(f"error: {key}: "), done.stderr
    assert "would run code" in lines[0] and "trust_checkpoint=true" in lines[0], lines[0]
    assert not marker.exists(), "the crafted checkpoint was unpickled"


def test_a_crafted_checkpoint_is_refused_by_every_reader_and_runs_nothing(real_run, tmp_path):
    marker = tmp_path / "MARKER"
    run_dir = tmp_path / "run"
    shutil.copytree(real_run, run_dir)
    ckpt = run_dir / "checkpoints"
    for name in ("state.pt", "best.pt", "last.pt"):
        crafted(ckpt / name, marker, real_run / "checkpoints" / name)
    # the file really does run code when unpickled: the test can fail
    torch.load(ckpt / "best.pt", weights_only=False)
    assert marker.exists()
    marker.unlink()

    loose = tmp_path / "sent-to-me.pt"
    shutil.copy(ckpt / "best.pt", loose)
    cases = [
        ("train.py", [f"resume={run_dir}"], "resume"),
        ("train.py", ["resume=auto", f"hydra.run.dir={run_dir}", *RUN], "resume"),
        ("evaluate.py", [f"run={run_dir}", "logger=none"], "checkpoint"),
        ("evaluate.py", [f"run={run_dir}", "checkpoint=last", "logger=none"], "checkpoint"),
        ("evaluate.py", [f"checkpoint={loose}", "logger=none"], "checkpoint"),
        ("export.py", [f"run={run_dir}", f"out={tmp_path / 'export'}"], "checkpoint"),
    ]
    for script, args, key in cases:
        refused(run_cli(script, *args, cwd=tmp_path, timeout=300), key, marker)
    assert not (tmp_path / "export").exists()


def test_an_older_checkpoint_needs_the_switch_and_loads_with_it(real_run, tmp_path):
    """A state.pt of the harness before checkpoints were data only (NumPy's RNG state as a
    pickled ndarray): refused with the switch named; with trust_checkpoint=true it resumes,
    and the checkpoint it writes then is data only again."""
    run_dir = tmp_path / "run"
    shutil.copytree(real_run, run_dir)
    state_file = run_dir / "checkpoints" / "state.pt"
    state = torch.load(state_file, weights_only=True)
    state["rng"]["numpy"] = np.random.get_state()  # the legacy tuple, as older runs saved it
    torch.save(state, state_file)
    with pytest.raises(Exception, match="numpy"):
        torch.load(state_file, weights_only=True)

    done = run_train(f"resume={run_dir}", "total_steps=2000", cwd=tmp_path)
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    line = done.stderr.strip()
    assert line.startswith("error: resume: ") and "trust_checkpoint=true" in line, line
    assert "numpy" in line  # it names what it refused

    done = run_train(f"resume={run_dir}", "total_steps=2000", "trust_checkpoint=true", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert torch.load(state_file, weights_only=True)["env_steps"] == 2000
    # the trust was for that file, not for the run: a later resume does not inherit it
    from dqn_harness.run.resume import resume_argv

    assert "trust_checkpoint=true" in (run_dir / ".hydra" / "overrides.yaml").read_text()
    argv, _ = resume_argv([f"resume={run_dir}"])
    assert not [a for a in argv if a.startswith("trust_checkpoint")], argv


def test_the_shipped_model_folder_loads_without_the_switch():
    """The shipped Pong model is safetensors and JSON: data, read without trust_checkpoint."""
    from dqn_harness.scoring.protocol import load_weights
    from tests.conftest import ROOT

    weights = load_weights(ROOT / "experiments" / "results" / "pong" / "model")
    assert "q_net" in weights and weights["config"]["env"]["id"] == "ALE/Pong-v5"
    assert all(isinstance(t, torch.Tensor) for t in weights["q_net"].values())
