"""A comparison of local runs: choose them, group seeds into configs, aggregate, write.

What ``compare.py`` computes, apart from its command line (``commands/compare.py``): runs are
read from the files each run leaves in its directory (``config.json``, ``summary.json``,
``metrics.jsonl``), so no W&B account or network is needed; the results go to ``curves.png``,
``table.md``, ``table.csv`` and ``runs.csv``.
"""

from __future__ import annotations

import math
import re
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from dqn_harness.arguments import key_values
from dqn_harness.comparing.normalized import GAME_KEYS, write_normalized
from dqn_harness.comparing.normalized import normalize as normalize_configs
from dqn_harness.comparing.report import markdown_table, plot_curves, runs_csv, table_csv
from dqn_harness.comparing.runs import (
    EVAL_KEY,
    OPTIONS,
    SELECTORS,
    SOURCES,
    WALL_KEY,
    Run,
    at_budget,
    find_runs,
    label,
    latest_evaluation,
    matches,
    parse_value,
    unfinished_runs,
    varying_keys,
)
from dqn_harness.comparing.stats import ConfigResult, summarize
from dqn_harness.comparing.suites import suite_summary
from dqn_harness.errors import UsageError
from dqn_harness.tracking.metrics import read_metrics

DEFAULT_ROOTS = ("outputs", "multirun")


def compare_options(
    argv: list[str],
) -> tuple[dict[str, list[str]], dict[str, list[Any]], dict[str, str]]:
    """Selectors (``group=``...), config-key filters and the comparison's own options."""
    selectors: dict[str, list[str]] = {}
    values: dict[str, list[Any]] = {}
    options: dict[str, str] = {}
    for key, value in key_values(argv, "group=cartpole_dqn"):
        if not value:
            raise UsageError(key, "expected key=value (e.g. group=cartpole_dqn)")
        if key in SELECTORS:
            selectors[key] = value.split(",")
        elif key in OPTIONS:
            options[key] = value
        elif value.startswith("["):
            values[key] = [parse_value(value)]
        else:
            values[key] = [parse_value(v) for v in value.split(",")]
    return selectors, values, options


def group_configs(
    runs: list[Run], options: dict[str, str], known: set[str], by_game: bool
) -> dict[str, list[Run]]:
    """Runs that differ only in seed form one config, told apart by ``by=`` or by every key
    that varies; ``by_game=False`` (normalize=human) keeps the games of one config together,
    since they are the tasks its aggregate is over."""
    by = options["by"].split(",") if "by" in options else varying_keys(runs)
    if not by_game:
        by = [k for k in by if k not in GAME_KEYS]
    unknown = [k for k in by if k not in known]
    if unknown:
        raise UsageError("by", f"no run has config key '{unknown[0]}'")
    configs: dict[str, list[Run]] = {}
    for run in runs:
        # with nothing but the game varying, one config spans the games: named by its algo
        name = label(run, by) if by or by_game else str(run.config.get("algo.name", "runs"))
        configs.setdefault(name, []).append(run)
    return configs


def run_roots(options: dict[str, str]) -> list[Path]:
    """``runs=DIR,...``, or where train.py puts single runs and -m grids."""
    if "runs" in options:
        roots = [Path(p) for p in options["runs"].split(",")]
        for root in roots:
            if not root.is_dir():
                raise UsageError("runs", f"'{root}' is not a directory")
        return roots
    roots = [Path(p) for p in DEFAULT_ROOTS if Path(p).is_dir()]
    if not roots:
        raise UsageError(
            "runs", f"no {' or '.join(DEFAULT_ROOTS)} directory here (runs=DIR names another)"
        )
    return roots


