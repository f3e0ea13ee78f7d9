"""DQN (Mnih et al. 2015) as a LightningModule: the update, top to bottom.

One update is two halves, each in one place:

1. ``dqn/stream.py`` (``ReplayStream.__iter__``): step the env until an update is due,
   then sample a batch from replay.
2. ``DQN.training_step`` below: TD target -> loss -> optimizer step -> target sync if due.

The module owns the online and target networks, the loss and the target sync; it steps no env
and samples nothing. Optimization is manual so the whole update reads in one method, in the
order it happens (Lightning still runs precision, devices and the loop).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torch import nn

from dqn_harness.dqn.augment import RandomShift
from dqn_harness.dqn.clip import clip_grad_norm
from dqn_harness.errors import Diverged
from dqn_harness.nets import half_precision
from dqn_harness.schedules import TargetSync


class DQN(pl.LightningModule):
    """Online and target Q-networks trained on replayed batches.

    Args:
        q_net: the online network (observations as stored -> Q-values); the target network is
            a frozen copy of it.
        gamma: discount of the TD target.
        lr: Adam step size.
        lr_at: Adam's step size at an agent step (``LrSchedule``), set before each update;
            ``None`` keeps ``lr``.
        eps: Adam epsilon (Dopamine's 1.5e-4 for Atari).
        fused: one fused Adam kernel (same update, a quarter of the CPU time).
        loss: ``huber`` (smooth L1, the Nature paper's clipped error) or ``mse``.
        reward_clip: train on sign(r), as the Nature paper does for Atari; returns stay raw.
        target_sync: agent steps between hard copies of the online net into the target.
        double: Double DQN (the online net picks the next action, the target net values it).
        max_grad_norm: clip the gradient's global norm to this (``None``: no clipping).
        augment: transforms each batch before the update (``RandomShift``), or ``None``.
        priority_update: prioritized replay's hook, called with each batch's indices and
            |TD errors| (``ReplayBuffer.update_priority``; a uniform sampler ignores them).
    """

    def __init__(
        self,
        q_net: nn.Module,
        *,
        gamma: float,
        lr: float,
        lr_at: Callable[[int], float] | None = None,
        eps: float = 1.5e-4,
        fused: bool = True,
        loss: str = "huber",
        reward_clip: bool = False,
        target_sync: int = 1000,
        double: bool = False,
        max_grad_norm: float | None = None,
        priority_update: Callable[[np.ndarray, np.ndarray], None] | None = None,
        augment: RandomShift | None = None,
    ) -> None:
        super().__init__()
        self.automatic_optimization = False  # the update is written out in training_step
        self.q_net = q_net
        self.target_net = copy.deepcopy(q_net).requires_grad_(False)
        self.gamma = gamma
        self.lr = lr
        self.lr_at = lr_at
        self.eps = eps
        self.fused = fused
        self.loss_fn = F.smooth_l1_loss if loss == "huber" else F.mse_loss
        self.reward_clip = reward_clip
        self.double_dqn = double
        self.max_grad_norm = max_grad_norm
        self.sync = TargetSync(target_sync)
        self.priority_update = priority_update
        self.augment = augment
        self.env_steps: int | None = None  # the agent step the current batch was sampled at
        self.stats = torch.zeros(3)  # running sums of loss and q, and the update count
        self.grad_offset = 0  # gradient steps taken before a resume
        self.optimizer_state: dict[str, Any] | None = None  # restored once the trainer has one
        self._pending_priorities: tuple[torch.Tensor, torch.Tensor, Any] | None = None
        # A 16-bit copy of the target net for mixed-precision updates, outside the module's
        # registry (not in state_dict, not in checkpoints): rebuilt when the target changes.
        self._half_target: dict[torch.dtype, nn.Module] = {}

    @property
    def grad_steps(self) -> int:
        return self.grad_offset + self.trainer.global_step

    def resume(self, *, grad_steps: int, optimizer_state: dict[str, Any] | None) -> None:
        """Continue a checkpointed run: its gradient-step count, and Adam's state once the
        trainer has built the optimizer (``on_train_start``)."""
        self.grad_offset = grad_steps
        self.optimizer_state = optimizer_state

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
        target_net = self.frozen_target(next_obs.device.type)
        # .float(): under bf16 autocast the networks answer in bf16; the target stays fp32
        if self.double_dqn:
            next_actions = self.q_net(next_obs).argmax(dim=1, keepdim=True)
            next_q = target_net(next_obs).float().gather(1, next_actions).squeeze(1)
        else:
            next_q = target_net(next_obs).float().max(dim=1).values
        return returns + discount * (1.0 - batch["terminated"]) * next_q

    def frozen_target(self, device_type: str) -> nn.Module:
        """The target net to evaluate next states with. Under 16-bit autocast, a copy of it in
        that dtype: autocast caches the casts of trainable weights only, so the frozen target's
        1.7M fp32 weights would otherwise be cast again at every update although they change
        only at a sync. The copy is made at the first update after each change."""
        dtype = half_precision(device_type, torch.float32)  # autocast's 16-bit dtype, if any
        if dtype is None:
            return self.target_net
        if dtype not in self._half_target:
            self._half_target[dtype] = copy.deepcopy(self.target_net).to(dtype)
        return self._half_target[dtype]

    def load_target(self, state: dict[str, torch.Tensor]) -> None:
        """Set the target net's weights (a sync, or a resume); its 16-bit copy is made anew."""
        self.target_net.load_state_dict(state)
        self._half_target.clear()

    def td_loss(
        self, batch: dict[str, torch.Tensor]
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Loss, Q(s, a) and the TD errors; prioritized batches weight each sample's loss."""
        target = self.td_target(batch)
        q = self.q_net(batch["obs"]).float().gather(1, batch["actions"].unsqueeze(1)).squeeze(1)
        losses = self.loss_fn(q, target, reduction="none")  # fp32, whatever the precision
        if "weights" in batch:
            losses = losses * batch["weights"]
        return losses.mean(), q, (target - q).detach()

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        """One update: TD target and loss, optimizer step, then the target sync if it is due.

        ``batch["env_steps"]`` is the agent step the batch was sampled at: the sync is decided
        on it, never on the collector (which Lightning's prefetch has already moved on).
        """
        self.env_steps = int(batch["env_steps"])
        if self.augment is not None:
            batch = self.augment(batch)
        loss, q, td = self.td_loss(batch)
        # On CPU the check is free, so it runs every update and names the exact step; on a GPU
        # it would force a sync per update, so there pop_stats checks at every scalar log.
        if loss.device.type == "cpu" and not torch.isfinite(loss):
            self._diverged("loss")
        if self.priority_update is not None and "indices" in batch:
            self._update_priorities(batch["indices"], td.abs())

        optimizer = self.optimizers()
        optimizer.zero_grad()  # type: ignore[union-attr]
        self.manual_backward(loss)
        if self.max_grad_norm is not None:
            # the fp32 master gradients (no loss scaler in 32-true or bf16-mixed), clipped here
            # with torch's norm and rescale (dqn.clip), not by Lightning: its mixed-precision
            # plugin refuses to clip for a fused Adam
            clip_grad_norm(list(self.q_net.parameters()), self.max_grad_norm)
        if self.lr_at is not None:
            self.lr = self.lr_at(self.env_steps)
            for group in optimizer.param_groups:  # type: ignore[union-attr]
                group["lr"] = self.lr
        optimizer.step()  # type: ignore[union-attr]

        if self.sync.due(self.env_steps):
            self.load_target(self.q_net.state_dict())

        if self.stats.device != loss.device:
            self.stats = self.stats.to(loss.device)
        self.stats += torch.stack([loss.detach(), q.detach().mean(), torch.ones_like(loss)])
        return loss

    def _update_priorities(self, indices: torch.Tensor, td_abs: torch.Tensor) -> None:
        """Hand |TD errors| to the prioritized sampler (on the host).

        On CPU at once. On a GPU a host copy now would wait for this update's kernels (a sync
        per update), so the copies start without waiting and are applied at the next update,
        by which time they have long arrived: priorities lag one update there.
        """
        if td_abs.device.type == "cpu":
            assert self.priority_update is not None
            self.priority_update(indices.numpy(), td_abs.numpy())
            return
        self.flush_priorities()
        event = torch.cuda.Event()
        copies = (indices.to("cpu", non_blocking=True), td_abs.to("cpu", non_blocking=True))
        event.record()
        self._pending_priorities = (*copies, event)

    def flush_priorities(self) -> None:
        """Apply the GPU path's last deferred priorities (before a checkpoint, at the end)."""
        pending, self._pending_priorities = self._pending_priorities, None
        if pending is not None and self.priority_update is not None:
            indices, td_abs, event = pending
            event.synchronize()
            self.priority_update(indices.numpy(), td_abs.numpy())

    def _diverged(self, what: str) -> None:
        raise Diverged(what, self.env_steps or 0, self.grad_steps)

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
        return torch.optim.Adam(self.q_net.parameters(), lr=self.lr, eps=self.eps, fused=self.fused)
