"""MkDocs hooks: pages generated from the code, and the lab notebook brought into the site.

- ``reference/configuration.md`` is written from the config schema at every build
  (``dqn_harness.config.reference``), so the reference cannot drift from the code.
- ``experiments/README.md`` (the lab notebook: every recorded run, its command and its curves)
  and ``experiments/bench/README.md`` stay where they are in the repository, the history's one
  home; the build adds them and the curves they show, so the Results page can link to them.
"""

from __future__ import annotations

import sys
from pathlib import Path

from mkdocs.structure.files import File, Files

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

NOTEBOOKS = ("experiments/README.md", "experiments/bench/README.md")


def on_files(files: Files, config) -> Files:
    from dqn_harness.config.reference import config_reference

    files.append(
        File.generated(
            config, "reference/configuration.md", content=config_reference(ROOT / "conf")
        )
    )
    for path in NOTEBOOKS:
        files.append(File(path, str(ROOT), config["site_dir"], config["use_directory_urls"]))
    for image in sorted((ROOT / "experiments").rglob("*.png")):
        rel = image.relative_to(ROOT).as_posix()
        files.append(File(rel, str(ROOT), config["site_dir"], config["use_directory_urls"]))
    return files
