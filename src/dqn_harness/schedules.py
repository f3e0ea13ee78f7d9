"""ε schedules and the target-sync rule, both over agent env steps (never gradient steps)."""

from __future__ import annotations

import math
from typing import Any


class EpsilonSchedule:
    """Linear: straight from start to end over ``steps``.

    Exponential: ``end + (start-end)·e^(-t/τ)``, τ chosen so that after ``steps`` agent steps it
    is within 1% of the gap to ``end`` (a long tail of exploration instead of a hard corner).
    """

    def __init__(self, kind: str, start: float, end: float, steps: int) -> None:
        self.kind, self.start, self.end, self.steps = kind, start, end, steps
        self._tau = steps / math.log(100.0)

    @classmethod
    def from_config(cls, cfg: Any) -> EpsilonSchedule:
        return cls(cfg.kind, cfg.start, cfg.end, cfg.steps)

    def __call__(self, env_steps: int) -> float:
        if self.kind == "linear":
            frac = min(env_steps / self.steps, 1.0)
            return self.start + frac * (self.end - self.start)
        return self.end + (self.start - self.end) * math.exp(-env_steps / self._tau)


class TargetSync:
    """Hard sync every ``every`` agent steps; robust to vector steps that jump past a boundary."""

    def __init__(self, every: int) -> None:
        self.every = every
        self.synced = 0  # index of the last sync period acted on

    def due(self, env_steps: int) -> bool:
        period = env_steps // self.every
        if period > self.synced:
            self.synced = period
            return True
        return False
