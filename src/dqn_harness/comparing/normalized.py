"""Human-normalized scores across Atari games, aggregated with rliable (Agarwal et al. 2021).

``compare.py normalize=human`` puts each run's final evaluation on one scale, 0 for a random
agent and 1 for a professional human tester (``atari_reference_scores.csv``, Atari-57), so
games with scores of -21..21 and of 0..100,000 can be aggregated. The aggregates (IQM, median,
mean, optimality gap), their stratified-bootstrap 95% intervals, the performance profiles and
the probability of improvement are rliable's own: it is the maintained implementation the
field reports with, and writing them again here would only add a way to differ from papers.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from dqn_harness.comparing.runs import Run
from dqn_harness.envs.atari import ale_game
from dqn_harness.errors import UsageError

AGGREGATES = ("IQM", "median", "mean", "optimality_gap")
BOOTSTRAP_REPS = 2000
GAME_KEYS = ("env.id", "env.name", "logger.group")  # the task axis, not what tells configs apart


def reference_scores() -> dict[str, tuple[float, float]]:
    """game -> (random, human), from the shipped table."""
    text = resources.files("dqn_harness.comparing").joinpath("atari_reference_scores.csv")
    rows = [line for line in text.read_text().splitlines() if line and not line.startswith("#")]
    return {r["game"]: (float(r["random"]), float(r["human"])) for r in csv.DictReader(rows)}


def game_of(run: Run) -> str:
    """``ALE/SpaceInvaders-v5`` -> ``space_invaders``, the table's name for the game."""
    env_id = str(run.config.get("env.id"))
    try:
        return ale_game(env_id)
    except ValueError:
        raise UsageError(
            "normalize", f"human-normalized scores are for Atari games, not {env_id}"
        ) from None


def human_normalized(game: str, score: float, table: dict[str, tuple[float, float]]) -> float:
    if game not in table:
        raise UsageError("normalize", f"no human and random reference scores for '{game}'")
    random, human = table[game]
    return (score - random) / (human - random)


@dataclass
class Normalized:
    """One config's human-normalized final scores, (seeds, games), and rliable's aggregates."""

    name: str
    games: list[str]
    scores: np.ndarray  # (runs per game, games)
    point: dict[str, float]
    interval: dict[str, tuple[float, float]]


def score_matrix(name: str, runs: list[Run], table: dict[str, tuple[float, float]]) -> np.ndarray:
    """(seeds, games) of human-normalized final eval returns, row k holding every game's run of
    the k-th seed: rliable's stratified bootstrap resamples seeds within each game, and the
    per-seed spread pairs a seed's games. So every game needs the same seeds, each once; games
    with other seed sets are refused rather than paired by their order."""
    by_game: dict[str, dict[int, float]] = {}
    for run in runs:
        game = game_of(run)
        score = run.summary.get("eval_return_mean")
        if score is None:
            raise UsageError("normalize", f"{run.path} has no final evaluation")
        of_game = by_game.setdefault(game, {})
        if run.seed in of_game:
            raise UsageError("normalize", f"{name}: two runs of {game} with seed {run.seed}")
        of_game[int(run.seed)] = human_normalized(game, float(score), table)
    counts = {g: len(v) for g, v in by_game.items()}
    if len(set(counts.values())) > 1:
        raise UsageError(
            "normalize", f"{name}: every game needs the same number of seeds, got {counts}"
        )
    sets = {g: sorted(v) for g, v in by_game.items()}
    if len({tuple(s) for s in sets.values()}) > 1:
        raise UsageError("normalize", f"{name}: every game needs the same seeds, got {sets}")
    games = sorted(by_game)
    return np.array([[by_game[g][s] for g in games] for s in sets[games[0]]])


def aggregate_functions() -> Any:
    from rliable import metrics

    def all_four(scores: np.ndarray) -> np.ndarray:
        return np.array(
            [
                metrics.aggregate_iqm(scores),
                metrics.aggregate_median(scores),
                metrics.aggregate_mean(scores),
                metrics.aggregate_optimality_gap(scores),
            ]
        )

    return all_four


