"""One training run from a validated config: what train.py and every sweep trial call.

The run goes through named phases, as Dopamine's ``Runner`` does, DQN or tabular alike:

1. :meth:`Runner.build`: seed, then everything the run is made of, in dependency order.
2. :meth:`Runner.maybe_resume`: give each component its saved state (``resume=``).
3. :meth:`Runner.train`: learn until done, then judge the final policy and checkpoint.
4. :meth:`Runner.finish`: whatever ended the run, ``summary.json``, loggers and envs closed.

The runner is also what the cadences call (``log_stats``, ``evaluate``, ``save_state``): each
is a method, so no closure captures objects built after it.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

from dqn_harness.collector import Collector
from dqn_harness.envs import make_vec_env, reward_threshold
from dqn_harness.errors import Diverged
from dqn_harness.evaluation.evaluator import training_evaluator
from dqn_harness.files import save_atomic
from dqn_harness.perf import cpu_threads, flush_denormals, tune_allocator
from dqn_harness.run.cadences import EvalTrigger, Periodic
from dqn_harness.run.checkpoint import (
    load_replay,
    read_resume,
    restore_rng,
    rng_states,
    seed_everything,
    torch_save,
    write_state,
)
from dqn_harness.run.decisions import BEST, LAST, Decisions
from dqn_harness.run.disk import disk_full_outcome, tolerate_full_disk
from dqn_harness.run.learners import make_learner
from dqn_harness.run.resume import record_resume
from dqn_harness.run.stopping import StopFlag
from dqn_harness.tracking.metrics import MetricsLog, flat_config, write_config
from dqn_harness.tracking.progress import ProgressBar
from dqn_harness.tracking.summary import RunSummary
from dqn_harness.tracking.wandb_setup import make_loggers


class Runner:
    """One run of a validated config in ``run_dir``.

    Args:
        cfg: the composed, validated config (the command that starts a run validates it).
        run_dir: the run's directory (Hydra's output dir).
        on_eval: a sweep's pruning hook, called with each evaluation's agent step and mean
            return; True asks the run to stop (status ``pruned``).
        extra_config: added to the logged run config (a sweep's study and trial number).
    """

    def __init__(
        self,
        cfg: DictConfig,
        run_dir: Path,
        on_eval: Callable[[int, float], bool] | None = None,
        extra_config: dict[str, Any] | None = None,
    ) -> None:
        self.cfg = cfg
        self.run_dir = run_dir
        self.on_eval = on_eval
        self.extra_config = extra_config
        self.config = OmegaConf.to_container(cfg, resolve=True)  # saved with every checkpoint
        self.stop = StopFlag()
        self.checkpoint_step: int | None = None  # agent step of the last complete state.pt

    def run(self) -> dict[str, Any]:
        """All four phases; ``summary["status"]`` is ``solved``, ``finished``, ``pruned``,
        ``interrupted`` (``exit_code`` 130 / 143 / 138), ``diverged`` (``error`` says where,
        ``exit_code`` 1; checkpoints keep the last finite weights), ``failed`` with a full
        disk (``error`` names the file, the space left and the last complete checkpoint;
        ``exit_code`` 2) or ``failed`` (an exception, which is re-raised). summary.json is
        left behind once training has started (a full disk keeps its previous version)."""
        status, extra = "failed", dict[str, Any]()
        try:
            try:
                self.build()
                self.maybe_resume()
                status, extra = self.train()
            except OSError as exc:  # a full disk ends the run in one line; anything else raises
                extra = disk_full_outcome(exc, self.run_dir, self.checkpoint_step)
        finally:
            summary = self.finish(status, extra)
        return summary

    # --- phase 1: build -------------------------------------------------------------------
    def build(self) -> None:
        cfg, run_dir = self.cfg, self.run_dir
        run_dir.mkdir(parents=True, exist_ok=True)
        seed_everything(cfg.seed)
        tune_allocator()
        torch.set_num_threads(cpu_threads(cfg))
        # before anything starts torch's thread pool: its threads inherit the mode
        self.flush_denormal = flush_denormals(cfg.trainer.flush_denormal)
        if self.flush_denormal is not cfg.trainer.flush_denormal:
            print(
                f"warning: trainer.flush_denormal={cfg.trainer.flush_denormal} did not reach every "
                "torch thread (their pool started first, or the CPU has no such mode); "
                "summary.json's flush_denormal says what the threads do",
                file=sys.stderr,
            )
        self.stop.install()
        self.resume = read_resume(cfg, run_dir)
        self.decisions = Decisions(
            ckpt_dir=run_dir / "checkpoints",
            threshold=reward_threshold(cfg.env),
            robust_epsilon=cfg.eval.robust_epsilon,
            robust_threshold=cfg.eval.robust_threshold,
            stop_on_solve=cfg.eval.stop_on_solve,
            save_weights=self.save_weights,
            on_result=self.on_eval,
        )
        self.build_tracking()
        self.evaluator = training_evaluator(
            cfg, self.run_dir, self.metrics.log, self.loggers.log_video
        )
        self.env = make_vec_env(cfg.env, cfg.env.num_envs)
        self.learner = make_learner(cfg, self.env, run_dir)
        self.progress.warmup_steps = self.learner.warmup_steps
        self.collector = Collector(
            env=self.env,
            policy=self.learner.greedy,
            epsilon_schedule=self.learner.epsilon,
            buffer=self.learner.buffer,
            # a resumed run's envs start new episodes; a new seed keeps them from replaying old ones
            seed=cfg.seed + (self.resume["env_steps"] if self.resume else 0),
            on_episode=self.on_episode,
            on_step=self.on_step,
        )
        self.periodic = Periodic(
            self,
            log_every=cfg.logger.every,
            eval_every=cfg.eval.every,
            checkpoint_every=cfg.checkpoint.every,
            trigger=EvalTrigger(
                threshold=self.decisions.threshold,
                episodes=cfg.eval.trigger_episodes,
                margin=cfg.eval.trigger_margin,
                gap=cfg.eval.trigger_gap,
            ),
        )

    def build_tracking(self) -> None:
        """config.json, the loggers (a resumed run continues its W&B run), the metrics log,
        the progress bar and the run summary."""
        cfg = self.cfg
        config = flat_config(cfg, self.extra_config)
        write_config(self.run_dir, config)
        self.loggers = make_loggers(
            cfg.logger,
            run_dir=self.run_dir,
            run_name=cfg.run_name,
            default_group=cfg.env.name,
            tags=[cfg.env.name, cfg.algo.name],
            config=config,
            wandb_id=self.resume.get("wandb_id") if self.resume else None,
            resumed_at=int(self.resume["env_steps"]) if self.resume else None,
        )
        self.metrics = MetricsLog(self.run_dir, self.loggers, append=self.resume is not None)
        # the warm-up is the learner's to say (build() sets it once the learner exists)
        self.progress = ProgressBar(cfg.total_steps, 0, cfg.eval.every, enabled=cfg.progress)
        self.summary = RunSummary(self.run_dir, self.loggers.wandb_run_dir)

    # --- phase 2: maybe resume --------------------------------------------------------------
    def maybe_resume(self) -> None:
        """Each component's own saved state; the replay before the collector's first reset
        frame is written after the restored ones, the global RNGs last."""
        state = self.resume
        if state is None:
            return
        self.checkpoint_step = int(state["env_steps"])
        record_resume(self.run_dir, self.checkpoint_step, state["config"], self.config)  # type: ignore[arg-type]
        self.learner.load_state_dict(state["learner"])
        buffer = self.learner.buffer
        if state["replay_file"] and buffer is not None:
            load_replay(self.decisions.ckpt_dir / state["replay_file"], buffer.load_state_dict)
        self.collector.load_state_dict(state["collector"])
        self.periodic.load_state_dict(state["cadences"])
        self.evaluator.load_state_dict(state["evaluator"])
        self.decisions.load_state_dict(state["decisions"])
        self.summary.load_state_dict(state["summary"])
        self.progress.load_state_dict(state["progress"], self.summary.env_steps)
        restore_rng(state["rng"])

    # --- phase 3: train ---------------------------------------------------------------------
    def train(self) -> tuple[str, dict[str, Any]]:
        """Learn until total_steps, solved, pruned or stopped; then the final evaluation (unless
        the last one already saw this policy) and the last checkpoint."""
        self.collector.start()
        try:
            self.learner.fit(self.collector, self.periodic.after, self.done, self.stop.is_set)
            self.learner.check_finite()  # nothing diverged is evaluated or written
            self.final_evaluation()
            self.save_state()
        except Diverged as exc:
            return "diverged", {"error": str(exc)}
        extra = {**self.learner.summary(), "last_checkpoint": str(self.decisions.ckpt_dir / LAST)}
        if self.stop.is_set():
            return "interrupted", extra
        if self.decisions.pruned:
            return "pruned", extra
        return ("solved" if self.decisions.solved else "finished"), extra

    def done(self) -> bool:
        return self.stop.is_set() or self.decisions.should_stop

    def final_evaluation(self) -> None:
        """The final policy is judged at the step it last learned at: not again if the last
        evaluation already saw it (a solved run), whatever the collector fetched since."""
        step = self.learner.policy_step
        step = self.collector.env_steps if step is None else step
        fresh = not self.stop.is_set() and not self.decisions.pruned
        if fresh and self.evaluator.last_step != step:
            self.evaluate(step)
        self.decisions.save_last(step)
        if self.cfg.logger.log_model == "last":
            self.log_model(self.decisions.ckpt_dir / LAST, step)

    # --- phase 4: finish --------------------------------------------------------------------
    def finish(self, status: str, extra: dict[str, Any]) -> dict[str, Any]:
        """summary.json, the bar, the metrics log and the loggers closed, the envs closed; a
        build that failed part-way closes what it had built. After a full disk each step is
        tried, and a write that finds the disk still full leaves its previous file as it was."""
        try:
            exit_code = extra.pop("exit_code", None)
            if not hasattr(self, "summary"):  # stopped before there was anything to write
                return {"status": status, "exit_code": exit_code or 1, **extra}
            evaluator = getattr(self, "evaluator", None)
            fields = {
                "eval_return_mean": None if evaluator is None else evaluator.last_mean,
                **self.decisions.summary(),
                "evaluations": 0 if evaluator is None else evaluator.count,
                "flush_denormal": getattr(self, "flush_denormal", None),
                **extra,
                "status": status,
            }
            summary = tolerate_full_disk(self.summary.write, fields) or self.summary.fields(fields)
            self.progress.close(self.summary.env_steps)
            tolerate_full_disk(self.metrics.close)
            tolerate_full_disk(self.loggers.finish, summary, status)
            for part in (getattr(self, "env", None), evaluator):
                if part is not None:
                    part.close()
        finally:
            self.stop.uninstall()  # last: on SIGUSR1 it may hand over to a requeueing handler
        if exit_code is None:
            exit_code = 1 if status == "diverged" else self.stop.exit_code
        summary["exit_code"] = exit_code
        return summary

    # --- what the collector and the cadences call ---------------------------------------------
    def on_episode(self, env_steps: int, episode_return: float, length: int) -> None:
        self.summary.on_episode()
        self.progress.on_episode(episode_return)
        self.periodic.trigger.on_episode(episode_return)
        self.metrics.log(
            {"train/episode_return": episode_return, "train/episode_length": float(length)},
            env_steps,
        )

    def on_step(self, env_steps: int, epsilon: float) -> None:
        self.summary.on_step(env_steps)
        self.progress.on_step(env_steps, epsilon)

    def log_stats(self, env_steps: int) -> None:
        record = {**self.learner.stats(), "train/epsilon": self.learner.epsilon(env_steps)}
        self.metrics.log({**record, **self.summary.throughput(env_steps)}, env_steps)

    def evaluate(self, env_steps: int) -> None:
        self.learner.check_finite()
        mean = self.evaluator.run(env_steps, self.learner.greedy)
        self.progress.on_evaluation(self.evaluator.last_wall_s, mean)
        if said := self.learner.on_evaluation(env_steps, mean):  # before last.pt saves state
            self.progress.note(said)
        if said := self.decisions.after_evaluation(env_steps, mean, self.evaluator.last_robust):
            self.progress.note(said)

    def save_weights(self, path: Path, env_steps: int) -> None:
        """best.pt / last.pt: the policy's weights, the agent step of the evaluation that judged
        it (the step its metrics are logged at, not the collector's, which Lightning's prefetch
        has moved on) and the config; with ``logger.log_model`` also a W&B Artifact (``all``:
        every write; ``best``: best.pt)."""
        weights = {
            **self.learner.weights(),
            "env_steps": env_steps,
            "config": self.config,
        }
        save_atomic(weights, path, torch_save)
        policy = self.cfg.logger.log_model
        if policy == "all" or (policy == "best" and path.name == BEST):
            self.log_model(path, env_steps)

    def log_model(self, path: Path, env_steps: int) -> None:
        alias = path.stem  # best | last
        score = self.decisions.best_mean if alias == "best" else self.evaluator.last_mean
        metadata = {
            "env_steps": env_steps,
            "eval_return": score,
            "protocol": self.cfg.protocol.name,
            "run_name": self.cfg.run_name,
            "env": self.cfg.env.id,
            "algo": self.cfg.algo.name,
        }
        self.loggers.log_checkpoint(path, alias, metadata)

    def save_state(self) -> None:
        """Everything resume needs (``state.pt`` and the replay), from each component's state."""
        self.learner.check_finite()
        state = {
            "env_steps": self.collector.env_steps,
            "config": self.config,
            "wandb_id": self.loggers.wandb_id,
            "rng": rng_states(),
            "learner": self.learner.state_dict(),
            "collector": self.collector.state_dict(),
            "cadences": self.periodic.state_dict(),
            "evaluator": self.evaluator.state_dict(),
            "decisions": self.decisions.state_dict(),
            "summary": self.summary.state_dict(),
            "progress": self.progress.state_dict(),
        }
        self.metrics.flush()
        buffer = self.learner.buffer
        replay = buffer.state_dict() if buffer is not None and self.cfg.checkpoint.buffer else None
        write_state(state, self.decisions.ckpt_dir, replay)
        self.checkpoint_step = self.collector.env_steps


def run(
    cfg: DictConfig,
    run_dir: Path,
    on_eval: Callable[[int, float], bool] | None = None,
    extra_config: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """One run of a validated config: ``Runner(...).run()`` (see :class:`Runner`)."""
    return Runner(cfg, run_dir, on_eval, extra_config).run()
