"""What ``compare.py normalize=human`` adds for runs of one game suite (``-m suite=atari5``).

Atari-5 (Aitchison, Sweetser and Hutter, ICML 2023) chose its five games so that a linear
regression on their log scores predicts an algorithm's median human-normalized score over all
57 games, within about 10% (the paper's cross-validated error). The model has no intercept:

    log10(1 + median_57) = sum_g  w_g * log10(1 + max(score_g, 0)),   scores in percent of human

The weights are the paper's fit, as the first author publishes them with the code that applies
them (github.com/maitchison/PPO, ``AtariScoreNormalizer.SUBSETS['Atari_5']``; the fit itself is
github.com/maitchison/Atari-5, ``atari5.py``, ``fit_intercept=False``). They are copied, not
refitted, because an estimate is only comparable with the paper's if it is the paper's model.
"""

from __future__ import annotations

import math

import numpy as np

from dqn_harness.comparing.normalized import Normalized
from dqn_harness.comparing.runs import Run
from dqn_harness.envs.atari import ale_game

ATARI5_WEIGHTS = {
    "battle_zone": 0.3819751237831753,
    "double_dunk": 0.0679099488887574,
    "name_this_game": 0.310804148620847,
    "phoenix": 0.12412619402774641,
    "qbert": 0.08048518286466755,
}
ATARI5_ERROR = 0.104  # the paper's cross-validated relative error of the estimate


def atari5_median(scores: dict[str, float]) -> float:
    """The paper's estimate of the 57-game median human-normalized score (1 = human) from
    the five games' human-normalized scores (1 = human). A negative score counts as 0, as in
    the paper: below random is no information about the other 52 games."""
    log = sum(w * math.log10(1.0 + max(100.0 * scores[g], 0.0)) for g, w in ATARI5_WEIGHTS.items())
    return (10.0**log - 1.0) / 100.0


def atari5_lines(res: Normalized) -> list[str]:
    """The estimate for one config: from the per-game mean over seeds (how the paper scores an
    algorithm), and the spread of the per-seed estimates."""
    missing = [g for g in ATARI5_WEIGHTS if g not in res.games]
    if missing:
        return [f"  {res.name}: no 57-game median estimate without {', '.join(missing)}"]
    cols = {g: res.games.index(g) for g in ATARI5_WEIGHTS}
    mean = atari5_median({g: float(np.mean(res.scores[:, j])) for g, j in cols.items()})
    seeds = [atari5_median({g: float(row[j]) for g, j in cols.items()}) for row in res.scores]
    spread = f"per seed {min(seeds):.3f} to {max(seeds):.3f}" if len(seeds) > 1 else "one seed"
    return [
        f"  {res.name}: estimated 57-game median {mean:.3f} "
        f"(paper's regression, ±{ATARI5_ERROR:.0%} typical error; {spread})"
    ]


def suite_summary(runs: list[Run], results: list[Normalized]) -> str:
    """For runs of one suite: which of its games each config has, and for Atari-5 the paper's
    estimate of the 57-game median."""
    names = {str(r.config.get("suite.name", "none")) for r in runs}
    if len(names) != 1 or names == {"none"}:
        return ""
    [name] = names
    games = sorted(ale_game(str(g)) for g in runs[0].config.get("suite.games") or [])
    lines = ["", f"suite {name}: {len(games)} games"]
    for res in results:
        missing = [g for g in games if g not in res.games]
        has = f"{len(games) - len(missing)} of {len(games)}"
        lines.append(
            f"  {res.name}: {has}" + (f" (missing: {', '.join(missing)})" if missing else "")
        )
    if name == "atari5":
        lines.append("Atari-5's estimate of the 57-game median human-normalized score:")
        for res in results:
            lines += atari5_lines(res)
    return "\n".join(lines) + "\n"
