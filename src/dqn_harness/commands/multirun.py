"""Seed grids with ``python train.py -m ...``: every job runs, one line says which failed.

Hydra's sweeper runs the jobs and stops at the first one that raises, so a job here never
raises: each writes its outcome as one line of ``<sweep dir>/jobs.jsonl`` (appends from
separate processes, as the submitit launchers run them, do not interleave) and the command
reads them back at the end to print the summary and choose the exit code. A job that left no
line (killed, out of memory) is reported as such.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from dqn_harness.errors import UsageError
from dqn_harness.files import read_jsonl

MULTIRUN_FLAGS = ("-m", "--multirun")
JOBS_FILE = "jobs.jsonl"
SWEEP_DIR = "hydra.sweep.dir="


def is_multirun(argv: list[str]) -> bool:
    """A ``-m`` grid this module runs; with other Hydra flags (``--cfg job``, ``--info``) the
    command is left to Hydra as it is."""
    flags = [arg for arg in argv if arg.startswith("-")]
    return bool(flags) and all(flag in MULTIRUN_FLAGS for flag in flags)


def with_sweep_dir(argv: list[str]) -> list[str]:
    """Name the sweep dir now (Hydra's default pattern), so the summary knows where to read."""
    if any(arg.startswith(SWEEP_DIR) for arg in argv):
        return argv
    return [*argv, f"{SWEEP_DIR}multirun/{time.strftime('%Y%m%d-%H%M%S')}"]


def sweep_dir(argv: list[str]) -> Path:
    return Path([a for a in argv if a.startswith(SWEEP_DIR)][-1][len(SWEEP_DIR) :])


def expand(overrides: list[str]) -> list[list[str]]:
    """Each job's overrides, in Hydra's order (``seed=0,1 lr=a,b`` -> 4 jobs)."""
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    try:
        parsed = OverridesParser.create().parse_overrides(overrides)
    except HydraException as exc:
        raise UsageError("overrides", str(exc).strip().splitlines()[0]) from None
    return [list(job) for batch in BasicSweeper.split_arguments(parsed, None) for job in batch]


def record(directory: Path, entry: dict[str, Any]) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / JOBS_FILE, "a") as f:
        f.write(json.dumps(entry) + "\n")


def varying(jobs: list[list[str]]) -> list[list[str]]:
    """Each job's overrides that not every job shares: what tells the jobs apart."""
    common = set.intersection(*(set(job) for job in jobs)) if jobs else set()
    return [[o for o in job if o not in common] for job in jobs]


def report(argv: list[str], jobs: list[list[str]], launcher_code: int) -> int:
    """One line on stderr (failures) or stdout (all finished); the exit code of the grid."""
    import sys

    directory = sweep_dir(argv)
    entries: dict[int, dict[str, Any]] = {}
    path = directory / JOBS_FILE
    if path.exists():  # a job killed mid-append leaves a torn line: dropped, with a warning
        for record in read_jsonl(path):
            entries[int(record["num"])] = record
    labels = varying(jobs)
    failed: list[str] = []
    code = 0
    for num, label in enumerate(labels):
        entry = entries.get(num)
        if entry is None:
            reason = "did not run" if launcher_code else "left no result (killed?)"
            code = code or launcher_code or 1
        elif entry["exit_code"]:
            reason = entry.get("error") or entry["status"]
            code = code or int(entry["exit_code"])
        else:
            continue
        failed.append(f"#{num} [{' '.join(label)}] {reason}")
    code = code or launcher_code
    finished = len(jobs) - len(failed)
    if failed:
        print(
            f"error: multirun: {len(failed)} of {len(jobs)} jobs failed: {'; '.join(failed)} "
            f"({finished} finished; {directory})",
            file=sys.stderr,
        )
    else:
        print(f"multirun: all {len(jobs)} jobs finished ({directory})")
    return code
