"""compare.py normalize=human: Atari-57 reference scores, rliable's aggregates, real runs."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import scipy.stats

from dqn_harness.comparing.normalized import normalize, reference_scores, write_normalized
from dqn_harness.comparing.runs import Run
from tests.conftest import run_cli, run_train

GAMES = {"pong": "ALE/Pong-v5", "breakout": "ALE/Breakout-v5"}


def test_the_reference_table_holds_the_57_games_as_published():
    table = reference_scores()
    assert len(table) == 57
    assert table["pong"] == (-20.7, 14.6) and table["breakout"] == (1.7, 30.5)
    assert table["space_invaders"] == (148.0, 1668.7) and table["montezuma_revenge"][0] == 0.0
    atari5 = ("battle_zone", "double_dunk", "name_this_game", "phoenix", "qbert")
    assert all(game in table for game in atari5)


def fake_runs(name: str, finals: dict[str, list[float]]) -> list[Run]:
    """Runs as compare.py reads them from disk: a config and a summary per run dir."""
    runs = []
    for game, scores in finals.items():
        for seed, score in enumerate(scores):
            config = {"env.id": GAMES[game], "seed": seed, "algo.double": name == "double"}
            runs.append(Run(Path(f"/{name}/{game}/{seed}"), config, {"eval_return_mean": score}))
    return runs


def recompute(finals: dict[str, list[float]]) -> dict[str, float]:
    """rliable's definitions written out: per-game normalized scores (seeds x games)."""
    table = reference_scores()
    games = sorted(finals)
    x = np.array(
        [[(s - table[g][0]) / (table[g][1] - table[g][0]) for s in finals[g]] for g in games]
    ).T
    return {
        "IQM": float(scipy.stats.trim_mean(x, 0.25, axis=None)),
        "median": float(np.median(x.mean(axis=0))),
        "mean": float(x.mean()),
        "optimality_gap": float(1 - np.minimum(x, 1).mean()),
    }


def test_aggregates_equal_a_recomputation_on_a_small_table(tmp_path):
    base = {"pong": [-21.0, -15.0, 3.0, 19.0], "breakout": [2.0, 10.0, 31.0, 60.0]}
    double = {"pong": [-20.0, 0.0, 10.0, 20.0], "breakout": [5.0, 20.0, 40.0, 80.0]}
    results = normalize({"base": fake_runs("base", base), "double": fake_runs("double", double)})
    for res, finals in zip(results, (base, double), strict=True):
        expected = recompute(finals)
        for key, value in expected.items():
            assert res.point[key] == pytest.approx(value), (res.name, key)
            low, high = res.interval[key]
            assert low <= res.point[key] + 1e-9 and res.point[key] - 1e-9 <= high
    text = write_normalized(results, tmp_path)
    # probability of improvement: per game, P(X > Y) + P(X = Y) / 2 over seed pairs, averaged
    x, y = results[0].scores, results[1].scores
    per_game = [
        np.mean([(a > b) + 0.5 * (a == b) for a in x[:, j] for b in y[:, j]])
        for j in range(x.shape[1])
    ]
    rows = list(csv.DictReader((tmp_path / "normalized.csv").open()))
    [poi] = [r for r in rows if r["aggregate"] == "probability_of_improvement"]
    assert float(poi["value"]) == pytest.approx(np.mean(per_game))
    assert "P(base > double)" in text and (tmp_path / "profiles.png").stat().st_size > 5000


def test_games_need_as_many_seeds_each():
    from dqn_harness.errors import UsageError

    uneven = fake_runs("base", {"pong": [0.0, 1.0], "breakout": [3.0]})
    with pytest.raises(UsageError, match="same number of seeds"):
        normalize({"base": uneven})


@pytest.mark.slow
def test_compare_normalize_human_on_real_runs_of_two_games_and_two_seeds(tmp_path):
    for game in GAMES:
        for seed in (0, 1):
            proc = run_train(
                # one preset for both games (env=pong has its own since issue 24), so the
                # two games are tasks of one config
                "env=atari_fast",
                f"env.id={GAMES[game]}",
                f"seed={seed}",
                "total_steps=300",
                "learning_starts=200",
                "buffer.capacity=1000",
                "eval.every=300",
                "eval.episodes=1",
                "env.max_num_frames_per_episode=3000",
                "logger=none",
                "progress=false",
                f"hydra.run.dir={tmp_path}/outputs/{game}-s{seed}",
                cwd=tmp_path,
            )
            assert proc.returncode == 0, proc.stderr[-2000:]
    proc = run_cli("compare.py", "normalize=human", "out=norm", cwd=tmp_path, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    finals = {
        game: [
            json.loads((tmp_path / f"outputs/{game}-s{s}/summary.json").read_text())[
                "eval_return_mean"
            ]
            for s in (0, 1)
        ]
        for game in GAMES
    }
    rows = list(csv.DictReader((tmp_path / "norm" / "normalized.csv").open()))
    assert {r["config"] for r in rows} == {"dqn"}  # one config: the games are its tasks
    for key, value in recompute(finals).items():
        [row] = [r for r in rows if r["aggregate"] == key]
        assert float(row["value"]) == pytest.approx(value), key
    assert "IQM [95% CI]" in proc.stdout and (tmp_path / "norm" / "profiles.png").exists()
