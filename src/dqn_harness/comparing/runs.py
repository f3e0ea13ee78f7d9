"""Which runs to compare: find run dirs, read their config and summary, filter, label."""

from __future__ import annotations

import functools
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from dqn_harness.dotted import flatten
from dqn_harness.tracking.metrics import CONFIG_FILE

EVAL_KEY = "eval/return_mean"
WALL_KEY = "perf/wall_s"
# Keys that say how a run is watched or named, not what it trains: never split configs.
IGNORED_PREFIXES = (
    "seed",
    "run_name",
    "resume",
    "progress",
    "logger.",
    "checkpoint.",
    "eval.video",
    "trial",
    "study",
)
SELECTORS = ("group", "tag", "env", "algo", "status")
OPTIONS = ("by", "runs", "out", "source", "budget_s", "mix_protocols", "normalize")
SOURCES = ("train", "evaluate")


@dataclass
class Run:
    path: Path
    config: dict[str, Any]
    summary: dict[str, Any]
    curve: list[tuple[int, float]] = field(default_factory=list)

    @property
    def group(self) -> str:
        return str(self.config.get("logger.group") or self.config.get("env.name"))

    @property
    def tags(self) -> list[str]:
        tags = self.config.get("logger.tags") or []
        return [*tags, str(self.config.get("env.name")), str(self.config.get("algo.name"))]

    @property
    def seed(self) -> int:
        return int(self.config.get("seed", 0))


def latest_evaluation(run_dir: Path) -> dict[str, Any] | None:
    """The newest ``eval-*.json`` evaluate.py left in ``run_dir`` (``source=evaluate``)."""
    files = sorted(run_dir.glob("eval-*.json"), key=lambda p: p.stat().st_mtime)
    for path in reversed(files):
        try:
            return dict(json.loads(path.read_text()))
        except (OSError, ValueError):
            continue
    return None


def at_budget(run: Run, walls: list[tuple[int, float]], budget_s: float) -> None:
    """The run as it stood after ``budget_s`` seconds of training (``budget_s=`` in compare.py).

    "Solves within an hour" is a claim about wall time, and runs go on past it (a recorded run
    continued with ``resume=``, a slower seed): this cuts the curve and the summary at the agent
    step the run had reached at ``budget_s`` of its own ``perf/wall_s`` clock (which carries on
    across resumes), interpolated between its logs. Runs that ended sooner are left as they are.
    """
    if not walls or float(run.summary.get("wall_s") or walls[-1][1]) <= budget_s:
        return
    steps = [s for s, _ in walls]
    times = [t for _, t in walls]
    reached = int(np.interp(budget_s, times, steps, left=0))
    run.curve = [(s, v) for s, v in run.curve if s <= reached]
    solved_at = run.summary.get("solved_at_step")
    solved = solved_at is not None and int(solved_at) <= reached
    values = [v for _, v in run.curve]
    run.summary = {
        **run.summary,
        "env_steps": reached,
        "wall_s": float(budget_s),
        "sps": reached / budget_s,
        "eval_return_mean": values[-1] if values else None,
        "best_eval_return": max(values) if values else None,
        "solved_at_step": solved_at if solved else None,
        "status": "solved" if solved else f"at {budget_s:g} s",
    }


def find_runs(roots: list[Path]) -> tuple[list[Run], int]:
    """Every run dir under ``roots`` (recursively); also how many had no readable config."""
    runs, skipped = [], 0
    for root in roots:
        for summary_path in sorted(root.rglob("summary.json")):
            run = read_run(summary_path.parent, summary_path)
            if run is None:
                skipped += 1
            else:
                runs.append(run)
    return runs, skipped


def read_run(run_dir: Path, summary_path: Path | None) -> Run | None:
    """The run in ``run_dir`` with its summary (none: ``{}``), or None when its config or
    summary is unreadable."""
    try:
        config = load_config(run_dir)
        summary = json.loads(summary_path.read_text()) if summary_path is not None else {}
    except (OSError, ValueError):
        return None
    if config is None:
        return None
    # a key added after the run was made had its default value in that run
    return Run(run_dir, {**schema_defaults(), **config}, summary)


def unfinished_runs(roots: list[Path]) -> list[Run]:
    """Runs under ``roots`` with a config and metrics but no ``summary.json``: killed (``kill
    -9``, out of memory, a second Ctrl-C) or still running. ``find_runs`` leaves them out, since
    what they ended as is unknown; the caller says so for those its filters would have chosen,
    so that no run goes missing from a comparison unannounced."""
    found = (
        read_run(m.parent, None)
        for root in roots
        for m in sorted(root.rglob("metrics.jsonl"))
        if not (m.parent / "summary.json").exists()
    )
    return [run for run in found if run is not None]


@functools.cache
def schema_defaults() -> dict[str, Any]:
    from omegaconf import OmegaConf

    from dqn_harness.config import Config

    flat = flatten(OmegaConf.to_container(OmegaConf.structured(Config)))
    return {k: v for k, v in flat.items() if v != "???"}


def load_config(run_dir: Path) -> dict[str, Any] | None:
    """``config.json``; runs from before it existed fall back to Hydra's saved config."""
    path = run_dir / CONFIG_FILE
    if path.exists():
        return dict(json.loads(path.read_text()))
    hydra_config = run_dir / ".hydra" / "config.yaml"
    if not hydra_config.exists():
        return None
    from omegaconf import OmegaConf

    # unresolved: `${now:...}` in run_name has no resolver outside Hydra, and no other key
    # a comparison selects on is an interpolation
    return flatten(OmegaConf.to_container(OmegaConf.load(hydra_config), resolve=False))


def parse_value(text: str) -> Any:
    """``0.001`` -> float, ``true`` -> bool, ``[64,64]`` -> list: as Hydra reads overrides."""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def same(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=0.0)
    return a == b


def matches(run: Run, selectors: dict[str, list[str]], values: dict[str, list[Any]]) -> bool:
    checks = {
        "group": [run.group],
        "tag": run.tags,
        "env": [str(run.config.get("env.name")), str(run.config.get("env.id"))],
        "algo": [str(run.config.get("algo.name"))],
        "status": [str(run.summary.get("status"))],
    }
    for key, wanted in selectors.items():
        if not set(wanted) & set(checks[key]):
            return False
    for key, wanted in values.items():
        if key not in run.config or not any(same(run.config[key], w) for w in wanted):
            return False
    return True


def varying_keys(runs: list[Run]) -> list[str]:
    """Config keys whose values differ between runs (what makes two configs different)."""
    keys = sorted({k for r in runs for k in r.config})
    out = []
    for key in keys:
        if key.startswith(IGNORED_PREFIXES):
            continue
        values = {json.dumps(r.config.get(key), sort_keys=True) for r in runs}
        if len(values) > 1:
            out.append(key)
    return out


def label(run: Run, by: list[str]) -> str:
    if not by:
        return run.group
    parts = []
    for key in by:
        value = run.config.get(key)
        if isinstance(value, float):
            parts.append(f"{key}={value:.4g}")
        elif isinstance(value, str):
            parts.append(f"{key}={value}")
        else:  # true/false/null/[..] as they are written on the command line
            parts.append(f"{key}={json.dumps(value)}")
    return " ".join(parts)
