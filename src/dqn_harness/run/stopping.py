"""Graceful stop on Ctrl-C / SIGTERM / SIGUSR1: finish the current step, checkpoint, write the
summary.

The first signal only sets a flag that the training loops poll between steps; a second one
restores the default handler's behaviour, so a stuck run can still be killed from the keyboard.
SIGUSR1 is what Slurm sends before a time limit (``--signal=USR1@120``; the submitit launcher's
``signal_delay_s``): once the run has checkpointed, a handler that was installed before ours
(submitit's, which requeues the job) is called with it, so the requeued job can carry on with
``resume=auto``.
"""

from __future__ import annotations

import signal
import sys
import threading
from types import FrameType

EXIT_CODES = {signal.SIGINT: 130, signal.SIGTERM: 143, signal.SIGUSR1: 138}


class StopFlag:
    def __init__(self) -> None:
        self._event = threading.Event()
        self.signum: int | None = None
        self._previous: dict[int, object] = {}

    def is_set(self) -> bool:
        return self._event.is_set()

    def set(self) -> None:
        self._event.set()

    @property
    def exit_code(self) -> int:
        return EXIT_CODES.get(self.signum, 1) if self.signum is not None else 0  # type: ignore[call-overload]

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.is_set():
            signal.signal(signum, signal.SIG_DFL)
            signal.raise_signal(signum)
            return
        self.signum = signum
        self.set()
        name = signal.Signals(signum).name
        print(f"\n{name} received: stopping after this step (again to abort)", file=sys.stderr)

    def install(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        for signum in EXIT_CODES:
            self._previous[signum] = signal.signal(signum, self._handle)

    def uninstall(self) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)  # type: ignore[arg-type]
        previous = self._previous.get(signal.SIGUSR1)
        self._previous.clear()
        if self.signum == signal.SIGUSR1 and callable(previous):
            previous(signal.SIGUSR1, None)  # e.g. submitit's: requeue now that state is saved
