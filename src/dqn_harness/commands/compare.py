"""Compare local runs: learning curves over seeds (PNG) and a results table (markdown, CSV).

``python compare.py [group=G] [tag=T] [env=E] [algo=A] [status=S] [KEY=VALUE ...] [by=K1,K2]
[runs=DIR,...] [source=train|evaluate] [budget_s=S] [out=DIR]`` reads every run under ``runs``
(default ``outputs`` and ``multirun``, train.py's single runs and -m grids) from the files each
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

``budget_s=S`` compares the runs as they stood after S seconds of training wall time (curve,
final and best evaluation, solved or not, agent steps), for claims like "solves within an hour"
about runs that went on longer.
"""

from __future__ import annotations

import sys

from dqn_harness.commands.entry import entry
from dqn_harness.comparing.comparison import compare
from dqn_harness.comparing.report import markdown_table
from dqn_harness.comparing.stats import ConfigResult

USAGE = """\
usage: python compare.py [group=G] [tag=T] [env=E] [algo=A] [status=S] [KEY=VALUE ...]
         [by=K1,K2] [runs=DIR,...] [source=train|evaluate] [budget_s=S] [out=DIR]
         [mix_protocols=true] [normalize=human]

Learning curves over seeds (curves.png) and a results table (table.md, table.csv, runs.csv)
from the run dirs under outputs/ and multirun/. README "Comparing runs".
"""


def compare_command(argv: list[str]) -> int:
    """Compare, print the table and where the files went; bad input raises UsageError."""
    results, out, normalized = compare(argv)
    if normalized:
        print(normalized, end="")
        print(f"\nwrote {out}/normalized.md, normalized.csv, profiles.png")
        return 0
    print(markdown_table(results), end="")
    short = [r.name for r in results if len(r.steps) and len(r.runs) > 1 and _cut_short(r)]
    for name in short:
        print(f"note: {name}: curve stops where its shortest unsolved run stops", file=sys.stderr)
    print(f"\nwrote {out}/curves.png, curves.csv, table.md, table.csv, runs.csv")
    return 0


def compare_main(argv: list[str]) -> int:
    """``python compare.py``: :func:`compare_command` under the one command contract."""
    return entry(compare_command, USAGE, argv)


def _cut_short(res: ConfigResult) -> bool:
    last = max(s for r in res.runs for s, _ in r.curve)
    return bool(res.steps[-1] < last)