def compare(argv: list[str]) -> tuple[list[ConfigResult], Path, str]:
    """Choose the runs, group them into configs, aggregate over seeds, write the files.

    Returns the per-config results (curves and table), the output dir, and with
    ``normalize=human`` the human-normalized report instead of the curves.
    """
    selectors, values, options = compare_options(argv)
    budget = _budget(options)  # checked before any run dir is read
    normalize = options.get("normalize")
    if normalize is not None and normalize != "human":
        raise UsageError("normalize", f"'{normalize}' is not one of human")
    roots = run_roots(options)
    runs, skipped = find_runs(roots)
    filters = argv_filters(argv)
    where = " ".join(filters) or "(no filters)"
    known = {k for r in runs for k in r.config}
    for key in values:
        if runs and key not in known:
            raise UsageError(key, f"no run under {_roots(roots)} has this config key")
    chosen = [r for r in runs if matches(r, selectors, values)]
    warn_unfinished(roots, selectors, values)
    if not chosen:
        groups = sorted({r.group for r in runs})
        found = f"{len(runs)} runs found there" + (
            f"; groups: {', '.join(groups)}" if groups else ""
        )
        if skipped:
            found += f"; {skipped} run dirs without a readable config"
        raise UsageError("filters", f"no runs match {where} under {_roots(roots)} ({found})")
    mix = options.get("mix_protocols", "false").lower() in ("true", "1", "yes")
    if not mix:
        check_one_protocol(chosen)
    source = options.get("source", "train")
    if source not in SOURCES:
        raise UsageError("source", f"'{source}' is not one of {', '.join(SOURCES)}")
    if source == "evaluate":
        chosen = with_evaluations(chosen, where, roots, mix)
    for run in chosen:
        run.curve = read_metrics(run.path, EVAL_KEY)
        if budget is not None:
            at_budget(run, read_metrics(run.path, WALL_KEY), budget)
    chosen = [r for r in chosen if r.curve] or chosen
    configs = group_configs(chosen, options, known, by_game=normalize is None)
    out = Path(options.get("out") or Path("outputs") / "compare" / _slug(where))
    out.mkdir(parents=True, exist_ok=True)
    if normalize:
        scores = normalize_configs(dict(sorted(configs.items())))
        normalized = write_normalized(scores, out) + suite_summary(chosen, scores)
        return [], out, normalized
    rng = np.random.default_rng(0)
    results = [summarize(name, rs, rng) for name, rs in sorted(configs.items())]
    thresholds = {r.summary.get("reward_threshold") for r in chosen}
    threshold = thresholds.pop() if len(thresholds) == 1 else None
    title = plot_title(filters, chosen, budget)
    (out / "curves.csv").write_text(plot_curves(results, out / "curves.png", title, threshold))
    (out / "table.md").write_text(markdown_table(results))
    (out / "table.csv").write_text(table_csv(results))
    (out / "runs.csv").write_text(runs_csv(results))
    return results, out, ""


def warn_unfinished(
    roots: list[Path], selectors: dict[str, list[str]], values: dict[str, list[Any]]
) -> None:
    """One warning line for each run the filters would have chosen but that is left out for
    want of a summary (``unfinished_runs``); runs the filters pass over stay quiet."""
    for run in unfinished_runs(roots):
        if not matches(run, selectors, values):
            continue
        print(
            f"warning: {run.path}: no summary.json (the run was killed or is still running); "
            "left out",
            file=sys.stderr,
        )


# What makes two runs' evaluations comparable: the protocol's name and the keys it sets.
PROTOCOL_KEYS = (
    "protocol.name",
    "eval.episodes",
    "eval.epsilon",
    "env.repeat_action_probability",
    "env.full_action_space",
    "env.terminal_on_life_loss",
    "env.max_num_frames_per_episode",
    "env.max_episode_steps",  # a cap on the episode caps its return (CartPole: 500)
    "env.noop_max",
)


def check_one_protocol(runs: list[Run]) -> None:
    """Runs evaluated under different protocols make a table that compares the protocols as
    much as the agents: refused unless ``mix_protocols=true``. A run from before protocols had
    names counts as ``unrecorded``."""
    settings = [{k: run.config.get(k, "unrecorded") for k in PROTOCOL_KEYS} for run in runs]
    refuse_mixed(
        settings,
        "protocol",
        "compare them apart (e.g. protocol.name=harness) or say mix_protocols=true",
    )


