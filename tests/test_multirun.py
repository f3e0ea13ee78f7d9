"""Past one run: -m grids that survive a failing job, the submitit launcher (local, real separate
processes), and resume=auto after SIGUSR1, the signal Slurm sends before a time limit."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.conftest import ROOT, run_cli, run_train

FAST = [
    "algo=tabular",
    "env=frozenlake",
    "logger=none",
    "progress=false",
    "eval.every=1000",
    "eval.stop_on_solve=false",
]


def jobs_of(sweep: Path) -> dict[int, dict]:
    lines = (sweep / "jobs.jsonl").read_text().splitlines()
    return {json.loads(ln)["num"]: json.loads(ln) for ln in lines}


def test_grid_runs_every_job_and_names_the_one_that_failed(tmp_path):
    sweep = tmp_path / "grid"
    proc = run_train(
        "-m",
        *FAST,
        "total_steps=2000",
        "algo.alpha=0.1,2.0,0.5",
        f"hydra.sweep.dir={sweep}",
        cwd=tmp_path,
    )
    assert proc.returncode == 2, proc.stderr[-2000:]  # the failed job's exit code
    last = [ln for ln in proc.stderr.splitlines() if ln.strip()][-1]
    assert last.startswith("error: multirun: 1 of 3 jobs failed: #1 [algo.alpha=2.0] algo.alpha:")
    assert "(2 finished;" in last
    jobs = jobs_of(sweep)
    assert [jobs[n]["status"] for n in range(3)] == ["finished", "rejected", "finished"]
    for n in (0, 2):
        summary = json.loads((Path(jobs[n]["run_dir"]) / "summary.json").read_text())
        assert summary["env_steps"] == 2000
    # compare.py finds the grid under multirun/ by default (here: runs=)
    cmp = run_cli("compare.py", f"runs={sweep}", f"out={tmp_path / 'cmp'}", cwd=tmp_path)
    assert cmp.returncode == 0, cmp.stderr
    assert len((tmp_path / "cmp" / "runs.csv").read_text().splitlines()) == 3


def test_grid_bad_input_is_one_line_and_runs_nothing(tmp_path):
    cases = [
        (["seed=0,1", "optim.lrr=0.1"], "error: optim.lrr: unknown config key"),
        (["seed=0,1", "algo.alpha=2.0"], "error: algo.alpha: must be in (0, 1]"),
        (["seed=0,1", "env=atlantis"], "error: env: "),
        (["seed=0,1", "resume=outputs/x"], "error: resume: a -m grid resumes with resume=auto"),
    ]
    for args, expected in cases:
        proc = run_train("-m", *FAST, *args, cwd=tmp_path, timeout=120)
        lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
        assert proc.returncode == 2 and len(lines) == 1, (args, proc.stderr[-2000:])
        assert lines[0].startswith(expected), (args, lines[0])
    assert not (tmp_path / "multirun").exists()


def test_compare_finds_multirun_by_default(tmp_path):
    proc = run_train("-m", *FAST, "total_steps=1000", "seed=0,1", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "multirun: all 2 jobs finished" in proc.stdout
    cmp = run_cli("compare.py", "env=frozenlake", f"out={tmp_path / 'c'}", cwd=tmp_path)
    assert cmp.returncode == 0, cmp.stderr
    assert "| 0 1 |" in cmp.stdout  # one config, both seeds


def test_submitit_local_launcher_runs_jobs_as_separate_processes(tmp_path):
    sweep = tmp_path / "grid"
    proc = run_train(
        "-m",
        "hydra/launcher=submitit_local",
        "hydra.launcher.timeout_min=10",
        *FAST,
        "total_steps=1500",
        "seed=0,1",
        f"hydra.sweep.dir={sweep}",
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:] + proc.stdout[-2000:]
    jobs = jobs_of(sweep)
    assert sorted(jobs) == [0, 1] and all(j["status"] == "finished" for j in jobs.values())
    # submitit kept each job's own log: the jobs ran in processes of their own
    logs = sorted((sweep / ".submitit").rglob("*_log.out"))
    assert len(logs) == 2, logs
    assert all("finished after 1,500 agent steps" in p.read_text() for p in logs)


def start(cwd: Path, *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, str(ROOT / "train.py"), *args],
        cwd=cwd,
        env={**os.environ, "WANDB_MODE": "offline", "PYTHONUNBUFFERED": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for_checkpoint(root: Path, proc: subprocess.Popen) -> Path:
    deadline = time.time() + 120
    while time.time() < deadline:
        found = list(root.rglob("checkpoints/state.pt"))
        if found:
            return found[0].parent.parent
        assert proc.poll() is None, proc.communicate()[1][-2000:]
        time.sleep(0.2)
    raise AssertionError("no checkpoint")


def test_sigusr1_checkpoints_and_resume_auto_carries_on(tmp_path):
    args = [*FAST, "total_steps=60000", "checkpoint.every=2000", "resume=auto"]
    proc = start(tmp_path, *args)
    run_dir = wait_for_checkpoint(tmp_path / "outputs", proc)
    proc.send_signal(signal.SIGUSR1)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 138, err[-2000:]
    assert "starting fresh" in out
    first = json.loads((run_dir / "summary.json").read_text())
    assert first["status"] == "interrupted" and first["env_steps"] < 60000

    # the requeued job: the same command line continues the same run in its own directory
    again = run_train(*args, cwd=tmp_path)
    assert again.returncode == 0, again.stderr[-2000:]
    assert f"resume=auto: continuing {run_dir}" in again.stdout
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["env_steps"] >= 60000 and summary["status"] in ("finished", "solved")
    assert len(list((tmp_path / "outputs").iterdir())) == 1  # no second run dir
    steps = [json.loads(ln)["env_steps"] for ln in (run_dir / "metrics.jsonl").open()]
    assert steps == sorted(steps)  # one curve, continued, not two spliced


def test_resume_auto_in_a_grid_continues_each_job(tmp_path):
    """A grid stopped by SIGUSR1 and run again with the same arguments (what a requeue does):
    the interrupted job continues its run, the job that never started starts fresh."""
    sweep = tmp_path / "grid"
    args = ["-m", *FAST, "total_steps=60000", "checkpoint.every=2000", "resume=auto", "seed=0,1"]
    args.append(f"hydra.sweep.dir={sweep}")
    proc = start(tmp_path, *args)
    first_dir = wait_for_checkpoint(sweep, proc)
    proc.send_signal(signal.SIGUSR1)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 138, err[-2000:]
    assert "#1 [seed=1] did not run" in err
    stopped = json.loads((first_dir / "summary.json").read_text())["env_steps"]

    again = run_train(*args, cwd=tmp_path)
    assert again.returncode == 0, again.stderr[-2000:]
    assert f"resume=auto: continuing {first_dir} from agent step" in again.stdout
    jobs = jobs_of(sweep)
    assert Path(jobs[0]["run_dir"]) == first_dir and jobs[0]["status"] != "interrupted"
    summary = json.loads((first_dir / "summary.json").read_text())
    assert summary["env_steps"] >= 60000 > stopped
    runs = [p for p in sweep.iterdir() if (p / "summary.json").exists()]
    assert len(runs) == 2  # job 0 continued in place, job 1 ran once
