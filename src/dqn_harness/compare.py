"""Compare local runs: learning curves over seeds (PNG) and a results table (markdown, CSV).

``python compare.py [group=G] [tag=T] [env=E] [algo=A] [status=S] [KEY=VALUE ...] [by=K1,K2]
[runs=DIR,...] [out=DIR]`` reads every run under ``runs`` (default ``outputs``) from the files each
run leaves in its directory, so it needs no W&B account and no network: ``config.json`` (the flat
config W&B also gets), ``summary.json`` and ``metrics.jsonl``.

Runs that differ only in seed form one *config*. By default the configs are told apart by every
config key whose value differs between the selected runs (``by=`` names them instead), ignoring
keys that say how a run is watched rather than what it trains.

Aggregation follows rliable (Agarwal et al., 2021): a point estimate over seeds with a 95%
percentile-bootstrap band (seeds resampled). The point estimate is the interquartile mean (mean
of the middle 50%) once a config has 5+ seeds, which is robust to one outlier seed, and the plain
mean below that, where the IQM would discard too much. A curve is drawn where every seed has an
evaluation; a run that stopped because it solved the env holds its last evaluation.
"""

from __future__ import annotations

import csv
import functools
import io
import json
import math
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from dqn_harness.tracking import CONFIG_FILE, flatten, read_metrics

EVAL_KEY = "eval/return_mean"
BOOTSTRAP_SAMPLES = 2000
IQM_MIN_SEEDS = 5
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
OPTIONS = ("by", "runs", "out")


class CompareError(ValueError):
    """Bad arguments or nothing to compare: one line for the user, exit 2."""


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


def find_runs(roots: list[Path]) -> tuple[list[Run], int]:
    """Every run dir under ``roots`` (recursively); also how many had no readable config."""
    runs, skipped = [], 0
    for root in roots:
        for summary_path in sorted(root.rglob("summary.json")):
            run_dir = summary_path.parent
            try:
                config = load_config(run_dir)
                summary = json.loads(summary_path.read_text())
            except (OSError, ValueError):
                config = None
            if config is None:
                skipped += 1
                continue
            # a key added after the run was made had its default value in that run
            runs.append(Run(run_dir, {**schema_defaults(), **config}, summary))
    return runs, skipped


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


def iqm(values: np.ndarray, axis: int = -1) -> np.ndarray:
    """Interquartile mean: drop the lowest and highest quarter (rliable's trim_mean(x, 0.25))."""
    values = np.sort(values, axis=axis)
    n = values.shape[axis]
    cut = int(n * 0.25)
    return np.take(values, range(cut, n - cut), axis=axis).mean(axis=axis)


def aggregate(values: np.ndarray, rng: np.random.Generator) -> tuple[float, float, float]:
    """Point estimate and 95% bootstrap interval over seeds (the last axis)."""
    stat = iqm if len(values) >= IQM_MIN_SEEDS else np.mean
    point = float(stat(values))
    if len(values) == 1:
        return point, point, point
    resampled = values[rng.integers(len(values), size=(BOOTSTRAP_SAMPLES, len(values)))]
    boot = stat(resampled, axis=1)
    low, high = np.percentile(boot, [2.5, 97.5])
    return point, float(low), float(high)


def aligned(runs: list[Run]) -> tuple[np.ndarray, np.ndarray]:
    """Steps and a (steps, seeds) matrix of eval returns where every seed has a value.

    Each run's value at a step is its latest evaluation at or before that step; after its last
    evaluation a solved run keeps that value (it stopped because it solved), any other run has
    none, which ends the curve there.
    """
    steps = sorted({s for r in runs for s, _ in r.curve})
    matrix = np.full((len(steps), len(runs)), np.nan)
    for j, run in enumerate(runs):
        run_steps = np.array([s for s, _ in run.curve])
        run_values = np.array([v for _, v in run.curve])
        for i, step in enumerate(steps):
            k = np.searchsorted(run_steps, step, side="right") - 1
            if k < 0 or (step > run_steps[-1] and run.summary.get("status") != "solved"):
                continue
            matrix[i, j] = run_values[k]
    complete = ~np.isnan(matrix).any(axis=1)
    return np.array(steps)[complete], matrix[complete]


@dataclass
class ConfigResult:
    name: str
    runs: list[Run]
    steps: np.ndarray
    curve: np.ndarray  # (len(steps), 3): point, low, high
    final: tuple[float, float, float]
    row: dict[str, Any]


