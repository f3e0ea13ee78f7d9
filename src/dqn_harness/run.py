"""One training run from a composed config: the function train.py and every sweep trial call."""

from __future__ import annotations

import random
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

from dqn_harness.checkpointing import check_compatible, load_state, restore_rng, trim_metrics
from dqn_harness.config import validate
from dqn_harness.envs import make_vec_env, reward_threshold
from dqn_harness.evaluation import Evaluator
from dqn_harness.perf import tune_allocator
from dqn_harness.stopping import Diverged, StopFlag
from dqn_harness.tracking import Tracker
from dqn_harness.video import VideoRecorder


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def cpu_threads(cfg: DictConfig) -> int:
    """One thread for small MLPs: their matrices are too small to split, and idle intra-op
    threads spin against every other process on the machine (CartPole measured 587 agent
    steps/s on 1 thread against 18 on 2 while another training shared the 2 cores)."""
    if cfg.trainer.threads is not None:
        return int(cfg.trainer.threads)
    if cfg.algo.name == "tabular" or cfg.model.name == "mlp":
        return 1
    return max(1, torch.get_num_threads())


def run(
    cfg: DictConfig,
    run_dir: Path,
    on_eval: Callable[[int, float], bool] | None = None,
    extra_config: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Validate, train, evaluate; always leave summary.json behind once training has started.

    ``summary["status"]`` is ``solved``, ``finished``, ``pruned`` (``on_eval``, a sweep's
    pruning hook called with each evaluation's agent step and mean return, asked to stop),
    ``interrupted`` (Ctrl-C / SIGTERM, with ``exit_code`` 130 / 143), ``diverged`` (a
    non-finite loss; ``error`` says where, ``exit_code`` 1, checkpoints keep the last finite
    weights) or ``failed`` (an exception, which is re-raised). ``extra_config`` goes into the
    logged run config (a sweep's study and trial number).
    """
    validate(cfg)
    run_dir.mkdir(parents=True, exist_ok=True)
    seed_everything(cfg.seed)
    tune_allocator()
    torch.set_num_threads(cpu_threads(cfg))
    stop = StopFlag()
    stop.install()
    resume = None
    if cfg.resume:
        resume = load_state(Path(cfg.resume))
        check_compatible(OmegaConf.to_container(cfg, resolve=True), resume["config"])  # type: ignore[arg-type]
        if resume.get("replay_file") is None and cfg.algo.name == "dqn":
            print(
                "warning: the checkpoint has no replay buffer (checkpoint.buffer=false): "
                f"learning restarts after {cfg.learning_starts:,} steps of fresh collection",
                file=sys.stderr,
            )
        trim_metrics(run_dir, resume["env_steps"])
    tracker = Tracker(cfg, run_dir, progress=cfg.progress, extra_config=extra_config, resume=resume)
    eval_env = make_vec_env(cfg.env, cfg.eval.num_envs)
    video = None
    if cfg.eval.video:
        video = VideoRecorder(
            cfg.env,
            run_dir / "videos",
            cfg.eval.video_every,
            cfg.eval.epsilon,
            cfg.seed + 20_000,
            tracker.log_video,
        )
    evaluator = Evaluator(
        eval_env,
        cfg.eval,
        reward_threshold(cfg.env),
        run_dir,
        cfg.seed + 10_000,
        tracker.log,
        on_eval,
        video,
    )
    if resume is not None:
        evaluator.restore(resume["evaluator"])
        restore_rng(resume["rng"])
    status, extra = "failed", {}
    try:
        if cfg.algo.name == "dqn":
            from dqn_harness.agents.dqn import train_dqn as train
        else:
            from dqn_harness.agents.tabular import train_tabular as train
        try:
            extra = train(cfg, tracker, evaluator, stop, resume)
            if stop.is_set():
                status = "interrupted"
            elif evaluator.pruned:
                status = "pruned"
            else:
                status = "solved" if evaluator.solved else "finished"
        except Diverged as exc:
            status, extra = "diverged", {"error": str(exc)}
    finally:
        summary = tracker.write_summary({**evaluator.summary(), **extra, "status": status})
        tracker.close(summary, status)
        stop.uninstall()
        eval_env.close()
        if video is not None:
            video.close()
    summary["exit_code"] = 1 if status == "diverged" else stop.exit_code
    return summary
