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


# (random, human) as published: random from Mnih et al. 2015, human from Badia et al. 2020
# (Agent57), the values DeepMind's DQN Zoo (dqn_zoo/atari_data.py) and rliable use.
PUBLISHED = {
    "pong": (-20.7, 14.6),
    "breakout": (1.7, 30.5),
    "space_invaders": (148.0, 1668.7),
    "alien": (227.8, 7127.7),
    "atlantis": (12850.0, 29028.1),
    "battle_zone": (2360.0, 37187.5),
    "boxing": (0.1, 12.1),
    "double_dunk": (-18.6, -16.4),
    "enduro": (0.0, 860.5),
    "freeway": (0.0, 29.6),
}


def test_the_reference_table_holds_the_57_games_as_published():
    table = reference_scores()
    assert len(table) == 57
    for game, scores in PUBLISHED.items():
        assert table[game] == scores, game
    assert table["montezuma_revenge"][0] == 0.0
    # the Atari-5 games' random scores (their human scores are in the suite's own test)
    assert table["phoenix"][0] == 761.4 and table["qbert"][0] == 163.9
    assert table["name_this_game"][0] == 2292.3
    assert all(human > random for random, human in table.values())


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


def stratified_intervals(x: np.ndarray, reps: int = 4000, seed: int = 1) -> dict:
    """A stratified bootstrap written out: each game's seeds resampled on their own (rliable's
    StratifiedBootstrap), percentile 95% intervals of the mean and the IQM."""
    rng = np.random.default_rng(seed)
    seeds, games = x.shape
    means, iqms = [], []
    for _ in range(reps):
        rows = rng.integers(seeds, size=(seeds, games))  # per game, its own draw of seeds
        sample = np.take_along_axis(x, rows, axis=0)
        means.append(sample.mean())
        iqms.append(scipy.stats.trim_mean(sample, 0.25, axis=None))
    return {
        "mean": tuple(np.percentile(means, [2.5, 97.5])),
        "IQM": tuple(np.percentile(iqms, [2.5, 97.5])),
    }


def test_aggregates_equal_a_recomputation_on_a_small_table(tmp_path):
    base = {"pong": [-21.0, -15.0, 3.0, 19.0], "breakout": [2.0, 10.0, 31.0, 60.0]}
    double = {"pong": [-20.0, 0.0, 10.0, 20.0], "breakout": [5.0, 20.0, 40.0, 80.0]}
    results = normalize({"base": fake_runs("base", base), "double": fake_runs("double", double)})
    for res, finals in zip(results, (base, double), strict=True):
        expected = recompute(finals)
        for key, value in expected.items():
            assert res.point[key] == pytest.approx(value), (res.name, key)
        # the intervals are a stratified bootstrap's: a recomputation with another stream
        # agrees to Monte-Carlo error (a zero-width interval, or a bootstrap over whole seeds
        # or over the pooled runs, would not)
        mine = stratified_intervals(res.scores)
        for key in ("mean", "IQM"):
            low, high = res.interval[key]
            width = high - low
            assert width > 0.1, (res.name, key, width)
            assert abs(low - mine[key][0]) < 0.15 * width, (res.name, key, low, mine[key])
            assert abs(high - mine[key][1]) < 0.15 * width, (res.name, key, high, mine[key])
    again = normalize({"base": fake_runs("base", base), "double": fake_runs("double", double)})
    assert [r.interval for r in again] == [r.interval for r in results]  # seeded: repeatable
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


def test_the_bootstrap_resamples_seeds_within_each_game():
    """Scores whose per-seed mean over the two games is the same for every seed: resampling
    whole seeds (rows) would give a zero-width interval for the mean; resampling each game's
    seeds on its own does not, and matches the written-out stratified bootstrap."""
    pong = [-20.7 + f * 35.3 for f in (0.0, 0.25, 0.5, 1.0)]  # normalized 0, .25, .5, 1
    breakout = [1.7 + f * 28.8 for f in (1.0, 0.75, 0.5, 0.0)]  # normalized 1, .75, .5, 0
    [res] = normalize({"base": fake_runs("base", {"pong": pong, "breakout": breakout})})
    assert np.allclose(res.scores.mean(axis=1), 0.5)  # every seed's mean over games
    assert res.point["mean"] == pytest.approx(0.5)
    low, high = res.interval["mean"]
    mine = stratified_intervals(res.scores)["mean"]
    assert high - low > 0.3 and abs(low - mine[0]) < 0.05 and abs(high - mine[1]) < 0.05


def test_seeds_are_paired_by_value_and_other_seed_sets_are_refused():
    """The rows of the score matrix are seeds: pong's seed 1 beside breakout's seed 1, whatever
    order the runs come in; games run with different seeds cannot be paired and are refused."""
    from dqn_harness.errors import UsageError

    runs = fake_runs("base", {"pong": [0.0, 10.0], "breakout": [2.0, 30.0]})
    [res] = normalize({"base": list(reversed(runs))})
    table = reference_scores()
    breakout_seed1 = (30.0 - table["breakout"][0]) / (table["breakout"][1] - table["breakout"][0])
    pong_seed1 = (10.0 - table["pong"][0]) / (table["pong"][1] - table["pong"][0])
    assert res.games == ["breakout", "pong"]
    assert res.scores[1].tolist() == pytest.approx([breakout_seed1, pong_seed1])
    shifted = [
        Run(r.path, {**r.config, "seed": r.seed + 1}, r.summary)
        if "Breakout" in str(r.config)
        else r
        for r in runs
    ]  # pong seeds 0, 1; breakout seeds 1, 2
    with pytest.raises(UsageError, match="same seeds"):
        normalize({"base": shifted})


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
