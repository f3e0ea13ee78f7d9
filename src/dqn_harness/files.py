"""Kill-safe file writes: a leaf module, so checkpoints, summaries and reports share one way.

A run can be killed at any instant (Ctrl-C twice, SIGKILL, a cluster's time limit). Writing to a
temporary name, syncing and renaming means a reader finds either the old file or the new one,
never half of one.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any


def save_atomic(obj: Any, path: Path, save: Callable[[Any, Any], None]) -> None:
    """``save(obj, file)`` into a temporary name, fsync, then rename over ``path``."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        save(obj, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def write_text_atomic(path: Path, text: str) -> None:
    """A text file (summary.json, config.json, a report) written kill-safe."""
    save_atomic(text.encode(), path, lambda data, f: f.write(data))
