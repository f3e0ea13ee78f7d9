"""Kill-safe file writes and tolerant reads: a leaf module, so checkpoints, summaries, logs and
reports share one way.

A run can be killed at any instant (Ctrl-C twice, SIGKILL, a cluster's time limit) and a disk
can fill at any instant. Writing to a temporary name, syncing and renaming means a reader finds
either the old file or the new one, never half of one; a write that fails removes its temporary
file, so a full disk leaves nothing behind but what was already complete. A write that fails
for lack of space raises :class:`~dqn_harness.errors.DiskFull`, which names the file and the
space left, so the commands can say so in one line.

Append-only logs (``metrics.jsonl``, a grid's ``jobs.jsonl``) cannot be written that way; a kill
or a full disk can leave half a line at their end. :func:`read_jsonl` drops such a line with a
warning naming the file instead of failing the resume that reads it.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from dqn_harness.errors import DiskFull

NO_SPACE = (errno.ENOSPC, errno.EDQUOT)


def is_disk_full(exc: BaseException) -> bool:
    """An OSError that says the device (or the user's quota) has no space left."""
    return isinstance(exc, OSError) and exc.errno in NO_SPACE


def free_bytes(path: Path) -> int | None:
    """Free space on the filesystem that holds ``path`` (its nearest existing ancestor)."""
    probe = Path(path).absolute()
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    try:
        return shutil.disk_usage(probe).free
    except OSError:
        return None


def disk_full(path: Path) -> DiskFull:
    """The DiskFull error for a failed write of ``path``, with the space left now."""
    return DiskFull(Path(path), free_bytes(Path(path)))


def as_disk_full(exc: OSError) -> DiskFull:
    """A full-disk OSError as DiskFull: the harness's own already is one; a library's writer
    (CSV, TensorBoard, a GIF) raised a bare one, which names its file at best."""
    return exc if isinstance(exc, DiskFull) else disk_full(Path(exc.filename or "."))


def save_atomic(obj: Any, path: Path, save: Callable[[Any, Any], None]) -> None:
    """``save(obj, file)`` into a temporary name, fsync, then rename over ``path``.

    On any failure the temporary file is removed and ``path`` is left as it was; a full disk
    is raised as :class:`DiskFull`.
    """
    tmp = path.with_name(path.name + ".tmp")
    try:
        with open(tmp, "wb") as f:
            save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        tmp.unlink(missing_ok=True)
        if is_disk_full(exc):
            raise disk_full(path) from None
        raise


def write_text_atomic(path: Path, text: str) -> None:
    """A text file (summary.json, config.json, a report) written kill-safe."""
    save_atomic(text.encode(), path, lambda data, f: f.write(data))


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """The records of an append-only JSON-lines file; a line that does not parse (half a line
    left by a kill or a full disk) is dropped with a warning that names the file."""
    records = []
    with open(path, encoding="utf-8", errors="replace") as f:
        for number, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                record = None
            if not isinstance(record, dict):
                print(
                    f"warning: {path}: dropped line {number}, which is not a whole record "
                    "(a write cut short by a kill or a full disk)",
                    file=sys.stderr,
                )
                continue
            records.append(record)
    return records
