"""What a comparison writes: the results table (markdown, CSV), per-seed rows, the curves PNG."""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path
from typing import Any

from dqn_harness.comparing.stats import ConfigResult


def run_by_folder(path: Path) -> str:
    """A run as a table names it: relative to the working directory when it is under it
    (``outputs/pong-dqn-s0-...``), else by its folder alone, never by a machine's path."""
    path = Path(path).absolute()
    cwd = Path.cwd().absolute()
    return path.relative_to(cwd).as_posix() if path.is_relative_to(cwd) else path.name


def _cell(value: Any, digits: int = 1) -> str:
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
        final = f"{_cell(r['final_eval_return'], 2)} ({r['estimator']})"
        if r["n"] > 1:
            final += f" [{_cell(r['final_ci_low'], 2)}, {_cell(r['final_ci_high'], 2)}]"
        solve = f"{_cell(r['steps_to_solve_median'], 0)} / {_cell(r['steps_to_solve_max'])}"
        lines.append(
            f"| {r['config']} | {r['seeds']} | {final} | {_cell(r['best_eval_return_mean'], 2)} "
            f"| {r['solved']} | {solve} | {_cell(r['env_steps_mean'], 0)} "
            f"| {_cell(r['sps_mean'], 0)} |"
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
            row.update(config=res.name, seed=run.seed, run_dir=run_by_folder(run.path))
            writer.writerow(row)
    return buf.getvalue()


def table_csv(results: list[ConfigResult]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(results[0].row))
    writer.writeheader()
    for res in results:
        writer.writerow(res.row)
    return buf.getvalue()


def plot_curves(
    results: list[ConfigResult], path: Path, title: str, threshold: float | None
) -> str:
    """curves.png: each config's point estimate and band, each seed drawn faintly.

    Returns curves.csv's text: every point of every curve as it was drawn, read back from the
    figure's own lines and bands, so the numbers beside the picture are the picture's.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    # the legend goes under the axes, where long config labels cannot cover the curves
    entries = len(results) + (threshold is not None)
    fig, ax = plt.subplots(figsize=(9, 5 + 0.22 * entries), dpi=120)
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(["config", "curve", "env_steps", "value", "low", "high"])
    for i, res in enumerate(results):
        writer.writerows(_draw_config(ax, res, f"C{i % 10}"))
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
    return buf.getvalue()


def _draw_config(ax: Any, res: ConfigResult, color: str) -> list[list[Any]]:
    """One config's seeds (faint, so a lucky or broken seed is visible), its point estimate
    and its band; returns the drawn points as curves.csv rows."""
    rows: list[list[Any]] = []
    for run in res.runs:
        xs, ys = zip(*run.curve, strict=True) if run.curve else ((), ())
        (line,) = ax.plot(xs, ys, color=color, alpha=0.18, linewidth=0.8)
        drawn = zip(line.get_xdata(), line.get_ydata(), strict=True)
        rows += [[res.name, f"seed {run.seed}", x, y, "", ""] for x, y in drawn]
    if len(res.steps):
        (line,) = ax.plot(res.steps, res.curve[:, 0], color=color, linewidth=2, label=_legend(res))
        band = ax.fill_between(res.steps, res.curve[:, 1], res.curve[:, 2], color=color, alpha=0.2)
        low, high = _band_edges(band, len(res.steps))
        band_points = zip(line.get_xdata(), line.get_ydata(), low, high, strict=True)
        rows += [[res.name, res.row["estimator"], x, y, lo, hi] for x, y, lo, hi in band_points]
    return rows


def _band_edges(band: Any, n: int) -> tuple[list[float], list[float]]:
    """The lower and upper edge of a fill_between band, from the polygon it drew (its
    vertices run along the lower edge, then back along the upper one)."""
    path = band.get_paths()[0].vertices
    lower = path[1 : n + 1, 1]
    upper = path[n + 2 : 2 * n + 2, 1][::-1]
    return [float(v) for v in lower], [float(v) for v in upper]


def _legend(res: ConfigResult) -> str:
    n = len(res.runs)
    if n == 1:  # one seed has no spread: claiming a band would mislead
        return f"{res.name} (1 seed)"
    return f"{res.name} ({res.row['estimator']} of {n} seeds, 95% CI)"
