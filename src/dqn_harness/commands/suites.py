"""``-m suite=<name>``: a game suite as a grid, one job per game (x every other swept key).

A suite file (``conf/suite/<name>.yaml``) names its games and the env preset they train with.
The command line is rewritten before Hydra sees it: ``suite=atari5`` becomes
``suite=atari5 env=<preset> env.id=<game 1>,<game 2>,...``, so Hydra's own sweeper (the local
launcher or Slurm's) runs the games like any other swept key, each job records the suite in its
config, and a bad suite (a game ALE does not have, a single run) is one line before anything
runs.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from dqn_harness.errors import UsageError


def suite_name(argv: list[str]) -> str | None:
    given = [a.split("=", 1)[1] for a in argv if a.lstrip("+").startswith("suite=")]
    return given[-1] if given and given[-1] != "none" else None


def expand_suite(conf_dir: Path, argv: list[str], multirun: bool) -> list[str]:
    """``argv`` with the suite's games as an ``env.id`` sweep (unchanged without a suite)."""
    name = suite_name(argv)
    if name is None:
        return argv
    path = conf_dir / "suite" / f"{name}.yaml"
    if not path.is_file():
        known = ", ".join(sorted(p.stem for p in (conf_dir / "suite").glob("*.yaml")))
        raise UsageError("suite", f"no suite '{name}' (known: {known})")
    if not multirun:
        raise UsageError(
            "suite", f"a suite is a grid of games: run it with -m (python train.py -m suite={name})"
        )
    if any(a.startswith("env.id=") for a in argv):
        raise UsageError("env.id", f"suite={name} sets the games; drop env.id= or the suite")
    spec = yaml.safe_load(path.read_text()) or {}
    games = list(spec.get("games") or [])
    if not games:
        raise UsageError("suite.games", f"suite {name} lists no games")
    for game in games:
        check_game(name, str(game))
    preset = [] if any(a.startswith("env=") for a in argv) else [f"env={spec['preset']}"]
    return [*argv, *preset, f"env.id={','.join(games)}"]


def check_game(suite: str, env_id: str) -> None:
    """A game of a suite must be one ALE can play here (and have reference scores)."""
    import ale_py
    import gymnasium as gym

    from dqn_harness.comparing.normalized import reference_scores
    from dqn_harness.envs.atari import ale_game

    try:
        gym.spec(env_id)
        game = ale_game(env_id)
    except (gym.error.Error, ValueError):
        raise UsageError("suite.games", f"suite {suite}: no ALE game '{env_id}'") from None
    if ale_py.roms.get_rom_path(game) is None:
        raise UsageError("suite.games", f"suite {suite}: no ROM for '{env_id}'")
    if game not in reference_scores():
        raise UsageError("suite.games", f"suite {suite}: no reference scores for '{env_id}'")
