"""Compare local runs: ``python compare.py group=cartpole_dqn [tag=...] [KEY=VALUE] [by=...]``.

Writes learning curves (PNG) and a results table (markdown, CSV); see README "Comparing runs".
"""

import sys

from dqn_harness.commands.compare import compare_main

if __name__ == "__main__":
    sys.exit(compare_main(sys.argv[1:]))
