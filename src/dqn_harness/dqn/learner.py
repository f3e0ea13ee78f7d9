"""DQN training: build the module, the replay and the batch stream in dependency order, then fit.

The update itself is in ``dqn/module.py`` (``DQN.training_step``) and ``dqn/stream.py``; this
file only wires them to the env, Lightning's Trainer and the run's cadences.
"""

from __future__ import annotations

import logging
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
from gymnasium.vector import VectorEnv
from omegaconf import DictConfig
from pytorch_lightning.utilities.exceptions import SIGTERMException
from torch.utils.data import DataLoader

from dqn_harness.collector import Collector
from dqn_harness.dqn.augment import RandomShift
from dqn_harness.dqn.module import DQN
from dqn_harness.dqn.stream import ReplayStream
from dqn_harness.envs import is_atari
from dqn_harness.nets import build_q_net
from dqn_harness.perf import training_precision
from dqn_harness.replay import ReplayBuffer, make_replay
from dqn_harness.schedules import EpsilonSchedule, LrDrop, LrSchedule, NStepSchedule


def quiet_lightning() -> None:
    """Drop Lightning's banner and num_workers hint: replay is in-process by design."""
    for name in ("pytorch_lightning.utilities.rank_zero", "pytorch_lightning.accelerators.cuda"):
        logging.getLogger(name).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", ".*does not have many workers.*")
    warnings.filterwarnings("ignore", ".*is an iterable dataset.*")


class AfterUpdate(pl.Callback):
    """Runs the run's cadences after every update, at the agent step its batch carries.

    When ``done()`` says the run is over (solved, pruned, Ctrl-C) it stops the Trainer at once:
    Lightning has already fetched the next batch, and training on it would change the policy
    the last evaluation just judged.
    """

    def __init__(self, after: Callable[[int], None], done: Callable[[], bool]) -> None:
        self.after = after
        self.done = done

    def on_train_batch_end(
        self,
        trainer: pl.Trainer,
        module: pl.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
    ) -> None:
        self.after(int(batch["env_steps"]))
        if self.done():
            trainer.should_stop = True


class DQNLearner:
    """The DQN side of a run: module, replay, ε schedule; ``fit`` trains through Lightning.

    Args:
        module: the DQN (networks, TD target, loss, optimizer step, target sync).
        buffer: the replay it learns from.
        epsilon: agent step -> exploration (``schedule.epsilon``).
        trainer: ``trainer.*`` (accelerator, devices, precision).
        stream: the batch stream's settings by their config names (``batch_size``,
            ``learning_starts``, ``train_freq``, ``gradient_steps``, ``total_steps``, ``n_step``).
        run_dir: Lightning's root dir (it writes nothing there: logging is the run's own).
    """

    def __init__(
        self,
        *,
        module: DQN,
        buffer: ReplayBuffer,
        epsilon: EpsilonSchedule,
        trainer: Any,
        stream: dict[str, Any],
        run_dir: Path,
    ) -> None:
        quiet_lightning()
        self.module = module
        self.buffer = buffer
        self.epsilon = epsilon
        self.trainer_cfg = trainer
        self.stream_args = stream
        self.run_dir = run_dir
        self.precision, warning = training_precision(trainer.accelerator, trainer.precision)
        if warning:
            print(warning, file=sys.stderr)
        self.trainer: pl.Trainer | None = None
        self.stream: ReplayStream | None = None
        self.stream_state: dict[str, Any] | None = None  # from a checkpoint, applied in fit

    @property
    def warmup_steps(self) -> int:
        return self.stream_args["learning_starts"]

    def greedy(self, obs: np.ndarray) -> np.ndarray:
        return self.module.greedy(obs)

    def check_finite(self) -> None:
        self.module.check_finite()

    def stats(self) -> dict[str, float]:
        out = {**self.module.pop_stats(), "train/grad_steps": float(self.module.grad_steps)}
        if self.stream is not None and self.stream_args["n_step"].end is not None:
            out["train/n_step"] = float(self.stream.n_step)  # an annealed window: where it is
        if self.module.lr_at is not None:
            out["train/lr"] = float(self.module.lr)  # a decaying rate: where it is
        return out

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
        augment, lr_at = self.module.augment, self.module.lr_at
        return {
            **self.weights(),
            "sync": self.module.sync.state_dict(),
            "stream": self.stream.state_dict() if self.stream is not None else None,
            "augment": None if augment is None else augment.state_dict(),
            "lr_drop": lr_at.state_dict() if isinstance(lr_at, LrDrop) else None,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.module.q_net.load_state_dict(state["q_net"])
        self.module.load_target(state["target_net"])
        self.module.resume(grad_steps=state["grad_steps"], optimizer_state=state["optimizer"])
        self.module.sync.load_state_dict(state["sync"])
        self.stream_state = state["stream"]
        if self.module.augment is not None and state.get("augment"):
            self.module.augment.load_state_dict(state["augment"])
        # a run resumed with optim.lr_drop_score newly set starts undropped
        if isinstance(self.module.lr_at, LrDrop) and state.get("lr_drop"):
            self.module.lr_at.load_state_dict(state["lr_drop"])

    def on_evaluation(self, env_steps: int, mean: float) -> str | None:
        """An evaluation's mean, for a learning rate that drops on one (``optim.lr_drop_*``);
        returns a line for the user when it dropped."""
        lr_at = self.module.lr_at
        if isinstance(lr_at, LrDrop) and lr_at.on_evaluation(env_steps, mean):
            return (  # the next update hands Adam the new rate (DQN.training_step)
                f"learning rate {lr_at.start:g} -> {lr_at.to:g} from agent step {env_steps:,} "
                f"(evaluation mean {mean:.2f} >= optim.lr_drop_score {lr_at.score:g})"
            )
        return None

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
        self,
        collector: Collector,
        after: Callable[[int], None],
        done: Callable[[], bool],
        interrupted: Callable[[], bool],
    ) -> None:
        """Train until ``total_steps`` agent steps or until ``done()`` (Ctrl-C, solved, pruned);
        ``after(agent step)`` runs the run's cadences after every update."""
        stream = self.stream = ReplayStream(
            buffer=self.buffer, collector=collector, should_stop=done, **self.stream_args
        )
        if self.stream_state is not None:
            if len(self.buffer):
                stream.load_state_dict(self.stream_state)
            else:  # resumed without its replay: collect learning_starts steps before updating
                stream.next_update = collector.env_steps + self.warmup_steps
        self.trainer = pl.Trainer(
            accelerator=self.trainer_cfg.accelerator,
            devices=self.trainer_cfg.devices,
            precision=self.precision,  # type: ignore[arg-type]
            max_epochs=1,
            logger=False,
            callbacks=[AfterUpdate(after, done)],
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            num_sanity_val_steps=0,
            default_root_dir=str(self.run_dir),
        )
        try:
            self.trainer.fit(self.module, self._loader(stream, self.trainer))
        except SIGTERMException:
            # Lightning chains our SIGTERM handler (the stop flag is set) but then ends fit with
            # its own SystemExit; finish exactly as after Ctrl-C: checkpoint, summary, exit 143.
            if not interrupted():
                raise
        finally:
            self.module.flush_priorities()
        # Lightning's teardown moves the module to the CPU; the final evaluation belongs on
        # the device it trained on
        self.module.to(self.trainer.strategy.root_device)


