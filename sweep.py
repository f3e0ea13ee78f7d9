"""Tune with Optuna: ``python sweep.py sweep=cartpole_dqn [n_trials=40] [workers=2] [key=value]``.

Options and the sweep file format: README "Sweeps" and src/dqn_harness/sweeping/.
"""

import sys
from pathlib import Path

from dqn_harness.commands.sweep import sweep_main

if __name__ == "__main__":
    sys.exit(sweep_main(sys.argv[1:], Path(__file__).resolve().parent))
