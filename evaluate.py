"""Score a checkpoint: ``python evaluate.py run=<run dir> [episodes=100] [epsilon=0.05] ...``.

Writes ``eval-<checkpoint>-<timestamp>.json`` into the run dir; see README "Evaluating a
checkpoint".
"""

import sys

from dqn_harness.commands.evaluate import evaluate_main

if __name__ == "__main__":
    sys.exit(evaluate_main(sys.argv[1:]))
