"""Compose real configs from conf/ (trimmed for CI by overrides) and run real trainings."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

from dqn_harness.config import register_configs

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "conf"

os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")
register_configs()


def compose_cfg(*overrides: str) -> DictConfig:
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose(config_name="config", overrides=["progress=false", *overrides])


def run_cli(
    script: str,
    *args: str,
    cwd: Path,
    timeout: float = 600,
    extra_env: dict[str, str] | None = None,
    **kwargs,
) -> subprocess.CompletedProcess:
    """A real entry point (train.py, sweep.py), as a user runs it."""
    env = {**os.environ, "WANDB_MODE": "offline", "PYTHONUNBUFFERED": "1", **(extra_env or {})}
    return subprocess.run(
        [sys.executable, str(ROOT / script), *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        **kwargs,
    )


def run_train(*args: str, cwd: Path, **kwargs) -> subprocess.CompletedProcess:
    return run_cli("train.py", *args, cwd=cwd, **kwargs)


# The way to the goal of the 4x4 lake, not slippery: right, right, down, down, down, right (the
# goal itself, seen once as an episode ends, needs no action).
TO_GOAL = {0: 2, 1: 2, 2: 1, 6: 1, 10: 1, 14: 2}


def walks(obs):
    """The way to the goal: every lake game at epsilon 0 scores 1."""
    import numpy as np

    return np.array([TO_GOAL.get(int(s), 0) for s in obs])


def stays(obs):
    """Left, into the wall: every lake game scores 0."""
    import numpy as np

    return np.zeros(len(obs), dtype=np.int64)


def lake_evaluation(policy, **evaluator_args):
    """One evaluation of 20 games at epsilon 0 on 4 real lakes without slipping: what it logs,
    and the evaluator (``evaluator_args``: the rule under test, e.g. stop_short or robust)."""
    from gymnasium.vector import SyncVectorEnv

    from dqn_harness.envs import make_env
    from dqn_harness.evaluation.evaluator import Evaluator

    cfg = compose_cfg("env=frozenlake", "env.kwargs.is_slippery=false").env
    logged: dict = {}
    evaluator = Evaluator(
        env=SyncVectorEnv([lambda: make_env(cfg) for _ in range(4)]),
        episodes=20,
        epsilon=0.0,
        seed=0,
        log=lambda record, step: logged.update(record),
        **evaluator_args,
    )
    evaluator.run(100, policy)
    evaluator.close()
    return logged, evaluator


def train_and_read(run_dir: Path, *args: str) -> tuple[dict, list[dict], str]:
    """A quiet training run in ``run_dir`` that must succeed: its summary.json, its
    evaluation records from metrics.jsonl, and what it printed to stderr."""
    import json

    done = run_train(
        *args, "logger=none", "progress=false", f"hydra.run.dir={run_dir}", cwd=run_dir.parent
    )
    assert done.returncode == 0, done.stderr[-2000:]
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    evals = [r for r in map(json.loads, lines) if "eval/return_mean" in r]
    return json.loads((run_dir / "summary.json").read_text()), evals, done.stderr


def run_sweep(*args: str, cwd: Path, **kwargs) -> subprocess.CompletedProcess:
    return run_cli("sweep.py", *args, cwd=cwd, **kwargs)


def load_checkpoint(path: Path, env_steps: int | None = None) -> dict:
    """A best/last weights file, loaded and checked: its keys, its agent step, finite weights."""
    import torch

    data = torch.load(path, map_location="cpu", weights_only=True)
    dqn = {"q_net", "target_net", "optimizer", "grad_steps", "env_steps", "config"}
    tabular = {"states", "values", "env_steps", "config"}
    assert dqn <= set(data) or tabular <= set(data), sorted(data)
    if env_steps is not None:
        assert data["env_steps"] == env_steps, (data["env_steps"], env_steps)
    tensors = list(data["q_net"].values()) if "q_net" in data else [data["values"]]
    if "target_net" in data:
        tensors += list(data["target_net"].values())
    assert tensors and all(torch.isfinite(t).all() for t in tensors)
    return data


@pytest.fixture
def compose_config():
    return compose_cfg


def pytest_collection_modifyitems(config, items):
    """GPU tests run only where CUDA is present (the lent GPU machine), and are skipped in CI."""
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


def _pg_bin() -> Path | None:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"))
    if found:
        return found[-1].parent
    which = shutil.which("pg_ctl")
    return Path(which).parent if which else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def postgres_url():
    """A real PostgreSQL server on loopback for this test session (`make test` installs it).

    Skipped where PostgreSQL isn't installed, unless DQN_REQUIRE_POSTGRES is set (CI sets it,
    so a missing server fails CI instead of silently skipping).
    """
    bin_dir = _pg_bin()
    if bin_dir is None:
        if os.environ.get("DQN_REQUIRE_POSTGRES"):
            pytest.fail("PostgreSQL is required (DQN_REQUIRE_POSTGRES) but pg_ctl was not found")
        pytest.skip("PostgreSQL is not installed (make test installs it on Debian as root)")
    data = Path(tempfile.mkdtemp(prefix="dqn-pg-"))
    as_user: list[str] = []
    if os.geteuid() == 0:  # initdb refuses to run as root
        shutil.chown(data, "postgres", "postgres")
        data.chmod(0o700)
        as_user = ["runuser", "-u", "postgres", "--"]
    port = _free_port()

    def pg(*cmd: str) -> None:
        subprocess.run([*as_user, *cmd], check=True, capture_output=True, text=True, timeout=120)

    pg(str(bin_dir / "initdb"), "-D", str(data / "db"), "-A", "trust", "-U", "postgres")
    pg(
        str(bin_dir / "pg_ctl"),
        "-D",
        str(data / "db"),
        "-l",
        str(data / "db" / "server.log"),
        "-o",
        f"-p {port} -h 127.0.0.1 -k {data}",
        "-w",
        "start",
    )
    try:
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        pg(str(bin_dir / "pg_ctl"), "-D", str(data / "db"), "-m", "fast", "-w", "stop")
        shutil.rmtree(data, ignore_errors=True)


def make_buffer(
    capacity: int,
    num_envs: int,
    obs_shape: tuple[int, ...],
    dtype,
    stack: int | None = None,
    seed: int = 0,
    prioritized: dict | None = None,
):
    """A real ReplayBuffer over real FrameStorage: uniform, or prioritized with these kwargs."""
    from dqn_harness.replay import FrameStorage, PrioritizedSampler, ReplayBuffer, UniformSampler

    storage = FrameStorage(
        capacity=capacity, num_envs=num_envs, obs_shape=obs_shape, obs_dtype=dtype, stack=stack
    )
    if prioritized is None:
        sampler = UniformSampler(seed=seed)
    else:
        sampler = PrioritizedSampler(size=storage.size, seed=seed, **prioritized)
    return ReplayBuffer(storage=storage, sampler=sampler)
