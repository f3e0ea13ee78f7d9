"""The loggers a run writes to, W&B's set-up among them, behind one small interface.

W&B needs more than a logger: agent steps declared the x-axis of every key (``define_metric``),
the offline hint (where the run is, how to upload it), videos, and at the end the summary, the
status tag and the exit code. All of that is here, so nothing else asks which logger it holds.
The W&B run config is flat (``optim.lr``, not ``optim: {lr}``): the run table and the
parallel-coordinates plot then offer every hyperparameter as a column directly.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from pytorch_lightning.loggers import CSVLogger, Logger, TensorBoardLogger, WandbLogger

from dqn_harness.tracking.wandb_mode import wandb_mode

STEP_METRIC = "env_steps"
METRIC_PREFIXES = ("train", "eval", "perf")
FAILED_TAGS = ("pruned", "interrupted", "failed", "diverged")


class Loggers:
    """The W&B run (if any) and Lightning's file loggers (CSV, TensorBoard), fed alike."""

    def __init__(self, wandb_run: Any = None, files: list[Logger] | None = None) -> None:
        self.wandb_run = wandb_run
        self.files = files or []

    @property
    def wandb_id(self) -> str | None:
        return None if self.wandb_run is None else str(self.wandb_run.id)

    @property
    def wandb_run_dir(self) -> str | None:
        return None if self.wandb_run is None else str(Path(self.wandb_run.dir).parent.resolve())

    def log(self, metrics: dict[str, float], env_steps: int) -> None:
        if self.wandb_run is not None:
            self.wandb_run.log({**metrics, STEP_METRIC: env_steps})
        for lg in self.files:
            lg.log_metrics(metrics, step=env_steps)

    def log_video(self, path: Path, env_steps: int, episode_return: float) -> None:
        """W&B shows the GIF under ``eval/video`` at this step; file loggers keep the file only."""
        if self.wandb_run is None:
            return
        import wandb

        caption = f"{env_steps:,} agent steps, return {episode_return:g}"
        video = wandb.Video(str(path), format="gif", caption=caption)
        self.wandb_run.log({"eval/video": video, STEP_METRIC: env_steps})

    def log_checkpoint(self, path: Path, alias: str, metadata: dict[str, Any]) -> None:
        """A weights file as a version of the run's model artifact (``model-<run id>``, as
        Lightning names it), with the alias (``best``/``last``) and the agent step's, and what
        it scored under which protocol. The file is staged at once: a later write of the same
        path does not change this version."""
        if self.wandb_run is None:
            return
        import wandb

        artifact = wandb.Artifact(f"model-{self.wandb_run.id}", type="model", metadata=metadata)
        artifact.add_file(str(path), name=path.name)
        aliases = [alias, f"step-{metadata['env_steps']}"]
        self.wandb_run.log_artifact(artifact, aliases=aliases)

    def finish(self, summary: dict[str, Any], status: str) -> None:
        """W&B gets the summary fields, the status (and a tag for a bad one) and exit code."""
        ok = status in ("finished", "solved", "pruned")  # a pruned trial ran correctly
        run = self.wandb_run
        if run is not None:
            for key, value in summary.items():
                if value is not None:
                    run.summary[key] = value
            run.summary["status"] = status
            if status in FAILED_TAGS:
                run.tags = (*run.tags, status)
            run.finish(exit_code=0 if ok else 1)
        for lg in self.files:
            lg.finalize("success" if ok else "failed")


def make_loggers(
    logger: Any,
    *,
    run_dir: Path,
    run_name: str,
    default_group: str,
    tags: list[str],
    config: dict[str, Any],
    wandb_id: str | None = None,
    resumed_at: int | None = None,
) -> Loggers:
    """The loggers ``logger.*`` names; a ``wandb_id`` resumes that W&B run (same axis).

    A resumed run (``resumed_at``: the agent step it continues from) writes its CSV to
    ``csv/resumed-<step>/metrics.csv``: Lightning's CSV logger deletes the ``metrics.csv`` it
    finds in its folder, which would lose the rows before the resume. (``metrics.jsonl`` is the
    run's whole record in one file; TensorBoard adds event files and loses nothing.)
    """
    if logger.name == "none":
        return Loggers()
    if logger.name == "csv":
        version = "" if resumed_at is None else f"resumed-{resumed_at}"
        return Loggers(files=[CSVLogger(str(run_dir), name="csv", version=version)])
    if logger.name == "tensorboard":
        return Loggers(files=[TensorBoardLogger(str(run_dir), name="tensorboard", version="")])
    mode = wandb_mode(logger.mode)
    resume_kwargs: dict[str, Any] = {"id": wandb_id, "resume": "allow"} if wandb_id else {}
    save_dir = Path(logger.save_dir)
    save_dir.mkdir(parents=True, exist_ok=True)
    wandb_logger = WandbLogger(
        name=run_name,
        project=logger.project,
        entity=logger.entity,
        save_dir=str(save_dir),
        offline=mode == "offline",
        mode=mode,
        group=logger.group or default_group,
        tags=list(logger.tags) + tags,
        job_type=logger.job_type,
        config=config,
        log_model=False,
        **resume_kwargs,
    )
    # Lightning always passes wandb's removed `anonymous` setting, and wandb warns about it on
    # every run (loudly so in a sweep); dropping the key changes nothing else.
    wandb_logger._wandb_init.pop("anonymous", None)
    run = wandb_logger.experiment
    declare_step_metric(run)
    loggers = Loggers(wandb_run=run)
    if mode == "offline" and logger.job_type != "trial":  # a sweep prints this once for all
        where = loggers.wandb_run_dir
        print(
            f"W&B is offline (no API key configured): run in {where}\n"
            f"  browse: wandb leet {save_dir / 'wandb'}   upload: wandb sync {where}",
            file=sys.stderr,
        )
    return loggers


def declare_step_metric(run: Any) -> None:
    """Agent steps as the x-axis of every key. Lightning declared ``*`` against its
    trainer/global_step (gradient steps); re-declaring the glob overrides that."""
    run.define_metric(STEP_METRIC)
    run.define_metric("*", step_metric=STEP_METRIC)
    for prefix in METRIC_PREFIXES:
        run.define_metric(f"{prefix}/*", step_metric=STEP_METRIC)
