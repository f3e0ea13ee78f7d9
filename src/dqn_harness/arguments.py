"""``key=value`` command-line arguments, read the same way by every command that takes them
(evaluate, sweep, compare; train's go through Hydra)."""

from __future__ import annotations

from dqn_harness.errors import UsageError


def key_values(argv: list[str], example: str) -> list[tuple[str, str]]:
    """``key=value`` arguments as pairs; anything else is refused, naming the argument."""
    pairs = []
    for arg in argv:
        key, sep, value = arg.partition("=")
        if not sep or not key:
            raise UsageError(arg, f"expected key=value (e.g. {example})")
        pairs.append((key, value))
    return pairs


def bool_option(options: dict[str, str], key: str, default: bool = False) -> bool:
    """A ``key=true|false`` option (``default`` when absent); anything else is refused."""
    value = options.get(key, str(default)).lower()
    if value not in ("true", "false"):
        raise UsageError(key, f"expects true or false, got '{value}'")
    return value == "true"