def learning_rate(cfg: DictConfig) -> LrSchedule | LrDrop | None:
    """Adam's step size over the run: a decay over agent steps (``optim.lr_end``), a drop on
    an evaluation's score (``optim.lr_drop_score``; the config checks refuse both), or None,
    and Adam keeps ``optim.lr``."""
    optim = cfg.optim
    if optim.lr_end is not None:
        return LrSchedule(
            start=optim.lr,
            end=optim.lr_end,
            begin=cfg.learning_starts,
            until=optim.lr_steps if optim.lr_steps is not None else cfg.total_steps,
        )
    if optim.lr_drop_score is not None:
        return LrDrop(start=optim.lr, to=optim.lr_drop_to, score=optim.lr_drop_score)
    return None


def build_dqn(cfg: DictConfig, env: VectorEnv, run_dir: Path) -> DQNLearner:
    """Build the network, the replay and the module from their own config sections, in
    dependency order (the module needs the replay's priority hook)."""
    obs_space = env.single_observation_space
    n_actions = int(env.single_action_space.n)  # type: ignore[attr-defined]
    q_net = build_q_net(cfg.model, obs_space, n_actions, cfg.trainer.channels_last)
    buffer = make_replay(
        cfg.buffer,
        num_envs=cfg.env.num_envs,
        obs_shape=obs_space.shape,  # type: ignore[arg-type]
        obs_dtype=obs_space.dtype,
        stack=cfg.env.frame_stack if is_atari(cfg.env.id) else None,
        seed=cfg.seed,
        total_steps=cfg.total_steps,
    )
    algo = cfg.algo
    module = DQN(
        q_net,
        gamma=algo.gamma,
        loss=algo.loss,
        reward_clip=algo.reward_clip,
        target_sync=algo.target_sync,
        double=algo.double,
        max_grad_norm=algo.max_grad_norm,
        lr=cfg.optim.lr,
        lr_at=learning_rate(cfg),
        eps=cfg.optim.eps,
        fused=cfg.optim.fused,
        priority_update=buffer.update_priority,
        augment=RandomShift(seed=cfg.seed + 2) if algo.augment == "shift" else None,
    )
    stream = {
        "batch_size": cfg.batch_size,
        "learning_starts": cfg.learning_starts,
        "train_freq": cfg.train_freq,
        "gradient_steps": cfg.gradient_steps,
        "total_steps": cfg.total_steps,
        "n_step": NStepSchedule(
            start=algo.n_step,
            end=algo.n_step_end,
            steps=algo.n_step_steps,
            begin=cfg.learning_starts,
        ),
    }
    return DQNLearner(
        module=module,
        buffer=buffer,
        epsilon=EpsilonSchedule.from_config(cfg.schedule.epsilon),
        trainer=cfg.trainer,
        stream=stream,
        run_dir=run_dir,
    )
