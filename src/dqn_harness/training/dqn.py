"""DQN training: build the module, the replay and the batch stream in dependency order, then fit.

The update itself is in agents/dqn.py (``DQN.training_step``) and training/stream.py; this file
only wires them to the env, Lightning's Trainer and the run's cadences.
"""

from __future__ import annotations

import logging
import sys
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import pytorch_lightning as pl
from gymnasium.vector import VectorEnv
from omegaconf import DictConfig
from pytorch_lightning.utilities.exceptions import SIGTERMException
from torch.utils.data import DataLoader

from dqn_harness.agents.dqn import DQN
from dqn_harness.collector import Collector
from dqn_harness.envs import is_atari
from dqn_harness.nets import build_q_net
from dqn_harness.perf import training_precision
from dqn_harness.replay import make_replay
from dqn_harness.schedules import EpsilonSchedule
from dqn_harness.training.callbacks import Periodic, PeriodicCallback
from dqn_harness.training.stopping import StopFlag
from dqn_harness.training.stream import ReplayStream


def quiet_lightning() -> None:
    """Drop Lightning's banner and num_workers hint: replay is in-process by design."""
    for name in ("pytorch_lightning.utilities.rank_zero", "pytorch_lightning.accelerators.cuda"):
        logging.getLogger(name).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", ".*does not have many workers.*")
    warnings.filterwarnings("ignore", ".*is an iterable dataset.*")


class DQNLearner:
    """The DQN side of a run: module, replay, ε schedule; ``fit`` trains through Lightning."""

    def __init__(self, cfg: DictConfig, env: VectorEnv) -> None:
        quiet_lightning()
        self.cfg = cfg
        obs_space = env.single_observation_space
        q_net = build_q_net(
            cfg.model.name,
            obs_space,
            int(env.single_action_space.n),  # type: ignore[attr-defined]
            cfg.model.hidden,
            cfg.trainer.channels_last,
            cfg.model.dueling,
            cfg.model._target_,
        )
        self.buffer = make_replay(
            cfg,
            obs_space.shape,  # type: ignore[arg-type]
            obs_space.dtype,
            cfg.env.frame_stack if is_atari(cfg.env.id) else None,
        )
        self.module = DQN(
            q_net,
            gamma=cfg.algo.gamma,
            lr=cfg.optim.lr,
            adam_eps=cfg.optim.eps,
            fused=cfg.optim.fused,
            loss=cfg.algo.loss,
            reward_clip=cfg.algo.reward_clip,
            target_sync=cfg.schedule.target_sync,
            double=cfg.algo.double,
            max_grad_norm=cfg.algo.max_grad_norm,
            priority_update=self.buffer.update_priorities if self.buffer.prioritized else None,
        )
        self.epsilon = EpsilonSchedule.from_config(cfg.schedule.epsilon)
        self.precision, warning = training_precision(cfg.trainer.accelerator, cfg.trainer.precision)
        if warning:
            print(warning, file=sys.stderr)
        self.trainer: pl.Trainer | None = None
        self.stream: ReplayStream | None = None
        self.stream_state: dict[str, Any] | None = None  # from a checkpoint, applied in fit

    def greedy(self, obs: np.ndarray) -> np.ndarray:
        return self.module.greedy(obs)

    def check_finite(self) -> None:
        self.module.check_finite()

    def stats(self) -> dict[str, float]:
        return {**self.module.pop_stats(), "train/grad_steps": float(self.module.grad_steps)}

    def weights(self) -> dict[str, Any]:
        """What best.pt and last.pt hold (with the agent step and config the run adds)."""
        optimizers = self.trainer.optimizers if self.trainer is not None else []
        return {
            "q_net": self.module.q_net.state_dict(),
            "target_net": self.module.target_net.state_dict(),
            "optimizer": optimizers[0].state_dict() if optimizers else None,
            "grad_steps": self.module.grad_steps,
        }

    def state_dict(self) -> dict[str, Any]:
        self.module.flush_priorities()  # the replay saved with this state has them all
        return {
            **self.weights(),
            "sync": self.module.sync.state_dict(),
            "stream": self.stream.state_dict() if self.stream is not None else None,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.module.q_net.load_state_dict(state["q_net"])
        self.module.target_net.load_state_dict(state["target_net"])
        self.module.resume(grad_steps=state["grad_steps"], optimizer_state=state["optimizer"])
        self.module.sync.load_state_dict(state["sync"])
        self.stream_state = state["stream"]

    @property
    def policy_step(self) -> int | None:
        """The agent step of the batch the policy last learned from (None before any update)."""
        return self.module.env_steps

    @staticmethod
    def _loader(stream: ReplayStream, trainer: pl.Trainer) -> DataLoader:
        """Batches from page-locked memory on a GPU: Lightning then copies them without blocking
        (a copy from pageable memory waits for the host); on CPU pinning is only a copy."""
        on_gpu = trainer.strategy.root_device.type == "cuda"
        return DataLoader(stream, batch_size=None, num_workers=0, pin_memory=on_gpu)

    def summary(self) -> dict[str, Any]:
        return {"grad_steps": self.module.grad_steps, "replay_bytes": self.buffer.nbytes}

    def fit(
        self, collector: Collector, periodic: Periodic, stop: StopFlag, done: Callable[[], bool]
    ) -> None:
        """Train until ``total_steps`` agent steps or until ``done()`` (Ctrl-C, solved, pruned)."""
        cfg = self.cfg
        stream = self.stream = ReplayStream(
            buffer=self.buffer,
            collector=collector,
            batch_size=cfg.batch_size,
            learning_starts=cfg.learning_starts,
            train_freq=cfg.train_freq,
            total_steps=cfg.total_steps,
            should_stop=done,
            n_step=cfg.algo.n_step,
        )
        if self.stream_state is not None:
            if len(self.buffer):
                stream.load_state_dict(self.stream_state)
            else:  # resumed without its replay: collect learning_starts steps before updating
                stream.next_update = collector.env_steps + cfg.learning_starts
        self.trainer = pl.Trainer(
            accelerator=cfg.trainer.accelerator,
            devices=cfg.trainer.devices,
            precision=self.precision,  # type: ignore[arg-type]
            max_epochs=1,
            logger=False,
            callbacks=[PeriodicCallback(periodic, done)],
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            num_sanity_val_steps=0,
            default_root_dir=str(periodic.evaluator.ckpt_dir.parent),
        )
        try:
            self.trainer.fit(self.module, self._loader(stream, self.trainer))
        except SIGTERMException:
            # Lightning chains our SIGTERM handler (the stop flag is set) but then ends fit with
            # its own SystemExit; finish exactly as after Ctrl-C: checkpoint, summary, exit 143.
            if not stop.is_set():
                raise
        finally:
            self.module.flush_priorities()
        # Lightning's teardown moves the module to the CPU; the final evaluation belongs on
        # the device it trained on
        self.module.to(self.trainer.strategy.root_device)