def normalize(configs: dict[str, list[Run]], seed: int = 0) -> list[Normalized]:
    """Each config's normalized scores and aggregates with 95% stratified-bootstrap CIs."""
    from rliable import library as rly

    table = reference_scores()
    matrices = {name: score_matrix(name, runs, table) for name, runs in configs.items()}
    np.random.seed(seed)  # rliable's bootstrap (arch) draws from NumPy's global stream
    points, intervals = rly.get_interval_estimates(
        matrices, aggregate_functions(), reps=BOOTSTRAP_REPS
    )
    out = []
    for name, runs in configs.items():
        games = sorted({game_of(r) for r in runs})
        point = dict(zip(AGGREGATES, map(float, points[name]), strict=True))
        low, high = intervals[name]
        interval = {
            a: (float(lo), float(hi)) for a, lo, hi in zip(AGGREGATES, low, high, strict=True)
        }
        out.append(Normalized(name, games, matrices[name], point, interval))
    return out


def improvement(results: list[Normalized], seed: int = 0) -> tuple[str, str, float, tuple]:
    """P(first config > second) with its 95% CI, over the games both played."""
    from rliable import library as rly
    from rliable import metrics

    x, y = results[:2]
    if x.games != y.games:
        raise UsageError("normalize", f"{x.name} and {y.name} played different games")
    np.random.seed(seed)
    key = f"{x.name},{y.name}"
    point, interval = rly.get_interval_estimates(
        {key: (x.scores, y.scores)}, metrics.probability_of_improvement, reps=BOOTSTRAP_REPS
    )
    low, high = np.asarray(interval[key]).ravel()
    return x.name, y.name, float(np.asarray(point[key]).ravel()[0]), (float(low), float(high))


def write_normalized(results: list[Normalized], out: Path) -> str:
    """normalized.md (printed too), normalized.csv, profiles.png; returns the markdown."""
    lines = ["| config | games x seeds | " + " | ".join(f"{a} [95% CI]" for a in AGGREGATES) + " |"]
    lines.append("|" + "---|" * (2 + len(AGGREGATES)))
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(["config", "aggregate", "value", "ci_low", "ci_high"])
    for res in results:
        cells = [
            f"{res.point[a]:.3f} [{res.interval[a][0]:.3f}, {res.interval[a][1]:.3f}]"
            for a in AGGREGATES
        ]
        shape = f"{len(res.games)} x {res.scores.shape[0]}"
        lines.append(f"| {res.name} | {shape} | " + " | ".join(cells) + " |")
        for a in AGGREGATES:
            writer.writerow([res.name, a, res.point[a], *res.interval[a]])
    lines += ["", "| config | game | human-normalized score per seed |", "|---|---|---|"]
    for res in results:
        for j, game in enumerate(res.games):
            seeds = ", ".join(f"{v:.3f}" for v in res.scores[:, j])
            lines.append(f"| {res.name} | {game} | {seeds} |")
    if len(results) >= 2:
        x, y, p, (low, high) = improvement(results)
        lines += ["", f"P({x} > {y}) = {p:.3f} [95% CI {low:.3f}, {high:.3f}]"]
        writer.writerow([f"{x} > {y}", "probability_of_improvement", p, low, high])
    text = "\n".join(lines) + "\n"
    (out / "normalized.md").write_text(text)
    (out / "normalized.csv").write_text(buf.getvalue())
    plot_profiles(results, out / "profiles.png")
    return text


def plot_profiles(results: list[Normalized], path: Path) -> None:
    """Performance profiles: the fraction of runs above each human-normalized score τ."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from rliable import library as rly

    top = max(1.0, max(float(r.scores.max()) for r in results))
    taus = np.linspace(min(0.0, min(float(r.scores.min()) for r in results)), top, 101)
    profiles, cis = rly.create_performance_profile({r.name: r.scores for r in results}, taus)
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
    for i, res in enumerate(results):
        ax.plot(taus, profiles[res.name], color=f"C{i % 10}", label=res.name)
        ax.fill_between(taus, *cis[res.name], color=f"C{i % 10}", alpha=0.2)
    ax.set_xlabel("human-normalized score τ")
    ax.set_ylabel("fraction of runs with score > τ")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