def summarize(name: str, runs: list[Run], rng: np.random.Generator) -> ConfigResult:
    runs = sorted(runs, key=lambda r: r.seed)
    steps, matrix = aligned(runs)
    curve = np.array([aggregate(row, rng) for row in matrix]).reshape(-1, 3)
    finals = np.array([_num(r.summary.get("eval_return_mean")) for r in runs])
    best = np.array([_num(r.summary.get("best_eval_return")) for r in runs])
    solved_at = [r.summary.get("solved_at_step") for r in runs]
    solved = [int(s) for s in solved_at if s is not None]
    final = aggregate(finals, rng) if not np.isnan(finals).any() else (math.nan,) * 3
    estimator = "IQM" if len(runs) >= IQM_MIN_SEEDS else "mean"
    row = {
        "config": name,
        "seeds": " ".join(str(r.seed) for r in runs),
        "n": len(runs),
        "estimator": estimator,
        "final_eval_return": final[0],
        "final_ci_low": final[1],
        "final_ci_high": final[2],
        "best_eval_return_mean": float(np.mean(best)),
        "solved": f"{len(solved)}/{len(runs)}",
        "steps_to_solve_median": float(np.median(solved)) if solved else None,
        "steps_to_solve_max": max(solved) if len(solved) == len(runs) else None,
        "steps_to_solve": " ".join("-" if s is None else str(s) for s in solved_at),
        "env_steps_mean": float(np.mean([_num(r.summary.get("env_steps")) for r in runs])),
        "sps_mean": float(np.mean([_num(r.summary.get("sps")) for r in runs])),
        "wall_s_mean": float(np.mean([_num(r.summary.get("wall_s")) for r in runs])),
    }
    return ConfigResult(name, runs, steps, curve, final, row)


def _num(value: Any) -> float:
    return math.nan if value is None else float(value)


def _fmt(value: Any, digits: int = 1) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def markdown_table(results: list[ConfigResult]) -> str:
    head = (
        "| config | seeds | final eval return [95% CI] | best eval (mean) | solved "
        "| steps to solve (median / max) | agent steps | steps/s |"
    )
    lines = [head, "|" + "---|" * 8]
    for res in results:
        r = res.row
        final = f"{_fmt(r['final_eval_return'], 2)} ({r['estimator']})"
        if r["n"] > 1:
            final += f" [{_fmt(r['final_ci_low'], 2)}, {_fmt(r['final_ci_high'], 2)}]"
        solve = f"{_fmt(r['steps_to_solve_median'], 0)} / {_fmt(r['steps_to_solve_max'])}"
        lines.append(
            f"| {r['config']} | {r['seeds']} | {final} | {_fmt(r['best_eval_return_mean'], 2)} "
            f"| {r['solved']} | {solve} | {_fmt(r['env_steps_mean'], 0)} "
            f"| {_fmt(r['sps_mean'], 0)} |"
        )
    return "\n".join(lines) + "\n"


def runs_csv(results: list[ConfigResult]) -> str:
    """One row per run: the numbers the config table aggregates, for checking and re-use."""
    buf = io.StringIO()
    fields = ["config", "seed", "status", "eval_return_mean", "best_eval_return"]
    fields += ["solved_at_step", "env_steps", "sps", "wall_s", "run_dir"]
    writer = csv.DictWriter(buf, fieldnames=fields)
    writer.writeheader()
    for res in results:
        for run in res.runs:
            row = {k: run.summary.get(k) for k in fields}
            row.update(config=res.name, seed=run.seed, run_dir=str(run.path))
            writer.writerow(row)
    return buf.getvalue()


def table_csv(results: list[ConfigResult]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(results[0].row))
    writer.writeheader()
    for res in results:
        writer.writerow(res.row)
    return buf.getvalue()


def plot(results: list[ConfigResult], path: Path, title: str, threshold: float | None) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    # the legend goes under the axes, where long config labels cannot cover the curves
    entries = len(results) + (threshold is not None)
    fig, ax = plt.subplots(figsize=(9, 5 + 0.22 * entries), dpi=120)
    for i, res in enumerate(results):
        color = f"C{i % 10}"
        for run in res.runs:  # each seed, faint, so a lucky or broken seed is visible
            xs, ys = zip(*run.curve, strict=True) if run.curve else ((), ())
            ax.plot(xs, ys, color=color, alpha=0.18, linewidth=0.8)
        if len(res.steps):
            ax.plot(res.steps, res.curve[:, 0], color=color, linewidth=2, label=_legend(res))
            ax.fill_between(res.steps, res.curve[:, 1], res.curve[:, 2], color=color, alpha=0.2)
    if threshold is not None:
        ax.axhline(threshold, color="grey", linestyle="--", linewidth=1, label="solved")
    ax.set_xlabel("agent steps")
    ax.set_ylabel("evaluation return")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.12), frameon=False)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def _legend(res: ConfigResult) -> str:
    n = len(res.runs)
    if n == 1:  # one seed has no spread: claiming a band would mislead
        return f"{res.name} (1 seed)"
    return f"{res.name} ({res.row['estimator']} of {n} seeds, 95% CI)"


