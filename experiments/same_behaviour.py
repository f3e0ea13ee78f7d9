"""Do two commits train the same? Runs the reference commands at each and diffs the numbers.

    python experiments/same_behaviour.py BEFORE AFTER        # two commits (any git revision)
    python experiments/same_behaviour.py BEFORE WORKTREE     # a commit against the working tree

A refactor should change no number a run produces. For each revision this checks the revision
out into a temporary git worktree, runs the reference commands there with this interpreter
(``PYTHONPATH`` points at that revision's ``src/``) and compares their ``metrics.jsonl`` (every
metric's sequence of (agent step, value)) and ``summary.json``. Wall-clock fields (steps/s,
seconds) and paths are left out: they differ from run to run by nature. Exit 0 when everything
else is identical, 1 otherwise, with the first differences of each metric printed.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
COMMANDS = {
    "cartpole_dqn": ["+experiment=cartpole_dqn", "seed=3", "total_steps=12000"],
    "frozenlake_tabular": ["algo=tabular", "env=frozenlake", "seed=3", "total_steps=20000"],
}
WALL_CLOCK = {"perf/sps", "perf/wall_s", "eval/wall_s", "sps", "wall_s"}
PATHS = {"wandb_run_dir", "checkpoint", "last_checkpoint", "cpus"}  # where, not what


def run_at(revision: str, out: Path) -> dict[str, Path]:
    """Run every reference command at ``revision`` (``WORKTREE``: the files as they are)."""
    with tempfile.TemporaryDirectory(prefix="same-behaviour-") as tmp:
        if revision == "WORKTREE":
            tree = ROOT
        else:
            tree = Path(tmp) / "tree"
            subprocess.run(
                ["git", "-C", str(ROOT), "worktree", "add", "--detach", str(tree), revision],
                check=True,
                capture_output=True,
            )
        try:
            runs = {}
            for name, args in COMMANDS.items():
                run_dir = out / name
                env = {**os.environ, "PYTHONPATH": str(tree / "src"), "WANDB_MODE": "offline"}
                cmd = [sys.executable, str(tree / "train.py"), *args, "progress=false"]
                cmd += ["logger=none", f"hydra.run.dir={run_dir}"]
                print(f"[{revision}] {' '.join(args)}", file=sys.stderr)
                proc = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=tmp)
                if proc.returncode != 0:
                    sys.exit(
                        f"[{revision}] {name} failed ({proc.returncode}):\n{proc.stderr[-3000:]}"
                    )
                runs[name] = run_dir
            return runs
        finally:
            if revision != "WORKTREE":
                subprocess.run(
                    ["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tree)],
                    check=False,
                    capture_output=True,
                )


def curves(run_dir: Path) -> dict[str, list[tuple[int, float]]]:
    """Each metric's (agent step, value) sequence, whatever records it was logged in."""
    out: dict[str, list[tuple[int, float]]] = {}
    for line in (run_dir / "metrics.jsonl").read_text().splitlines():
        record = json.loads(line)
        step = record.pop("env_steps")
        for key, value in record.items():
            if key not in WALL_CLOCK:
                out.setdefault(key, []).append((step, value))
    return out


def summary(run_dir: Path) -> dict[str, object]:
    data = json.loads((run_dir / "summary.json").read_text())
    return {k: v for k, v in data.items() if k not in WALL_CLOCK | PATHS}


def differences(before: Path, after: Path) -> list[str]:
    """Human-readable differences between two runs of the same command."""
    found = []
    a, b = curves(before), curves(after)
    for key in sorted(set(a) | set(b)):
        xs, ys = a.get(key, []), b.get(key, [])
        if xs == ys:
            continue
        diff = [(i, x, y) for i, (x, y) in enumerate(zip(xs, ys, strict=False)) if x != y]
        where = f"first at record {diff[0][0]}: {diff[0][1]} -> {diff[0][2]}" if diff else ""
        found.append(
            f"  {key}: {len(xs)} vs {len(ys)} records, {len(diff)} differ {where}".rstrip()
        )
    sa, sb = summary(before), summary(after)
    for key in sorted(set(sa) | set(sb)):
        if sa.get(key) != sb.get(key):
            found.append(f"  summary.{key}: {sa.get(key)!r} -> {sb.get(key)!r}")
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("before", help="a git revision")
    parser.add_argument("after", help="a git revision, or WORKTREE for the files as they are")
    parser.add_argument("--out", type=Path, default=ROOT / "outputs" / "same_behaviour")
    args = parser.parse_args()
    a = run_at(args.before, args.out / "before")
    b = run_at(args.after, args.out / "after")
    same = True
    for name in COMMANDS:
        found = differences(a[name], b[name])
        print(f"{name}: {'identical' if not found else 'DIFFERENT'}", *found, sep="\n")
        same &= not found
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
