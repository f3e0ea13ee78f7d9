"""Aggregation over seeds, after rliable (Agarwal et al., 2021): IQM or mean, bootstrap bands.

The point estimate is the interquartile mean (mean of the middle 50%) once a config has 5+
seeds, which is robust to one outlier seed, and the plain mean below that, where the IQM would
discard too much; the band is a 95% percentile bootstrap over seeds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.stats

from dqn_harness.comparing.runs import Run

BOOTSTRAP_SAMPLES = 2000
IQM_MIN_SEEDS = 5


def iqm(values: np.ndarray, axis: int = -1) -> np.ndarray:
    """Interquartile mean: the mean of the middle half. rliable's ``aggregate_iqm`` for one
    axis of seeds (it is ``scipy.stats.trim_mean(x, 0.25)``; here along ``axis``, so a whole
    bootstrap matrix is reduced in one call). Until 2026-12-01 this was our own sort-and-slice,
    which gave the same numbers."""
    if values.ndim == 1:
        from rliable import metrics

        return np.asarray(metrics.aggregate_iqm(values))
    return np.asarray(scipy.stats.trim_mean(values, 0.25, axis=axis))


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
    finals = np.array([as_float(r.summary.get("eval_return_mean")) for r in runs])
    best = np.array([as_float(r.summary.get("best_eval_return")) for r in runs])
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
        "env_steps_mean": float(np.mean([as_float(r.summary.get("env_steps")) for r in runs])),
        "sps_mean": float(np.mean([as_float(r.summary.get("sps")) for r in runs])),
        "wall_s_mean": float(np.mean([as_float(r.summary.get("wall_s")) for r in runs])),
    }
    return ConfigResult(name, runs, steps, curve, final, row)


def as_float(value: Any) -> float:
    return math.nan if value is None else float(value)
