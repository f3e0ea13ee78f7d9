"""Run tracking: loggers with agent env steps as the x-axis, the progress bar, summary.json.

Lightning's ``global_step`` counts gradient steps, which differ from agent steps by ``train_freq``
and from Atari frames by ``frame_skip``. Every metric here is logged with an explicit ``env_steps``
value, and in W&B ``env_steps`` is declared the step metric, so curves from DQN and tabular runs,
or runs with different ``train_freq``, line up. The same records go to ``metrics.jsonl`` in the
run dir whatever the logger, so sweeps and local tools read a run's curves without W&B.

The W&B run config is flat (``optim.lr``, not ``optim: {lr}``): the run table and the
parallel-coordinates plot then offer every hyperparameter as a column directly.
"""

from __future__ import annotations

import json
import sys
import time
from collections import deque
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.loggers import CSVLogger, Logger, TensorBoardLogger, WandbLogger
from tqdm import tqdm

from dqn_harness.files import write_text_atomic
from dqn_harness.progress import Pace, duration
from dqn_harness.wandb_mode import wandb_mode

STEP_METRIC = "env_steps"
METRIC_PREFIXES = ("train", "eval", "perf")
METRICS_FILE = "metrics.jsonl"
CONFIG_FILE = (
    "config.json"  # the flat resolved config W&B gets; compare.py filters and groups on it
)
# What runs log (sweep objectives are checked against these before any trial runs).
LOGGED_METRICS = (
    "eval/return_mean",
    "eval/return_std",
    "train/episode_return",
    "train/episode_length",
    "train/epsilon",
    "train/loss",
    "train/q_mean",
    "train/grad_steps",
    "train/td_error_abs",
    "train/states_visited",
    "perf/sps",
    "perf/wall_s",
)
# Numeric fields of summary.json.
SUMMARY_FIELDS = (
    "best_eval_return",
    "eval_return_mean",
    "solved",
    "solved_at_step",
    "env_steps",
    "episodes",
    "evaluations",
    "grad_steps",
    "sps",
    "wall_s",
)


def flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
    """Nested dicts to dotted keys; lists stay values (``model.hidden: [64, 64]``)."""
    if not isinstance(tree, dict):
        return {prefix: tree}
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        flat.update(
            flatten(value, f"{prefix}{key}.")
            if isinstance(value, dict) and value
            else {f"{prefix}{key}": value}
        )
    return flat


def read_metrics(run_dir: Path, key: str) -> list[tuple[int, float]]:
    """(env_steps, value) of every record of ``key`` a run logged, in order."""
    path = run_dir / METRICS_FILE
    if not path.exists():
        return []
    out = []
    with open(path) as f:
        for line in f:
            record = json.loads(line)
            if key in record:
                out.append((int(record[STEP_METRIC]), float(record[key])))
    return out


def run_config(cfg: DictConfig, extra_config: dict[str, Any] | None = None) -> dict[str, Any]:
    """The run's resolved config, flat, plus what a sweep adds (study, trial number)."""
    return {**flatten(OmegaConf.to_container(cfg, resolve=True)), **(extra_config or {})}


def make_loggers(
    cfg: DictConfig,
    run_dir: Path,
    config: dict[str, Any],
    wandb_id: str | None = None,
) -> list[Logger]:
    name = cfg.logger.name
    if name == "none":
        return []
    if name == "csv":
        return [CSVLogger(str(run_dir), name="csv", version="")]
    if name == "tensorboard":
        return [TensorBoardLogger(str(run_dir), name="tensorboard", version="")]
    mode = wandb_mode(cfg.logger.mode)
    resume_kwargs: dict[str, Any] = {"id": wandb_id, "resume": "allow"} if wandb_id else {}
    save_dir = Path(cfg.logger.save_dir)
    save_dir.mkdir(parents=True, exist_ok=True)
    logger = WandbLogger(
        name=cfg.run_name,
        project=cfg.logger.project,
        entity=cfg.logger.entity,
        save_dir=str(save_dir),
        offline=mode == "offline",
        mode=mode,
        group=cfg.logger.group or cfg.env.name,
        tags=list(cfg.logger.tags) + [cfg.env.name, cfg.algo.name],
        job_type=cfg.logger.job_type,
        config=config,
        log_model=False,
        # A resumed run continues the same W&B run; its env_steps axis carries on.
        **resume_kwargs,
    )
    # Lightning always passes wandb's removed `anonymous` setting, and wandb warns about it on
    # every run (loudly so in a sweep); dropping the key changes nothing else.
    logger._wandb_init.pop("anonymous", None)
    return [logger]


