"""``python export.py run=<run dir> out=<dir> [checkpoint=best|last] [video=true|false]
[repo_id=<user>/<name>]``: a trained agent as a folder others can load (``scoring/export.py``),
scored back by ``python evaluate.py checkpoint=<dir>``, and pushed to the Hugging Face Hub with
``repo_id=``."""

from __future__ import annotations

from pathlib import Path

from dqn_harness.arguments import bool_option, key_values
from dqn_harness.commands.entry import entry
from dqn_harness.errors import UsageError

USAGE = """\
usage: python export.py run=<run dir> out=<new dir> [checkpoint=best|last] [video=true|false]
         [repo_id=<user>/<name>] [trust_checkpoint=true]

Writes a self-contained model folder (model.safetensors, config.json, eval.json, a model card
README.md, replay.gif); `python evaluate.py checkpoint=<dir>` scores it; repo_id= pushes it to
the Hugging Face Hub (a token from `huggingface-cli login` or HF_TOKEN). README "Comparing with
papers".
"""
OPTIONS = ("run", "out", "checkpoint", "video", "repo_id", "trust_checkpoint")


def export_options(argv: list[str]) -> dict[str, str]:
    """The command's options, checked (names, the required ones, the true/false ones)."""
    options = dict(key_values(argv, "run=outputs/<run dir>"))
    for key in options:
        if key not in OPTIONS:
            raise UsageError(key, f"unknown option (known: {', '.join(OPTIONS)})")
    for key in ("run", "out"):
        if not options.get(key):
            raise UsageError(key, f"give {key}=<dir>")
    bool_option(options, "video", default=True)
    bool_option(options, "trust_checkpoint")
    return options


def export_command(argv: list[str]) -> int:
    options = export_options(argv)
    video = bool_option(options, "video", default=True)
    trust = bool_option(options, "trust_checkpoint")
    from dqn_harness.config import register_configs
    from dqn_harness.scoring.export import export_run, push
    from dqn_harness.scoring.protocol import (
        Protocol,
        checkpoint_path,
        film_export,
        load_weights,
        scoring_config,
    )

    register_configs()
    run_dir = Path(options["run"]).absolute()
    path = checkpoint_path(run_dir, options.get("checkpoint", "best"))
    weights = load_weights(path, trust)
    out = Path(options["out"]).absolute()
    files = export_run(run_dir, path, weights, out)
    if video:
        files.append(film_export(out, scoring_config(weights["config"], Protocol()), weights))
    print(f"exported {path.name} ({int(weights['env_steps']):,} agent steps) to {out}:")
    for file in sorted(set(files)):
        print(f"  {file.name}")
    if options.get("repo_id"):
        print(f"pushed: {push(out, options['repo_id'])}")
    return 0


def export_main(argv: list[str]) -> int:
    """``python export.py``: :func:`export_command` under the one command contract."""
    return entry(export_command, USAGE, argv)
