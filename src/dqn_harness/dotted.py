"""Nested configs and their dotted keys (``optim.lr``): the one place both directions live.

W&B, ``config.json`` and ``compare.py`` use the flat form, since then every hyperparameter is a
column of the run table; checkpoints keep the nested form Hydra composed.
"""

from __future__ import annotations

from typing import Any


def flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
    """Nested dicts to dotted keys; lists stay values (``model.hidden: [64, 64]``)."""
    if not isinstance(tree, dict):
        return {prefix: tree}
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        flat.update(
            flatten(value, f"{prefix}{key}.")
            if isinstance(value, dict) and value
            else {f"{prefix}{key}": value}
        )
    return flat


def lookup(tree: Any, dotted: str) -> Any:
    """``tree["a"]["b"]`` for ``a.b``; None where a part is missing (plain dicts or configs)."""
    node: Any = tree
    for part in dotted.split("."):
        if not hasattr(node, "get"):
            return None
        node = node.get(part)
    return node
