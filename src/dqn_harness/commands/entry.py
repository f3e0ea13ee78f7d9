"""The one entry wrapper every command goes through (lightning-hydra-template's ``task_wrapper``).

It owns what every command would otherwise write for itself: ``-h``/``--help`` prints the
command's usage and exits 0; a :class:`UsageError` from any step (parsing, loading, scoring,
writing) is one ``error: <key>: <problem>`` line and exit 2, without a traceback, and so is a
full disk (``error: disk: no space left on device writing <file> (<n> MB free)``); Ctrl-C is
exit 130. Each command is then a function ``argv -> exit code`` that raises for bad input.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

from dqn_harness.errors import UsageError
from dqn_harness.files import as_disk_full, is_disk_full

HELP_FLAGS = ("-h", "--help")


def fail(exc: UsageError) -> int:
    """Print the one line; the exit code for bad input."""
    print(f"error: {exc}", file=sys.stderr)
    return 2


def wants_help(argv: list[str]) -> bool:
    return any(arg in HELP_FLAGS for arg in argv)


def entry(command: Callable[[list[str]], int], usage: str, argv: list[str]) -> int:
    """Run ``command(argv)`` under the contract; returns the exit code."""
    if wants_help(argv):
        print(usage.strip())
        return 0
    try:
        return command(argv)
    except UsageError as exc:
        return fail(exc)
    except OSError as exc:
        if not is_disk_full(exc):
            raise
        return fail(UsageError("disk", str(as_disk_full(exc))))
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
