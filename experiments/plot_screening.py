"""One figure of screening runs recorded at different times (each by ``compare.py``).

    .venv/bin/python experiments/plot_screening.py OUT.png LABEL=path/to/curves.csv[#CONFIG] ...

``#CONFIG`` picks one config of a file that holds several (its ``config`` column).

``compare.py`` draws the runs it finds on disk; screening candidates run in different sessions
leave only their recorded ``curves.csv`` behind (run dirs and checkpoints are not committed).
This draws each file's per-seed curves under its label, with the solved line at 19, so every
candidate reads on one set of axes.
"""

from __future__ import annotations

import csv
import sys
from collections import defaultdict
from pathlib import Path


def read_curves(path: Path, config: str | None) -> dict[str, list[tuple[int, float]]]:
    """curve name -> (agent step, eval return), the per-seed lines of one curves.csv."""
    out: dict[str, list[tuple[int, float]]] = defaultdict(list)
    with open(path) as f:
        for row in csv.DictReader(f):
            if config is not None and row["config"] != config:
                continue
            if row["curve"].startswith("seed"):
                out[row["curve"]].append((int(float(row["env_steps"])), float(row["value"])))
    return out


def main(argv: list[str]) -> None:
    if len(argv) < 2 or not all("=" in a for a in argv[1:]):
        print("usage: " + __doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        sys.exit(2)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 5.5), dpi=120)
    for i, arg in enumerate(argv[1:]):
        label, path = arg.split("=", 1)
        path, _, config = path.partition("#")
        curves = read_curves(Path(path), config or None)
        if not curves:
            print(f"error: {arg}: no per-seed curves there", file=sys.stderr)
            sys.exit(2)
        for j, points in enumerate(curves.values()):
            xs, ys = zip(*sorted(points), strict=True)
            ax.plot(xs, ys, color=f"C{i % 10}", marker="o", ms=3, label=label if j == 0 else None)
    ax.axhline(19, color="grey", linestyle="--", linewidth=1, label="solved (19)")
    ax.set_xlabel("agent steps")
    ax.set_ylabel("evaluation return (ε 0.01; screening 10 games, env=pong 20)")
    ax.set_title("Pong: evaluation curves per seed")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(argv[0])
    print(f"wrote {argv[0]}")


if __name__ == "__main__":
    main(sys.argv[1:])
