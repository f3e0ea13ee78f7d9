"""DQN (Mnih et al. 2015) as a LightningModule, and the wiring that trains it.

The module owns the online and target networks, the TD loss and the target sync. Lightning owns
the optimisation loop; the replay dataset decides when a gradient step is due; the collector is
the only thing that steps the environment.
"""

from __future__ import annotations

import copy
import logging
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.utilities.exceptions import SIGTERMException
from torch import nn
from torch.utils.data import DataLoader

from dqn_harness.checkpointing import load_replay, run_state, write_state
from dqn_harness.collector import Collector
from dqn_harness.envs import is_atari, make_vec_env
from dqn_harness.evaluation import Evaluator, save_atomic
from dqn_harness.nets import build_q_net
from dqn_harness.replay import ReplayBuffer, ReplayDataset
from dqn_harness.replay.prioritized import PrioritizedSampler
from dqn_harness.schedules import Cadence, EpsilonSchedule, TargetSync
from dqn_harness.stopping import Diverged, StopFlag
from dqn_harness.tracking import Tracker


class DQN(pl.LightningModule):
    def __init__(
        self,
        q_net: nn.Module,
        gamma: float,
        lr: float,
        adam_eps: float = 1.5e-4,
        fused: bool = True,
        loss: str = "huber",
        reward_clip: bool = False,
        target_sync: int = 1000,
        double: bool = False,
    ) -> None:
        super().__init__()
        self.q_net = q_net
        self.target_net = copy.deepcopy(q_net).requires_grad_(False)
        self.gamma = gamma  # discount of the TD target
        self.lr = lr  # Adam step size
        self.adam_eps = adam_eps  # Adam epsilon (Dopamine's 1.5e-4 for Atari)
        self.fused = fused  # fused Adam kernel: same update, a quarter of the CPU time
        self.loss_fn = F.smooth_l1_loss if loss == "huber" else F.mse_loss
        self.reward_clip = reward_clip  # train on sign(r), as the Nature paper does for Atari
        self.double_dqn = double  # Double DQN: decouple choosing the next action from valuing it
        # prioritized replay: called with a batch's indices and |TD errors| after its loss
        self.priority_update: Callable[[np.ndarray, np.ndarray], None] | None = None
        self.sync = TargetSync(target_sync)
        self.collector: Collector | None = None  # set once built: it needs self.greedy
        self.dataset: ReplayDataset | None = None
        self.stats = torch.zeros(3)  # running sums of loss and q, and the update count
        self.grad_offset = 0  # gradient steps taken before a resume
        self.optimizer_state: dict[str, Any] | None = None  # restored once the trainer has one

    @property
    def grad_steps(self) -> int:
        return self.grad_offset + self.trainer.global_step

    def on_train_start(self) -> None:
        if self.optimizer_state is not None:
            self.trainer.optimizers[0].load_state_dict(self.optimizer_state)
            self.optimizer_state = None

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.q_net(obs)

    @torch.no_grad()
    def greedy(self, obs: np.ndarray) -> np.ndarray:
        q = self.q_net(torch.as_tensor(obs, device=self.device))
        return q.argmax(1).cpu().numpy()

    @torch.no_grad()
    def td_target(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """y = R + gamma^m (1 - terminated) Q_target(s', a*), with R and a* as configured.

        One-step: R = r, m = 1. n-step: ``rewards`` is the (B, n) window, zero past its end;
        each reward is clipped before discounting and R = sum_k gamma^k r_k, m the window's
        length. a* = argmax Q_target(s') (DQN), or argmax Q_online(s') (Double DQN: the max
        of noisy estimates is biased upward; choosing with one net and valuing with the other
        removes most of that bias). Terminal windows do not bootstrap; truncated ones do.
        """
        rewards = torch.sign(batch["rewards"]) if self.reward_clip else batch["rewards"]
        if rewards.dim() == 2:
            k = torch.arange(rewards.shape[1], device=rewards.device, dtype=rewards.dtype)
            returns = rewards @ (self.gamma**k)
            discount = self.gamma ** batch["n_steps"].to(rewards.dtype)
        else:
            returns, discount = rewards, torch.full_like(rewards, self.gamma)
        next_obs = batch["next_obs"]
        if self.double_dqn:
            next_actions = self.q_net(next_obs).argmax(dim=1, keepdim=True)
            next_q = self.target_net(next_obs).gather(1, next_actions).squeeze(1)
        else:
            next_q = self.target_net(next_obs).max(dim=1).values
        return returns + discount * (1.0 - batch["terminated"]) * next_q

    def td_loss(
        self, batch: dict[str, torch.Tensor]
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Loss, Q(s, a) and the TD errors; prioritized batches weight each sample's loss."""
        target = self.td_target(batch)
        q = self.q_net(batch["obs"]).gather(1, batch["actions"].unsqueeze(1)).squeeze(1)
        losses = self.loss_fn(q, target, reduction="none")
        if "weights" in batch:
            losses = losses * batch["weights"]
        return losses.mean(), q, (target - q).detach()

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        loss, q, td = self.td_loss(batch)
        # On CPU the check is free, so it runs every update and names the exact step; on a GPU
        # it would force a sync per update, so there pop_stats checks at every scalar log.
        if loss.device.type == "cpu" and not torch.isfinite(loss):
            self._diverged("loss")
        if self.priority_update is not None and "indices" in batch:
            self.priority_update(batch["indices"].cpu().numpy(), td.abs().cpu().numpy())
        if self.stats.device != loss.device:
            self.stats = self.stats.to(loss.device)
        self.stats += torch.stack([loss.detach(), q.detach().mean(), torch.ones_like(loss)])
        return loss

    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        assert self.collector is not None
        if self.sync.due(self.collector.env_steps):
            self.target_net.load_state_dict(self.q_net.state_dict())

    def _diverged(self, what: str) -> None:
        env_steps = self.collector.env_steps if self.collector is not None else 0
        raise Diverged(what, env_steps, self.grad_steps)

    def check_finite(self) -> list[float]:
        """Raise Diverged if any loss or Q since the last log was non-finite; return the sums.

        A NaN poisons the running sums, so one device sync checks every update since the last
        log. Called at each log and before anything is written to disk, so on a GPU (where
        updates are not checked one by one) no checkpoint ever holds diverged weights.
        """
        loss, q, n = self.stats.tolist()
        if not (np.isfinite(loss) and np.isfinite(q)):
            self._diverged("loss" if not np.isfinite(loss) else "Q-value")
        return [loss, q, n]

    def pop_stats(self) -> dict[str, float]:
        """Mean loss and Q since the last call (one device sync per log, not per step)."""
        loss, q, n = self.check_finite()
        self.stats.zero_()
        return {} if n == 0 else {"train/loss": loss / n, "train/q_mean": q / n}

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(
            self.q_net.parameters(), lr=self.lr, eps=self.adam_eps, fused=self.fused
        )

    def train_dataloader(self) -> DataLoader:
        assert self.dataset is not None, "set module.dataset before fitting"
        return DataLoader(self.dataset, batch_size=None, num_workers=0)


class Monitor(pl.Callback):
    """Per-update bookkeeping outside the algorithm: logs, evaluation, resumable checkpoints."""

    def __init__(
        self,
        tracker: Tracker,
        evaluator: Evaluator,
        log_every: int,
        save: Any,
        checkpoint_every: int,
        save_state: Any,
    ) -> None:
        self.tracker = tracker
        self.evaluator = evaluator
        self.log_cadence = Cadence(log_every)
        self.save = save
        self.checkpoint_cadence = Cadence(checkpoint_every)
        self.save_state = save_state

    def on_train_batch_end(
        self,
        trainer: pl.Trainer,
        module: pl.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
    ) -> None:
        assert isinstance(module, DQN) and module.collector is not None
        env_steps = module.collector.env_steps
        if self.log_cadence.due(env_steps):
            stats = module.pop_stats()
            stats["train/grad_steps"] = float(module.grad_steps)
            self.tracker.log(stats, env_steps)
        if self.evaluator.due(env_steps):
            module.check_finite()  # evaluation writes best/last checkpoints
            self.evaluator.run(env_steps, module.greedy, self.save)
        if self.checkpoint_cadence.due(env_steps):
            module.check_finite()
            self.save_state()


def quiet_lightning() -> None:
    """Drop Lightning's banner and num_workers hint: replay is in-process by design."""
    for name in ("pytorch_lightning.utilities.rank_zero", "pytorch_lightning.accelerators.cuda"):
        logging.getLogger(name).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", ".*does not have many workers.*")
    warnings.filterwarnings("ignore", ".*is an iterable dataset.*")


def make_sampler(cfg: DictConfig, buffer: ReplayBuffer) -> PrioritizedSampler | None:
    """``buffer=prioritized``: a sum-tree sampler with a leaf per slot of ``buffer``."""
    if cfg.buffer.name != "prioritized":
        return None
    b = cfg.buffer
    return PrioritizedSampler(
        buffer.num_envs * buffer.slots,
        alpha=b.alpha,
        beta=b.beta,
        beta_steps=b.beta_steps or cfg.total_steps,
        eps=b.eps,
        seed=cfg.seed + 1,
    )


def train_dqn(
    cfg: DictConfig,
    tracker: Tracker,
    evaluator: Evaluator,
    stop: StopFlag,
    resume: dict[str, Any] | None = None,
) -> dict[str, Any]:
    quiet_lightning()
    env = make_vec_env(cfg.env, cfg.env.num_envs)
    obs_space = env.single_observation_space
    n_actions = int(env.single_action_space.n)  # type: ignore[attr-defined]
    q_net = build_q_net(
        cfg.model.name,
        obs_space,
        n_actions,
        cfg.model.hidden,
        cfg.trainer.channels_last,
        cfg.model.dueling,
    )
    module = DQN(
        q_net,
        gamma=cfg.algo.gamma,
        lr=cfg.optim.lr,
        adam_eps=cfg.optim.eps,
        # AMP's gradient scaler cannot unscale inside a fused step (Lightning refuses the pair).
        fused=cfg.optim.fused and cfg.trainer.precision != "16-mixed",
        loss=cfg.algo.loss,
        reward_clip=cfg.algo.reward_clip,
        target_sync=cfg.schedule.target_sync,
        double=cfg.algo.double,
    )
    buffer = ReplayBuffer(
        cfg.buffer.capacity,
        cfg.env.num_envs,
        obs_space.shape,  # type: ignore[arg-type]
        obs_space.dtype,  # type: ignore[arg-type]
        stack=cfg.env.frame_stack if is_atari(cfg.env.id) else None,
        seed=cfg.seed,
    )
    buffer.sampler = make_sampler(cfg, buffer)
    if buffer.sampler is not None:
        module.priority_update = buffer.update_priorities
    if resume is not None:
        module.q_net.load_state_dict(resume["q_net"])
        module.target_net.load_state_dict(resume["target_net"])
        module.optimizer_state = resume["optimizer"]
        module.grad_offset = resume["grad_steps"]
        module.sync.period = resume["sync_period"]
        if resume["replay_file"]:
            load_replay(buffer, evaluator.ckpt_dir / resume["replay_file"])
    collector = Collector(
        env,
        module.greedy,
        EpsilonSchedule.from_config(cfg.schedule.epsilon),
        buffer,
        # a resumed run's envs start new episodes; a new seed keeps them from replaying old ones
        seed=cfg.seed + (resume["collector"]["env_steps"] if resume else 0),
        on_episode=tracker.on_episode,
        on_step=tracker.on_step,
    )
    if resume is not None:
        collector.restore(resume["collector"])
    module.collector = collector
    module.dataset = ReplayDataset(
        buffer,
        collector,
        batch_size=cfg.batch_size,
        learning_starts=cfg.learning_starts,
        train_freq=cfg.train_freq,
        total_steps=cfg.total_steps,
        should_stop=lambda: stop.is_set() or evaluator.should_stop,
        n_step=cfg.algo.n_step,
    )
    if resume is not None:
        # without its replay, a resumed run collects learning_starts steps before updating again
        module.dataset.next_update = (
            resume["next_update"]
            if resume["replay_file"]
            else collector.env_steps + cfg.learning_starts
        )
    config = OmegaConf.to_container(cfg, resolve=True)

    def weights() -> dict[str, Any]:
        return {
            "q_net": module.q_net.state_dict(),
            "target_net": module.target_net.state_dict(),
            "optimizer": trainer.optimizers[0].state_dict() if trainer.optimizers else None,
            "env_steps": collector.env_steps,
            "grad_steps": module.grad_steps,
            "config": config,
        }

    def save(path: Path) -> None:
        save_atomic(weights(), path, torch.save)

    def save_state() -> None:
        """Everything resume needs (checkpointing.py says what, and why it is kill-safe)."""
        assert module.dataset is not None
        state = {
            **weights(),
            **run_state(collector, tracker, evaluator, config),
            "sync_period": module.sync.period,
            "next_update": module.dataset.next_update,
            "log_period": monitor.log_cadence.period,
            "checkpoint_period": monitor.checkpoint_cadence.period,
        }
        write_state(state, evaluator.ckpt_dir, buffer if cfg.checkpoint.buffer else None)

    monitor = Monitor(tracker, evaluator, cfg.logger.every, save, cfg.checkpoint.every, save_state)
    if resume is not None:
        monitor.log_cadence.period = resume["log_period"]
        monitor.checkpoint_cadence.period = resume["checkpoint_period"]

    trainer = pl.Trainer(
        accelerator=cfg.trainer.accelerator,
        devices=cfg.trainer.devices,
        precision=cfg.trainer.precision,
        max_epochs=1,
        logger=False,
        callbacks=[monitor],
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        gradient_clip_val=cfg.algo.max_grad_norm,
        default_root_dir=str(tracker.run_dir),
    )
    try:
        trainer.fit(module)
    except SIGTERMException:
        # Lightning chains our SIGTERM handler (the stop flag is set) but then ends fit with its
        # own SystemExit; finish exactly as after Ctrl-C: checkpoint, summary, exit 143.
        if not stop.is_set():
            raise
    module.check_finite()
    evaluator.finish(collector.env_steps, module.greedy, save, interrupted=stop.is_set())
    save_state()
    env.close()
    return {
        "grad_steps": module.grad_steps,
        "replay_bytes": buffer.nbytes,
        "last_checkpoint": str(evaluator.ckpt_dir / "last.pt"),
    }
