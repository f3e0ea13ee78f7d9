"""The configuration reference, generated from the schema: every key, its type, its default, its
allowed values, what the shipped presets set it to, and its one-line meaning.

The meaning of a key is the comment written beside (or just above) its field in ``schema.py``,
so the documentation is read from the one place a key is defined and cannot drift from it; a
field without a comment fails the test that checks this (``tests/test_docs.py``). The docs
build calls :func:`config_reference` (``docs/hooks.py``); nothing here runs during training.
"""

from __future__ import annotations

import ast
import dataclasses
import io
import tokenize
from pathlib import Path
from typing import Any

from dqn_harness.config import schema

# What the reference shows beside the defaults: the values the most used presets compose to.
PRESETS = {"env=pong": ["env=pong"], "env=cartpole": ["env=cartpole"]}


@dataclasses.dataclass
class Key:
    """One config key as the reference lists it."""

    key: str
    type: str
    default: Any
    choices: tuple[str, ...] | None
    meaning: str


def field_comments() -> dict[tuple[str, str], str]:
    """(dataclass name, field name) -> the comment on the field's line, or the comment lines
    right above it, from ``schema.py``'s source."""
    source = Path(schema.__file__).read_text()
    lines = source.splitlines()
    trailing: dict[int, str] = {}
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type == tokenize.COMMENT:
            trailing[tok.start[0]] = tok.string.lstrip("#").strip()
    found: dict[tuple[str, str], str] = {}
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.ClassDef):
            continue
        for item in node.body:
            if not (isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name)):
                continue
            above: list[str] = []
            row = item.lineno - 1  # 1-based line numbers: the line above the field
            while row >= 1 and lines[row - 1].strip().startswith("#"):
                above.insert(0, lines[row - 1].strip().lstrip("#").strip())
                row -= 1
            own_line = lines[item.lineno - 1].strip().startswith("#")
            same = None if own_line else trailing.get(item.lineno)
            text = " ".join([*above, same] if same else above)
            found[(node.name, item.target.id)] = text
    return found


def keys(node: type = schema.Config, prefix: str = "") -> list[Key]:
    """Every leaf key of the schema, in the schema's order."""
    comments = field_comments()
    out: list[Key] = []
    for f in dataclasses.fields(node):
        name = f"{prefix}{f.name}"
        if f.default_factory is not dataclasses.MISSING:
            value = f.default_factory()
            if dataclasses.is_dataclass(value):
                out += keys(type(value), f"{name}.")
                continue
            default = value
        else:
            default = f.default
        kind = f.type if isinstance(f.type, str) else getattr(f.type, "__name__", str(f.type))
        out.append(
            Key(
                key=name,
                type=kind,
                default=default,
                choices=tuple(f.metadata["choices"]) if "choices" in f.metadata else None,
                meaning=comments.get((node.__name__, f.name), ""),
            )
        )
    return out


def _reference_value(value: Any) -> str:
    if value is dataclasses.MISSING or str(value) == "???":
        return "(set by the preset)"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int) and abs(value) >= 10_000:
        return f"{value:,}"
    return str(value).replace("|", "\\|")


def preset_values(conf_dir: Path) -> dict[str, dict[str, Any]]:
    """Each preset's composed value of every key (``run_name`` and friends left unresolved)."""
    from omegaconf import OmegaConf

    from dqn_harness.config import compose_config, register_configs

    register_configs()
    values: dict[str, dict[str, Any]] = {}
    for label, overrides in PRESETS.items():
        cfg = compose_config(conf_dir.absolute(), overrides)
        values[label] = {
            k.key: OmegaConf.select(cfg, k.key, throw_on_resolution_failure=False) for k in keys()
        }
    return values


def config_reference(conf_dir: Path) -> str:
    """The reference page: one table per section, a row per key."""
    presets = preset_values(conf_dir)
    labels = list(presets)
    lines = [
        "# Configuration reference",
        "",
        "Every key `python train.py` takes, generated from `src/dqn_harness/config/schema.py`",
        "when the documentation is built: its type, the schema's default, the allowed values of",
        "a choice, what " + " and ".join(f"`{lb}`" for lb in labels) + " compose it to, and the",
        "comment written beside it in the schema. Set any of them on the command line",
        "(`python train.py env=pong optim.lr=2e-4`); an unknown key, a wrong type or a value",
        "outside its range is refused in one `error: <key>: <problem>` line.",
        "",
    ]
    section = None
    for k in keys():
        head = k.key.split(".")[0] if "." in k.key else "top level"
        if head != section:
            section = head
            lines += [
                "",
                f"## `{head}`" if head != "top level" else "## Top-level keys",
                "",
                "| key | type | default | " + " | ".join(labels) + " | meaning |",
                "| --- | --- | --- | " + " | ".join("---" for _ in labels) + " | --- |",
            ]
        allowed = f" (one of: {', '.join(f'`{c}`' for c in k.choices)})" if k.choices else ""
        shown = [_reference_value(presets[lb][k.key]) for lb in labels]
        kind = k.type.replace(" | ", " or ")  # a pipe would end the table cell
        lines.append(
            f"| `{k.key}` | `{kind}` | {_reference_value(k.default)} | "
            + " | ".join(shown)
            + f" | {k.meaning.replace('|', '/')}{allowed} |"
        )
    return "\n".join(lines) + "\n"