class Tracker:
    """Fans metrics out to the loggers, draws the progress bar, writes summary.json."""

    def __init__(
        self,
        cfg: DictConfig,
        run_dir: Path,
        progress: bool = True,
        extra_config: dict[str, Any] | None = None,
        resume: dict[str, Any] | None = None,
    ) -> None:
        self.cfg = cfg
        self.run_dir = run_dir
        wandb_id = resume.get("wandb_id") if resume else None
        flat = run_config(cfg, extra_config)
        write_text_atomic(run_dir / CONFIG_FILE, json.dumps(flat, indent=1))
        self.loggers = make_loggers(cfg, run_dir, flat, wandb_id)
        self.wandb_id: str | None = None
        # A resumed run continues its records (trimmed to the checkpoint); a new run in a reused
        # directory starts a fresh file rather than splicing two runs' curves together.
        mode = "a" if resume else "w"
        self.metrics_file = open(run_dir / METRICS_FILE, mode)  # noqa: SIM115 (closed in close())
        self.wandb_run_dir: str | None = None
        for lg in self.loggers:
            if isinstance(lg, WandbLogger):
                run = lg.experiment
                self.wandb_id = run.id
                run.define_metric(STEP_METRIC)
                # Lightning declared "*" against its trainer/global_step (gradient steps);
                # re-declaring the glob makes agent steps the x-axis of anything logged.
                run.define_metric("*", step_metric=STEP_METRIC)
                for prefix in METRIC_PREFIXES:
                    run.define_metric(f"{prefix}/*", step_metric=STEP_METRIC)
                self.wandb_run_dir = str(Path(run.dir).parent.resolve())
                # A sweep prints this once for all its trials.
                if wandb_mode(cfg.logger.mode) == "offline" and cfg.logger.job_type != "trial":
                    print(
                        f"W&B is offline (no API key configured): run in {self.wandb_run_dir}\n"
                        f"  browse: wandb leet {Path(cfg.logger.save_dir) / 'wandb'}   "
                        f"upload: wandb sync {self.wandb_run_dir}",
                        file=sys.stderr,
                    )
        self.start = time.perf_counter()
        self.prior_wall_s = 0.0  # wall time of the sessions before a resume
        self.recent_returns: deque[float] = deque(maxlen=20)
        self.episodes = 0
        self.env_steps = 0
        self._rate_mark = (self.start, 0)
        self._bar_time = 0.0
        self.pace = Pace()
        self.warmup_steps = cfg.learning_starts if cfg.algo.name == "dqn" else 0
        self.bar = tqdm(
            total=cfg.total_steps,
            unit="step",
            dynamic_ncols=True,
            disable=not progress,
            mininterval=0.5,
            file=sys.stderr,
            # tqdm's own rate and time left average over the whole run (warm-up included):
            # the postfix carries the recent pace and the time left instead
            bar_format="{percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} [{elapsed}{postfix}]",
        )

        if resume:
            self.load_state_dict(resume["tracker"])

    def log(self, metrics: dict[str, float], env_steps: int) -> None:
        self.metrics_file.write(json.dumps({STEP_METRIC: env_steps, **metrics}) + "\n")
        for lg in self.loggers:
            if isinstance(lg, WandbLogger):
                lg.experiment.log({**metrics, STEP_METRIC: env_steps})
            else:
                lg.log_metrics(metrics, step=env_steps)

    def flush(self) -> None:
        """Put every record so far on disk: called before each checkpoint, so a killed run's
        metrics.jsonl holds every step up to the checkpoint it resumes from (no gap)."""
        self.metrics_file.flush()

    def log_video(self, path: Path, env_steps: int, episode_return: float) -> None:
        """W&B shows the GIF under ``eval/video`` at this step; other loggers keep the file only."""
        for lg in self.loggers:
            if isinstance(lg, WandbLogger):
                import wandb

                caption = f"{env_steps:,} agent steps, return {episode_return:g}"
                video = wandb.Video(str(path), format="gif", caption=caption)
                lg.experiment.log({"eval/video": video, STEP_METRIC: env_steps})

    def on_episode(self, env_steps: int, episode_return: float, length: int) -> None:
        self.episodes += 1
        self.recent_returns.append(episode_return)
        self.log(
            {"train/episode_return": episode_return, "train/episode_length": float(length)},
            env_steps,
        )

    def on_step(self, env_steps: int, epsilon: float) -> None:
        """Called after every vector step: redraws the bar at most twice a second."""
        self.env_steps = env_steps
        now = time.perf_counter()
        if now - self._bar_time > 0.5:
            self._bar_time = now
            # DQN's first learning_starts steps only collect; their pace says nothing of the rest
            phase = "warm-up" if env_steps < self.warmup_steps else "learning"
            self.pace.mark(now, env_steps, phase)
            self.bar.n = min(env_steps, self.bar.total)
            ret = (
                sum(self.recent_returns) / len(self.recent_returns)
                if self.recent_returns
                else float("nan")
            )
            left = (
                duration(self.pace.seconds_left(self.bar.total - self.bar.n))
                if phase == "learning"
                else "?"
            )
            self.bar.set_postfix_str(
                f"{phase} return={ret:.2f} eps={epsilon:.3f} sps={self.pace.rate:.0f} left={left}",
                refresh=False,
            )
            self.bar.refresh()

    def throughput(self, env_steps: int) -> dict[str, float]:
        """perf/sps since the previous call and perf/wall_s, for a periodic log record."""
        now = time.perf_counter()
        t0, s0 = self._rate_mark
        self._rate_mark = (now, env_steps)
        return {"perf/sps": (env_steps - s0) / max(now - t0, 1e-9), "perf/wall_s": self.wall_s}

    def state_dict(self) -> dict[str, Any]:
        return {
            "episodes": self.episodes,
            "env_steps": self.env_steps,
            "recent_returns": list(self.recent_returns),
            "wall_s": self.wall_s,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.episodes = state["episodes"]
        self.env_steps = state["env_steps"]
        self.recent_returns.extend(state["recent_returns"])
        self.prior_wall_s = state["wall_s"]
        self._rate_mark = (self.start, self.env_steps)
        self.bar.n = min(self.env_steps, self.bar.total)

    @property
    def wall_s(self) -> float:
        return self.prior_wall_s + time.perf_counter() - self.start

    def write_summary(self, fields: dict[str, Any]) -> dict[str, Any]:
        summary = {
            "env_steps": self.env_steps,
            "sps": self.env_steps / max(self.wall_s, 1e-9),
            "wall_s": self.wall_s,
            "wandb_run_dir": self.wandb_run_dir,
            "episodes": self.episodes,
            **fields,
        }
        write_text_atomic(self.run_dir / "summary.json", json.dumps(summary, indent=2))
        return summary

    def close(self, summary: dict[str, Any], status: str) -> None:
        """Finish the bar and the loggers; W&B gets the summary fields and the exit status."""
        self.bar.n = min(self.env_steps, self.bar.total)
        self.bar.close()
        self.metrics_file.close()
        ok = status in ("finished", "solved", "pruned")  # a pruned trial ran correctly
        for lg in self.loggers:
            if isinstance(lg, WandbLogger):
                run = lg.experiment
                for key, value in summary.items():
                    if value is not None:
                        run.summary[key] = value
                run.summary["status"] = status
                if status in ("pruned", "interrupted", "failed", "diverged"):
                    run.tags = (*run.tags, status)
                run.finish(exit_code=0 if ok else 1)
            else:
                lg.finalize("success" if ok else "failed")