def parse_args(
    argv: list[str],
) -> tuple[dict[str, list[str]], dict[str, list[Any]], dict[str, str]]:
    selectors: dict[str, list[str]] = {}
    values: dict[str, list[Any]] = {}
    options: dict[str, str] = {}
    for arg in argv:
        if arg in ("-h", "--help"):
            raise CompareError(__doc__.split("\n\n")[1].replace("\n", " ") if __doc__ else "")
        key, sep, value = arg.partition("=")
        if not sep or not key or not value:
            raise CompareError(f"'{arg}': expected key=value (e.g. group=cartpole_dqn)")
        if key in SELECTORS:
            selectors[key] = value.split(",")
        elif key in OPTIONS:
            options[key] = value
        elif value.startswith("["):
            values[key] = [parse_value(value)]
        else:
            values[key] = [parse_value(v) for v in value.split(",")]
    return selectors, values, options


def compare(argv: list[str]) -> tuple[list[ConfigResult], Path]:
    selectors, values, options = parse_args(argv)
    roots = [Path(p) for p in options.get("runs", "outputs").split(",")]
    for root in roots:
        if not root.is_dir():
            raise CompareError(f"runs: '{root}' is not a directory")
    runs, skipped = find_runs(roots)
    where = " ".join(argv_filters(argv)) or "(no filters)"
    known = {k for r in runs for k in r.config}
    for key in values:
        if runs and key not in known:
            raise CompareError(f"{key}: no run under {_roots(roots)} has this config key")
    chosen = [r for r in runs if matches(r, selectors, values)]
    if not chosen:
        groups = sorted({r.group for r in runs})
        found = f"{len(runs)} runs found there" + (
            f"; groups: {', '.join(groups)}" if groups else ""
        )
        if skipped:
            found += f"; {skipped} run dirs without a readable config"
        raise CompareError(f"no runs match {where} under {_roots(roots)} ({found})")
    for run in chosen:
        run.curve = read_metrics(run.path, EVAL_KEY)
    chosen = [r for r in chosen if r.curve] or chosen
    by = options["by"].split(",") if "by" in options else varying_keys(chosen)
    unknown = [k for k in by if k not in known]
    if unknown:
        raise CompareError(f"by: no run has config key '{unknown[0]}'")
    configs: dict[str, list[Run]] = {}
    for run in chosen:
        configs.setdefault(label(run, by), []).append(run)
    rng = np.random.default_rng(0)
    results = [summarize(name, rs, rng) for name, rs in sorted(configs.items())]
    out = Path(options.get("out") or Path("outputs") / "compare" / _slug(where))
    out.mkdir(parents=True, exist_ok=True)
    thresholds = {r.summary.get("reward_threshold") for r in chosen}
    threshold = thresholds.pop() if len(thresholds) == 1 else None
    plot(results, out / "curves.png", where, threshold)
    (out / "table.md").write_text(markdown_table(results))
    (out / "table.csv").write_text(table_csv(results))
    (out / "runs.csv").write_text(runs_csv(results))
    return results, out


def argv_filters(argv: list[str]) -> list[str]:
    return [a for a in argv if a.partition("=")[0] not in OPTIONS]


def _roots(roots: list[Path]) -> str:
    return ", ".join(f"{r}/" for r in roots)


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.=-]+", "_", text).strip("_") or "all"


def compare_main(argv: list[str]) -> int:
    try:
        results, out = compare(argv)
    except CompareError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(markdown_table(results), end="")
    short = [r.name for r in results if len(r.steps) and len(r.runs) > 1 and _cut_short(r)]
    for name in short:
        print(f"note: {name}: curve stops where its shortest unsolved run stops", file=sys.stderr)
    print(f"\nwrote {out}/curves.png, table.md, table.csv, runs.csv")
    return 0


def _cut_short(res: ConfigResult) -> bool:
    last = max(s for r in res.runs for s, _ in r.curve)
    return bool(res.steps[-1] < last)
