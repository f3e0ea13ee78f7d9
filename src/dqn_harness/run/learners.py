"""What the runner needs of an algorithm, and which one a config asks for.

DQN (``dqn/learner.py``) and tabular Q-learning (``tabular/learner.py``) both offer this one
interface, so the runner has one path for both: the same cadences, checkpoints and finish.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from omegaconf import DictConfig

from dqn_harness.collector import Collector
from dqn_harness.replay import ReplayBuffer


class Learner(Protocol):
    """What the runner needs of an algorithm (``dqn/learner.py``, ``tabular/learner.py``)."""

    @property
    def buffer(self) -> ReplayBuffer | None: ...  # the replay it learns from, if any
    @property
    def epsilon(self) -> Callable[[int], float]: ...  # agent step -> exploration
    @property
    def warmup_steps(self) -> int: ...  # agent steps that only collect
    @property
    def policy_step(self) -> int | None: ...  # agent step of the last update (None: collector's)

    def greedy(self, obs: np.ndarray) -> np.ndarray: ...
    def check_finite(self) -> None: ...
    def stats(self) -> dict[str, float]: ...
    def weights(self) -> dict[str, Any]: ...
    def state_dict(self) -> dict[str, Any]: ...
    def load_state_dict(self, state: dict[str, Any]) -> None: ...
    def summary(self) -> dict[str, Any]: ...
    def on_evaluation(self, env_steps: int, mean: float) -> str | None: ...  # a line, if any
    def fit(
        self,
        collector: Collector,
        after: Callable[[int], None],
        done: Callable[[], bool],
        interrupted: Callable[[], bool],
    ) -> None: ...


def make_learner(cfg: DictConfig, env: Any, run_dir: Path) -> Learner:
    if cfg.algo.name == "dqn":
        from dqn_harness.dqn.learner import build_dqn

        return build_dqn(cfg, env, run_dir)
    from dqn_harness.tabular.learner import build_tabular

    return build_tabular(cfg, env)
