"""A full disk during a run, for real: the run directory on a small tmpfs that is then filled.

Each case fills the disk so that one particular write is the first to fail (the replay file,
``state.pt``, a ``metrics.jsonl`` flush), runs the README's ``resume=`` command into it, and
checks what a user sees and what is left: one ``error:`` line naming the file (no traceback),
exit 2, no ``.tmp`` file, the last complete checkpoint, ``config.json``, ``summary.json`` and
``metrics.jsonl`` whole; then, once space is back, that ``resume=`` finishes the run.

The space each write needs is measured on the run itself (the replay file is the buffer's
whole capacity, so its size does not change between checkpoints), so the case does not depend
on file sizes written down here. Mounting needs root (CI runs as root); elsewhere the tests
skip and say why.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import torch

from tests.conftest import run_train

MOUNT_SIZE = "6m"
# CartPole with a small replay, a checkpoint every 500 agent steps, a metrics record every 10
# (so a flush writes more than the few KB the metrics case leaves), evaluation only at the end.
BASE = (
    "env=cartpole",
    "buffer.capacity=5000",
    "learning_starts=200",
    "checkpoint.every=500",
    "logger.every=10",
    "eval.every=100000",
    "eval.episodes=2",
    "logger=wandb",
    "progress=false",
)


@pytest.fixture
def tmpfs(tmp_path):
    """A fresh 6 MB tmpfs, unmounted afterwards; skipped where mounting is not allowed."""
    mnt = tmp_path / "small-disk"
    mnt.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root (CI runs as root)")
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={MOUNT_SIZE}", "tmpfs", str(mnt)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], check=False)


def fill(mnt: Path, leave: int) -> Path:
    """Fill ``mnt`` to the last byte, then give back ``leave`` bytes."""
    filler = mnt / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    try:
        for size in (1 << 20, 1 << 16, 4096, 1):  # big blocks first, then what is left
            block = b"\0" * size
            while True:
                try:
                    if os.write(fd, block) < size:
                        break
                except OSError:
                    break
    finally:
        os.close(fd)
    size = filler.stat().st_size
    os.truncate(filler, max(size - leave, 0))
    return filler


@pytest.fixture(scope="module")
def first_half(tmp_path_factory):
    """A real run to 1,000 agent steps (checkpoints at 500 and 1,000), on an ordinary disk."""
    cwd = tmp_path_factory.mktemp("disk-full")
    run_dir = cwd / "run"
    done = run_train(
        *BASE, "total_steps=1000", f"hydra.run.dir={run_dir}", f"logger.save_dir={cwd}", cwd=cwd
    )
    assert done.returncode == 0, done.stderr
    return run_dir


def whole(run_dir: Path, step: int) -> None:
    """What a failed write must leave: no temporary file, and every complete file readable."""
    assert not list(run_dir.rglob("*.tmp")), list(run_dir.rglob("*.tmp"))
    state = torch.load(run_dir / "checkpoints" / "state.pt", weights_only=True)
    assert state["env_steps"] == step
    assert (run_dir / "checkpoints" / state["replay_file"]).is_file()
    assert sorted(p.name for p in (run_dir / "checkpoints").glob("replay-*")) == [
        state["replay_file"]
    ]
    json.loads((run_dir / "config.json").read_text())
    json.loads((run_dir / "summary.json").read_text())
    for line in (run_dir / "metrics.jsonl").read_text().splitlines():
        json.loads(line)  # whole lines only


def one_error_line(done: subprocess.CompletedProcess, file_name: str) -> str:
    out = done.stdout + done.stderr
    assert "Traceback" not in out, out
    assert done.returncode == 2, out
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, done.stderr
    other = [
        line
        for line in done.stderr.splitlines()
        if line.strip() and not line.startswith(("error:", "W&B is offline", "  browse:"))
    ]
    assert not other, other
    line = errors[0]
    assert "no space left on device writing" in line and file_name in line, line
    assert "MB free" in line and "the last complete checkpoint is at step 1,000" in line, line
    return line


@pytest.mark.parametrize(
    ("moment", "file_name", "key"),
    [
        ("replay", "/checkpoints/replay-15", "checkpoint"),
        ("state", "/checkpoints/state.pt ", "checkpoint"),
        ("metrics", "/metrics.jsonl ", "hydra.run.dir"),
    ],
)
def test_a_full_disk_stops_the_run_in_one_line_and_resume_finishes_it(
    tmpfs, first_half, moment, file_name, key
):
    run_dir = tmpfs / "run"
    shutil.copytree(first_half, run_dir)
    ckpt = run_dir / "checkpoints"
    replay = ckpt / "replay-1000.npz"
    replay_bytes, state_bytes = replay.stat().st_size, (ckpt / "state.pt").stat().st_size
    leave = {
        "replay": replay_bytes // 2,  # the metrics flush fits, the new replay file does not
        "state": replay_bytes + state_bytes // 2,  # the replay fits, state.pt does not
        # enough to start (Hydra's files, train.py's 64 KB check), not for the records of
        # 1,000 agent steps logged at every step, flushed before the next checkpoint's files
        "metrics": 80 * 1024,
    }[moment]
    more = ("logger.every=1", "checkpoint.every=1000") if moment == "metrics" else ()
    wandb_dir = first_half.parent  # on the ordinary disk: W&B can record how the run ended
    filler = fill(tmpfs, leave)

    done = run_train(
        f"resume={run_dir}", "total_steps=2000", f"logger.save_dir={wandb_dir}", *more, cwd=tmpfs
    )

    line = one_error_line(done, file_name)
    assert line.startswith(f"error: {key}: "), line
    whole(run_dir, 1000)
    summary = json.loads((run_dir / "summary.json").read_text())
    if summary["status"] == "failed":  # written in the space the failed write gave back
        assert summary["error"] == line.removeprefix("error: ")
    else:  # the previous one, whole
        assert summary["env_steps"] == 1000
    record = wandb_summary(Path(done.stdout.split("W&B run: ")[1].split()[0]))
    assert record["exit_code"] == 1 and record["summary"]["status"] == "failed", record
    assert "failed" in record["tags"]

    filler.unlink()
    again = run_train(f"resume={run_dir}", "total_steps=2000", cwd=tmpfs)
    assert again.returncode == 0, again.stdout + again.stderr
    final = json.loads((run_dir / "summary.json").read_text())
    assert final["status"] in ("finished", "solved") and final["env_steps"] == 2000
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").open()]
    logged = [r["env_steps"] for r in records if "train/loss" in r]  # every 10 (or 1) steps
    gaps = {b - a for a, b in zip(logged, logged[1:], strict=False)}
    assert logged[0] == 200 and logged[-1] == 2000 and gaps <= {1, 10}, logged  # no repeat


def wandb_summary(run_dir: Path) -> dict:
    """An offline W&B run's exit code, tags and summary, as `wandb leet` decodes them."""
    leet = Path(sys.executable).parent / "wandb"
    done = subprocess.run(
        [str(leet), "leet", "inspect", "--summary", "--json", str(run_dir)],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(done.stdout)


def test_a_run_on_a_full_disk_is_refused_before_it_starts(tmpfs):
    """No space at all: one line before Hydra writes anything (it would fail with a traceback)."""
    filler = fill(tmpfs, 0)
    done = run_train(*BASE, "logger=none", f"hydra.run.dir={tmpfs / 'run'}", cwd=tmpfs)
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    assert done.stderr.strip().splitlines() == [
        f"error: hydra.run.dir: no space left on device at {tmpfs / 'run'} (0.0 MB free)"
    ]
    filler.unlink()


def test_resume_drops_a_torn_last_metrics_line_with_a_warning(first_half, tmp_path):
    """A kill (or a full disk, before this harness cut its own lines back) mid-write leaves
    half a line at the end of metrics.jsonl; resume used to die on it with a JSONDecodeError."""
    run_dir = tmp_path / "run"
    shutil.copytree(first_half, run_dir)
    metrics = run_dir / "metrics.jsonl"
    with open(metrics, "a") as f:
        f.write('{"env_steps": 1000, "train/lo')  # a record cut short, no newline

    done = run_train(f"resume={run_dir}", "total_steps=1500", "logger=none", cwd=tmp_path)

    assert done.returncode == 0, done.stderr
    warnings = [line for line in done.stderr.splitlines() if line.startswith("warning:")]
    assert any(str(metrics) in w and "not a whole record" in w for w in warnings), done.stderr
    records = [json.loads(line) for line in metrics.read_text().splitlines()]
    assert records[-1]["env_steps"] <= 1500
    assert not any("train/lo" in r for r in records)


def test_a_failed_write_removes_its_temporary_file_and_keeps_the_old_one(tmpfs):
    """``save_atomic`` on a full disk: the previous file stays, no ``.tmp`` is left, and the
    error names the file and the space left."""
    from dqn_harness.errors import DiskFull
    from dqn_harness.files import save_atomic, write_text_atomic

    target = tmpfs / "summary.json"
    write_text_atomic(target, '{"old": true}')
    filler = fill(tmpfs, 0)
    with pytest.raises(DiskFull) as caught:
        write_text_atomic(target, json.dumps({"new": "x" * 100_000}))
    assert json.loads(target.read_text()) == {"old": True}
    assert not list(tmpfs.glob("*.tmp"))
    assert str(target) in str(caught.value) and "MB free" in str(caught.value)
    with pytest.raises(ZeroDivisionError):  # any failure, not only a full disk
        save_atomic(b"", tmpfs / f"{uuid.uuid4().hex}", lambda obj, f: 1 / 0)
    assert not list(tmpfs.glob("*.tmp"))
    filler.unlink()


def test_a_full_disk_fails_the_trial_keeps_the_study_and_the_sweep_resumes(tmpfs, tmp_path):
    """sweep.py with its trials on the small disk (the study's database elsewhere): the trial
    that meets the full disk fails with the run's one line and is re-queued, the sweep stops
    (every later trial would fail alike), the finished trial is kept, and the same command
    finishes the study once there is space."""
    import optuna
    import yaml

    from tests.conftest import run_sweep

    spec = {
        "base": [
            "env=cartpole",
            "total_steps=1000",
            "learning_starts=200",
            "buffer.capacity=5000",
            "checkpoint.every=500",
            "eval.every=500",
            "eval.episodes=2",
            "logger=none",
            "progress=false",
        ],
        "space": {"optim.lr": {"type": "categorical", "choices": [1e-3, 5e-4]}},
        "objective": {"metric": "best_eval_return", "seeds": [0]},
        "sampler": {"name": "random", "seed": 0},
        "pruner": {"name": "none"},
    }
    sweep_file = tmp_path / "full_disk.yaml"
    sweep_file.write_text(yaml.safe_dump(spec))
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    args = [f"sweep={sweep_file}", "study=full_disk", f"out={tmpfs}", f"storage={storage}"]

    first = run_sweep(*args, "n_trials=1", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    filler = fill(tmpfs, 8 * 1024)  # config.json and the first metrics fit, a replay does not

    stopped = run_sweep(*args, "n_trials=2", cwd=tmp_path)

    assert stopped.returncode == 2 and "Traceback" not in stopped.stderr, stopped.stderr
    errors = [line for line in stopped.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, stopped.stderr
    assert "no space left on device writing" in errors[0] and "(trial 1, seed 0)" in errors[0]
    assert "run the same command to continue" in errors[0]
    states = [
        t.state.name for t in optuna.load_study(study_name="full_disk", storage=storage).trials
    ]
    assert states == ["COMPLETE", "FAIL", "WAITING"], states  # kept; failed, and re-queued
    assert not list(tmpfs.rglob("*.tmp"))

    filler.unlink()
    resumed = run_sweep(*args, "n_trials=2", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    trials = optuna.load_study(study_name="full_disk", storage=storage).trials
    assert [t.state.name for t in trials] == ["COMPLETE", "FAIL", "COMPLETE"]
    assert trials[2].params == trials[1].params  # the re-queued trial ran, with its parameters


def test_a_metrics_flush_that_fills_the_disk_leaves_whole_lines_only(tmpfs):
    """The disk takes part of a flush (a short write) and then refuses the rest: the log is cut
    back to the whole lines it had, the error names it, and what was written before stays."""
    from dqn_harness.errors import DiskFull
    from dqn_harness.tracking.metrics import MetricsLog
    from dqn_harness.tracking.wandb_setup import Loggers

    log = MetricsLog(tmpfs, Loggers())
    for step in range(10):
        log.log({"train/loss": 0.5}, step)
    log.flush()
    before = (tmpfs / "metrics.jsonl").read_bytes()
    filler = fill(tmpfs, 8192)  # two pages: a 60 KB flush gets some of them, then no more
    for step in range(10, 510):
        log.pending.append(json.dumps({"env_steps": step, "pad": "x" * 100}).encode() + b"\n")
    log.pending_bytes = sum(map(len, log.pending))
    with pytest.raises(DiskFull) as caught:
        log.flush()
    assert "metrics.jsonl" in str(caught.value)
    assert (tmpfs / "metrics.jsonl").read_bytes() == before  # whole lines, as before the flush
    log.close()
    filler.unlink()
