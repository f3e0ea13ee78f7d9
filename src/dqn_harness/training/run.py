"""One training run from a composed config: what train.py and every sweep trial call.

The one path every run takes, DQN or tabular: validate, seed, build the tracker, the evaluator,
the env, the learner and the collector; train; then finish the same way (final evaluation, last
checkpoint, resumable state, summary.json, loggers closed) whatever ended the run.
"""

from __future__ import annotations

import random
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

from dqn_harness.collector import Collector
from dqn_harness.config import validate
from dqn_harness.envs import make_vec_env, reward_threshold
from dqn_harness.errors import Diverged
from dqn_harness.evaluation import Evaluator
from dqn_harness.evaluation.video import VideoRecorder
from dqn_harness.files import save_atomic
from dqn_harness.perf import tune_allocator
from dqn_harness.replay import ReplayBuffer
from dqn_harness.tracking import Tracker
from dqn_harness.training.callbacks import Periodic
from dqn_harness.training.checkpoint import (
    check_compatible,
    load_replay,
    load_state,
    restore_rng,
    rng_states,
    trim_metrics,
    write_state,
)
from dqn_harness.training.stopping import StopFlag


class Learner(Protocol):
    """What run() needs of an algorithm (training/dqn.py, training/tabular.py)."""

    @property
    def buffer(self) -> ReplayBuffer | None: ...  # the replay it learns from, if any
    @property
    def epsilon(self) -> Callable[[int], float]: ...  # agent step -> exploration

    def greedy(self, obs: np.ndarray) -> np.ndarray: ...
    def check_finite(self) -> None: ...
    def stats(self) -> dict[str, float]: ...
    def weights(self) -> dict[str, Any]: ...
    def state_dict(self) -> dict[str, Any]: ...
    def load_state_dict(self, state: dict[str, Any]) -> None: ...
    def summary(self) -> dict[str, Any]: ...
    @property
    def policy_step(self) -> int | None: ...  # agent step of the last update (None: collector's)
    def fit(
        self, collector: Collector, periodic: Periodic, stop: StopFlag, done: Callable[[], bool]
    ) -> None: ...


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


def make_learner(cfg: DictConfig, env: Any) -> Learner:
    if cfg.algo.name == "dqn":
        from dqn_harness.training.dqn import DQNLearner

        return DQNLearner(cfg, env)
    from dqn_harness.training.tabular import TabularLearner

    return TabularLearner(cfg, env)


def load_resume(cfg: DictConfig, run_dir: Path) -> dict[str, Any] | None:
    """The checkpoint ``resume=`` names, checked against this config; metrics trimmed to it."""
    if not cfg.resume:
        return None
    state = load_state(Path(cfg.resume))
    check_compatible(OmegaConf.to_container(cfg, resolve=True), state["config"])  # type: ignore[arg-type]
    if state["replay_file"] is None and cfg.algo.name == "dqn":
        print(
            "warning: the checkpoint has no replay buffer (checkpoint.buffer=false): "
            f"learning restarts after {cfg.learning_starts:,} steps of fresh collection",
            file=sys.stderr,
        )
    trim_metrics(run_dir, state["env_steps"])
    return state


def make_evaluator(
    cfg: DictConfig,
    run_dir: Path,
    tracker: Tracker,
    on_eval: Callable[[int, float], bool] | None,
) -> Evaluator:
    video = None
    if cfg.eval.video:
        video = VideoRecorder(
            env_cfg=cfg.env,
            out_dir=run_dir / "videos",
            every=cfg.eval.video_every,
            epsilon=cfg.eval.epsilon,
            seed=cfg.seed + 20_000,
            log_video=tracker.log_video,
        )
    return Evaluator(
        env=make_vec_env(cfg.env, cfg.eval.num_envs),
        every=cfg.eval.every,
        episodes=cfg.eval.episodes,
        epsilon=cfg.eval.epsilon,
        stop_on_solve=cfg.eval.stop_on_solve,
        threshold=reward_threshold(cfg.env),
        ckpt_dir=run_dir / "checkpoints",
        seed=cfg.seed + 10_000,
        log=tracker.log,
        on_result=on_eval,
        video=video,
    )


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
    resume = load_resume(cfg, run_dir)
    tracker = Tracker(cfg, run_dir, progress=cfg.progress, extra_config=extra_config, resume=resume)
    evaluator = make_evaluator(cfg, run_dir, tracker, on_eval)
    if resume is not None:
        evaluator.load_state_dict(resume["evaluator"])
        restore_rng(resume["rng"])
    env = make_vec_env(cfg.env, cfg.env.num_envs)
    config = OmegaConf.to_container(cfg, resolve=True)
    status, extra = "failed", {}
    try:
        learner = make_learner(cfg, env)
        if resume is not None:
            learner.load_state_dict(resume["learner"])
            if resume["replay_file"] and learner.buffer is not None:
                # before the collector writes its first reset frame after the restored ones
                load_replay(
                    evaluator.ckpt_dir / resume["replay_file"], learner.buffer.load_state_dict
                )
        collector = Collector(
            env=env,
            policy=learner.greedy,
            epsilon=learner.epsilon,
            buffer=learner.buffer,
            # a resumed run's envs start new episodes; a new seed keeps them from replaying old ones
            seed=cfg.seed + (resume["env_steps"] if resume else 0),
            on_episode=tracker.on_episode,
            on_step=tracker.on_step,
        )

        def save_weights(path: Path) -> None:
            weights = {**learner.weights(), "env_steps": collector.env_steps, "config": config}
            save_atomic(weights, path, torch.save)

        def save_state(cadences: dict[str, Any]) -> None:
            """Everything resume needs, composed from each component's own state."""
            state = {
                "env_steps": collector.env_steps,
                "config": config,
                "wandb_id": tracker.wandb_id,
                "rng": rng_states(),
                "learner": learner.state_dict(),
                "collector": collector.state_dict(),
                "cadences": cadences,
                "evaluator": evaluator.state_dict(),
                "tracker": tracker.state_dict(),
            }
            tracker.flush()
            replay = (
                learner.buffer.state_dict() if learner.buffer and cfg.checkpoint.buffer else None
            )
            write_state(state, evaluator.ckpt_dir, replay)

        periodic = Periodic(
            tracker=tracker,
            evaluator=evaluator,
            log_every=cfg.logger.every,
            checkpoint_every=cfg.checkpoint.every,
            stats=learner.stats,
            epsilon=learner.epsilon,
            policy=learner.greedy,
            save_weights=save_weights,
            save_state=save_state,
            check=learner.check_finite,
        )
        if resume is not None:
            collector.load_state_dict(resume["collector"])
            periodic.load_state_dict(resume["cadences"])
        try:
            learner.fit(collector, periodic, stop, lambda: stop.is_set() or evaluator.should_stop)
            learner.check_finite()  # nothing diverged is evaluated or written
            # the final policy is judged at the step it last learned at: not again if the last
            # evaluation already saw it (a solved run), whatever the collector fetched since
            step = learner.policy_step if learner.policy_step is not None else collector.env_steps
            evaluator.finish(step, learner.greedy, save_weights, stop.is_set())
            save_state(periodic.state_dict())
            extra = {**learner.summary(), "last_checkpoint": str(evaluator.ckpt_dir / "last.pt")}
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
        env.close()
        evaluator.close()
        stop.uninstall()  # last: on SIGUSR1 it may hand over to a requeueing handler
    summary["exit_code"] = 1 if status == "diverged" else stop.exit_code
    return summary
