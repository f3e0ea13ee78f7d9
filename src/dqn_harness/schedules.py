"""ε, n-step and learning-rate schedules and the target-sync rule, all over agent env steps
(never gradient steps)."""

from __future__ import annotations

import math
from typing import Any


class EpsilonSchedule:
    """Linear: straight from start to end over ``steps``.

    Exponential: ``end + (start-end)·e^(-t/τ)``, τ chosen so that after ``steps`` agent steps it
    is within 1% of the gap to ``end`` (a long tail of exploration instead of a hard corner).
    """

    def __init__(self, *, kind: str, start: float, end: float, steps: int) -> None:
        self.kind, self.start, self.end, self.steps = kind, start, end, steps
        self._tau = steps / math.log(100.0)

    @classmethod
    def from_config(cls, cfg: Any) -> EpsilonSchedule:
        return cls(kind=cfg.kind, start=cfg.start, end=cfg.end, steps=cfg.steps)

    def __call__(self, env_steps: int) -> float:
        if self.kind == "linear":
            frac = min(env_steps / self.steps, 1.0)
            return self.start + frac * (self.end - self.start)
        return self.end + (self.start - self.end) * math.exp(-env_steps / self._tau)

    # No state_dict: ε is a pure function of the agent step, which the collector saves.


class NStepSchedule:
    """The return window's length n at an agent step: ``start`` until learning starts, then
    geometrically to ``end`` over ``steps`` agent steps, rounded (BBF, Schwarzer et al. 2023:
    10 -> 3, a "receding update horizon": long windows carry the sparse early rewards back
    fast while the Q-values know nothing; short ones cut the off-policy bias once they do).
    ``end=None``: n stays ``start``."""

    def __init__(self, *, start: int, end: int | None, steps: int, begin: int = 0) -> None:
        self.start, self.end, self.steps, self.begin = start, end, steps, begin

    def __call__(self, env_steps: int) -> int:
        if self.end is None or self.end == self.start:
            return self.start
        frac = min(max(env_steps - self.begin, 0) / self.steps, 1.0)
        return int(round(self.start * (self.end / self.start) ** frac))


class LrSchedule:
    """Adam's step size at an agent step: ``start`` until learning starts (``begin``), then
    linearly to ``end`` at agent step ``until``, and ``end`` after. (No ``optim.lr_end``: the
    learner builds none and Adam keeps ``optim.lr``.)

    Why: a fast-learning agent (Pong at 10-step or 4-step returns, lr 1e-4) climbs quickly and
    then oscillates, its policy good one 10k steps and worse the next; a smaller step late keeps
    what it learned (Dopamine and SB3 keep the rate fixed, PPO-style recipes decay it). Like ε,
    it is a pure function of the agent step, so a resumed run needs no state for it.
    """

    def __init__(self, *, start: float, end: float, begin: int, until: int) -> None:
        self.start, self.end, self.begin, self.until = start, end, begin, until

    def __call__(self, env_steps: int) -> float:
        span = max(self.until - self.begin, 1)
        frac = min(max(env_steps - self.begin, 0) / span, 1.0)
        return self.start + frac * (self.end - self.start)


class LrDrop:
    """Adam's step size: ``start`` until the first evaluation whose mean return reaches
    ``score``, then ``to`` for the rest of the run (``optim.lr_drop_score`` / ``lr_drop_to``).

    Why: the same smaller rate that steadies an oscillating policy slows one that is still
    climbing, and when a run starts to play well depends on its seed (one Pong seed plays well
    at 150k agent steps, another not by 300k). A decay fixed in agent steps (``LrSchedule``) is
    early for the slow seed or late for the fast one; a drop keyed on the evaluation, the
    20-game score the solve itself is judged by, comes when each run has earned it. It drops
    once and never rises again: a worse evaluation after the drop is the oscillation it damps.
    The step it dropped at is state, saved with the run and restored on a resume.
    """

    def __init__(self, *, start: float, to: float, score: float) -> None:
        self.start, self.to, self.score = start, to, score
        self.dropped_at: int | None = None  # agent step of the evaluation that dropped it

    def __call__(self, env_steps: int) -> float:
        return self.start if self.dropped_at is None else self.to

    def on_evaluation(self, env_steps: int, mean: float) -> bool:
        """Drop on the first evaluation that reaches the score; True when this one did."""
        if self.dropped_at is None and mean >= self.score:
            self.dropped_at = env_steps
            return True
        return False

    def state_dict(self) -> dict[str, Any]:
        return {"dropped_at": self.dropped_at}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.dropped_at = state["dropped_at"]


class Cadence:
    """True once each time ``env_steps`` enters a new multiple of ``every``.

    Vector envs advance several agent steps at once, so ``env_steps % every == 0`` would miss
    boundaries that a step jumps over; counting periods cannot.
    """

    def __init__(self, every: int) -> None:
        self.every = every
        self.last_period = 0  # index (env_steps // every) of the last period acted on

    def due(self, env_steps: int) -> bool:
        period = env_steps // self.every
        if period > self.last_period:
            self.last_period = period
            return True
        return False

    def state_dict(self) -> dict[str, int]:
        return {"last_period": self.last_period}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.last_period = int(state["last_period"])


class TargetSync(Cadence):
    """The target-sync rule: a hard copy every ``schedule.target_sync`` agent steps."""
