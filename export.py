"""Export a trained agent: ``python export.py run=<run dir> out=<dir> [repo_id=...]``.

Writes a self-contained model folder (safetensors weights, config, evaluation, model card, GIF)
that ``evaluate.py checkpoint=<dir>`` scores; see README "Comparing with papers".
"""

import sys

from dqn_harness.commands.export import export_main

if __name__ == "__main__":
    sys.exit(export_main(sys.argv[1:]))
