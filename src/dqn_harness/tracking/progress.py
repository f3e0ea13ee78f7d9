"""The progress bar's speed and time left, from the recent pace of the current phase.

tqdm's own estimate averages over the whole run, so a DQN run's warm-up (thousands of agent
steps per second with no updates) made a 1M-step Pong run promise "45 minutes left" while it
learned at ~168 steps/s (1.6 hours left). Here the pace is measured over the last few minutes of
the current phase only (warm-up, then learning), and the window is long enough to include the
pauses evaluations make, so the time left is what the run will really take at its current pace.
"""

from __future__ import annotations

import sys
import time
from collections import deque
from typing import Any

from tqdm import tqdm


class Pace:
    """Agent steps per second over the last ``window`` seconds of one phase."""

    def __init__(self, window: float = 300.0) -> None:
        self.window = window
        self.phase: str | None = None
        self.samples: deque[tuple[float, int]] = deque()

    def mark(self, now: float, env_steps: int, phase: str) -> None:
        if phase != self.phase:  # a new phase's pace owes nothing to the last one's
            self.phase = phase
            self.samples.clear()
        self.samples.append((now, env_steps))
        # keep one sample at or before the window's start, so the rate spans the whole window
        while len(self.samples) > 2 and self.samples[1][0] <= now - self.window:
            self.samples.popleft()

    @property
    def rate(self) -> float:
        if len(self.samples) < 2:
            return 0.0
        (t0, s0), (t1, s1) = self.samples[0], self.samples[-1]
        return (s1 - s0) / (t1 - t0) if t1 > t0 else 0.0

    def seconds_left(self, steps_left: int) -> float | None:
        rate = self.rate
        return steps_left / rate if rate > 0 else None


def duration(seconds: float | None) -> str:
    """1h36m, 12m05s, 45s; '?' while there is no pace to go by."""
    if seconds is None:
        return "?"
    s = int(round(seconds))
    if s >= 3600:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    if s >= 60:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s}s"


class ProgressBar:
    """Agent steps, the phase, the recent return, ε, the recent pace, the last evaluation's
    score and cost, and the time left.

    The pace is measured on the training clock (wall time less the evaluations), and the time
    left adds what the evaluations still to come will take at the last one's cost: at ε 0.01 an
    evaluation plays 20 long games, and a pace that averaged them in would swing with every one.

    Args:
        total: agent steps the run trains for.
        warmup_steps: agent steps that only collect (DQN's ``learning_starts``; 0 for tabular):
            their pace says nothing of the rest, so the time left waits for the learning phase.
        eval_every: agent steps between evaluations (one more comes at the end).
        enabled: draw at all (``progress=false`` turns it off, as sweeps' workers do).
    """

    def __init__(
        self, total: int, warmup_steps: int, eval_every: int = 0, enabled: bool = True
    ) -> None:
        self.warmup_steps = warmup_steps
        self.eval_every = eval_every
        self.eval_s = 0.0  # wall time spent evaluating so far
        self.last_eval_s: float | None = None
        self.last_eval_mean: float | None = None
        self.recent_returns: deque[float] = deque(maxlen=20)
        self.pace = Pace()
        self._drawn_at = 0.0
        self.bar = tqdm(
            total=total,
            unit="step",
            dynamic_ncols=True,
            disable=not enabled,
            mininterval=0.5,
            file=sys.stderr,
            # tqdm's own rate and time left average over the whole run (warm-up included):
            # the postfix carries the recent pace and the time left instead
            bar_format="{percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} [{elapsed}{postfix}]",
        )

    def note(self, line: str) -> None:
        """A line for the user above the bar (printed even with the bar off: it says the run
        changed course, which a log should show)."""
        tqdm.write(line, file=sys.stderr)

    def on_episode(self, episode_return: float) -> None:
        self.recent_returns.append(episode_return)

    def on_evaluation(self, seconds: float, mean: float | None = None) -> None:
        """An evaluation took ``seconds`` and scored ``mean`` (shown until the next one: the
        training return is ε-greedy and per-life where lives end episodes, the score is not)."""
        self.eval_s += seconds
        self.last_eval_s = seconds
        self.last_eval_mean = mean

    def seconds_left(self, env_steps: int) -> float | None:
        """Training at the recent pace, plus the evaluations to come at the last one's cost."""
        steps_left = max(self.bar.total - env_steps, 0)
        train = self.pace.seconds_left(steps_left)
        if train is None or self.last_eval_s is None or not self.eval_every:
            return train
        evals_left = steps_left // self.eval_every + 1  # and the final one
        return train + evals_left * self.last_eval_s

    def on_step(self, env_steps: int, epsilon: float) -> None:
        """Called after every vector step: redraws at most twice a second."""
        now = time.perf_counter()
        if now - self._drawn_at <= 0.5:
            return
        self._drawn_at = now
        phase = "warm-up" if env_steps < self.warmup_steps else "learning"
        self.pace.mark(now - self.eval_s, env_steps, phase)  # the training clock
        self.bar.n = min(env_steps, self.bar.total)
        recent = self.recent_returns
        ret = sum(recent) / len(recent) if recent else float("nan")
        left = duration(self.seconds_left(env_steps)) if phase == "learning" else "?"
        cost = ""
        if self.last_eval_s is not None:
            score = "" if self.last_eval_mean is None else f"{self.last_eval_mean:.2f} in "
            cost = f" eval={score}{duration(self.last_eval_s)}"
        self.bar.set_postfix_str(
            f"{phase} return={ret:.2f} eps={epsilon:.3f} sps={self.pace.rate:.0f}{cost} "
            f"left={left}",
            refresh=False,
        )
        self.bar.refresh()

    def state_dict(self) -> dict[str, Any]:
        return {"recent_returns": list(self.recent_returns)}

    def load_state_dict(self, state: dict[str, Any], env_steps: int) -> None:
        self.recent_returns.extend(state["recent_returns"])
        self.bar.n = min(env_steps, self.bar.total)

    def close(self, env_steps: int) -> None:
        self.bar.n = min(env_steps, self.bar.total)
        self.bar.close()
