"""The progress bar's speed and time left, from the recent pace of the current phase.

tqdm's own estimate averages over the whole run, so a DQN run's warm-up (thousands of agent
steps per second with no updates) made a 1M-step Pong run promise "45 minutes left" while it
learned at ~168 steps/s (1.6 hours left). Here the pace is measured over the last few minutes of
the current phase only (warm-up, then learning), and the window is long enough to include the
pauses evaluations make, so the time left is what the run will really take at its current pace.
"""

from __future__ import annotations

from collections import deque


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