def evaluation_settings(run: Run, result: dict[str, Any]) -> dict[str, Any]:
    """The ``PROTOCOL_KEYS`` an evaluate.py result was scored under: the result's own record
    where it has one, else the run's config (evaluate.py plays the env the run trained on, and
    refuses to change the keys it does not record). Not the protocol's name: a result scored
    with ``epsilon=0.05`` names itself "harness, modified", and the settings are what decide."""
    env = result.get("env", {})
    own = {"eval.episodes": result.get("episodes"), "eval.epsilon": result.get("epsilon")}
    own |= {f"env.{k}": v for k, v in env.items()}
    return {
        k: own[k] if k in own else run.config.get(k, "unrecorded")
        for k in PROTOCOL_KEYS
        if k != "protocol.name"
    }


def refuse_mixed(settings: list[dict[str, Any]], key: str, hint: str) -> None:
    """One line naming the keys on which the first two kinds of settings differ, and how many
    runs follow each kind; nothing when they are all alike."""
    kinds = Counter(tuple(one.items()) for one in settings)
    if len(kinds) < 2:
        return
    first, second = (dict(k) for k in list(kinds)[:2])
    described = ", ".join(f"{k} {first[k]} vs {second[k]}" for k in first if first[k] != second[k])
    counts = "; ".join(
        f"{dict(sig).get('protocol.name', f'kind {i + 1}')}: {n} runs"
        for i, (sig, n) in enumerate(kinds.items())
    )
    raise UsageError(
        key, f"the runs follow {len(kinds)} evaluation protocols ({counts}; {described}); {hint}"
    )


def with_evaluations(runs: list[Run], where: str, roots: list[Path], mix: bool) -> list[Run]:
    """``source=evaluate``: each run's final return is its newest evaluate.py result (more
    episodes, a stated protocol) instead of training's last evaluation; runs without one are
    left out, and results scored under different protocols are refused unless ``mix``."""
    kept, settings = [], []
    for run in runs:
        result = latest_evaluation(run.path)
        if result is None:
            continue
        run.summary = {**run.summary, "eval_return_mean": result["return_mean"]}
        settings.append(evaluation_settings(run, result))
        kept.append(run)
    if not kept:
        raise UsageError(
            "source",
            f"no run matching {where} under {_roots(roots)} has an evaluate.py result "
            "(eval-*.json); run python evaluate.py run=<run dir> first",
        )
    if not mix:
        refuse_mixed(
            settings,
            "source",
            "re-score them alike (evaluate.py episodes=... epsilon=...) or say mix_protocols=true",
        )
    if len(kept) < len(runs):
        print(f"note: {len(runs) - len(kept)} runs have no evaluate.py result", file=sys.stderr)
    return kept


def _budget(options: dict[str, str]) -> float | None:
    if "budget_s" not in options:
        return None
    try:
        budget = float(options["budget_s"])
    except ValueError:
        budget = math.nan
    if not budget > 0:
        raise UsageError("budget_s", f"must be seconds > 0, got '{options['budget_s']}'")
    return budget


def plot_title(filters: list[str], runs: list[Run], budget: float | None) -> str:
    """The filters that chose the runs, or (with none) the groups they came from: a plot that
    leaves the README carries no command line, so its title has to say what it shows."""
    groups = sorted({r.group for r in runs})
    count = f"{len(runs)} run" + ("s" if len(runs) != 1 else "")
    subject = " ".join(filters) or f"{', '.join(groups)} ({count})"
    return subject if budget is None else f"{subject}, as they stood after {budget:g} s"


def argv_filters(argv: list[str]) -> list[str]:
    return [a for a in argv if a.partition("=")[0] not in OPTIONS]


def _roots(roots: list[Path]) -> str:
    return ", ".join(f"{r}/" for r in roots)


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.=-]+", "_", text).strip("_") or "all"
