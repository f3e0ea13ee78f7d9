"""``resume=``: which run to continue, and the arguments that continue it.

``resume=<run dir>`` continues that run in its own directory under its own name, with the
overrides it was started with (new ones on top). ``resume=auto`` is for jobs started again with
the same arguments (a requeued cluster job, a cron entry): it finds the newest run started with
the same arguments that has a checkpoint, or starts fresh. A ``-m`` job's arguments reach it
without passing through train.py's preflight, so it resolves ``resume=auto`` itself
(:func:`resolve_auto_resume`).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf, open_dict

from dqn_harness.dotted import flatten
from dqn_harness.errors import UsageError
from dqn_harness.files import write_text_atomic
from dqn_harness.run.checkpoint import STATE_FILE, load_state

# Arguments a resumed run takes from the new command line only: trust_checkpoint=true vouches for
# the file read now, not for whatever a later resume finds there.
RESUME_OWNED = ("resume=", "hydra.run.dir=", "run_name=", "trust_checkpoint=")


def auto_resume_argv(argv: list[str]) -> list[str]:
    """``resume=auto`` -> ``resume=<dir>`` of the run to continue, or ``resume=null``.

    What a requeued cluster job needs: it is started again with the same arguments, so the run
    to continue is the newest one (by its checkpoint) started with the same arguments, among the
    runs beside the new one; or ``hydra.run.dir`` itself, when given and it has a checkpoint.
    """
    if "resume=auto" not in argv:
        return argv
    explicit = [a.split("=", 1)[1] for a in argv if a.startswith("hydra.run.dir=")]
    found = find_resumable(Path(explicit[-1]) if explicit else Path("outputs") / "new", argv)
    rest = [a for a in argv if not a.startswith("resume=")]
    if found is None:
        print("resume=auto: no earlier run with these arguments has a checkpoint; starting fresh")
        return [*rest, "resume=null"]
    print(f"resume=auto: continuing {found}")
    return [*rest, f"resume={found}"]


def find_resumable(run_dir: Path, overrides: list[str]) -> Path | None:
    """``run_dir`` if it has a checkpoint, else its newest sibling with one whose saved
    overrides equal ``overrides`` (``resume=``, ``hydra.*`` and ``run_name=`` aside)."""

    def state(d: Path) -> Path:
        return d / "checkpoints" / STATE_FILE

    if state(run_dir).exists():
        return run_dir.absolute()

    def own(args: list[str]) -> list[str]:
        return sorted(a for a in args if not a.startswith((*RESUME_OWNED, "hydra", "-")))

    wanted = own(overrides)
    candidates = []
    if run_dir.parent.is_dir():
        for d in run_dir.parent.iterdir():
            saved = d / ".hydra" / "overrides.yaml"
            same = saved.exists() and own([str(a) for a in OmegaConf.load(saved)]) == wanted
            if d != run_dir and state(d).exists() and same:
                candidates.append(d)
    if not candidates:
        return None
    return max(candidates, key=lambda d: state(d).stat().st_mtime).absolute()


def resolve_auto_resume(
    cfg: DictConfig, run_dir: Path, overrides: list[str]
) -> tuple[DictConfig, Path]:
    """A job of a -m grid (or a requeued cluster job) with ``resume=auto`` finds its run here,
    among the runs beside ``run_dir`` started with the same ``overrides``."""
    if cfg.resume != "auto":
        return cfg, run_dir
    found = find_resumable(run_dir, overrides)
    with open_dict(cfg):
        if found is None:
            cfg.resume = None
            return cfg, run_dir
        state = load_state(found, bool(cfg.trust_checkpoint))
        cfg.resume = str(found)
        cfg.run_name = state["config"]["run_name"]
    print(f"resume=auto: continuing {found} from agent step {state['env_steps']:,}")
    if found != run_dir.absolute():
        drop_empty_run_dir(run_dir)
    return cfg, found


def resume_argv(argv: list[str]) -> tuple[list[str], dict[str, Any] | None]:
    """``resume=DIR [overrides]`` -> DIR's saved overrides, the new ones, and DIR itself.

    The run continues under its own name and directory with the config it was started with;
    overrides given now (``total_steps=2000000`` to train longer) apply on top, and a change
    the checkpoint cannot follow (another env or network) is refused by check_compatible.
    """
    given = [a for a in argv if a.startswith("resume=")]
    if not given or given[-1] in ("resume=", "resume=null"):
        return argv, None
    run_dir = Path(given[-1].split("=", 1)[1]).absolute()
    state = load_state(run_dir, trusted(argv))  # missing, corrupt or unsafe: UsageError
    saved_file = run_dir / ".hydra" / "overrides.yaml"
    if not saved_file.exists():
        raise UsageError("resume", f"{run_dir} is not a train.py run directory (no .hydra/)")
    saved = [str(a) for a in OmegaConf.load(saved_file) if not str(a).startswith(RESUME_OWNED)]
    new = [a for a in argv if not a.startswith(RESUME_OWNED)]
    again = {override_key(a) for a in new}
    argv = [
        *[a for a in saved if override_key(a) not in again],  # a key given again: the new value
        *new,
        *[a for a in argv if a.startswith("trust_checkpoint=")],
        f"resume={run_dir}",
        f"hydra.run.dir={run_dir}",
        f"run_name={state['config']['run_name']}",
    ]
    return argv, state


def override_key(arg: str) -> str:
    """The key a command-line override sets (``+a.b=1``, ``++a.b=1`` and ``a.b=1`` all set
    ``a.b``): a resume that sets a key again replaces the saved value rather than repeating the
    key, so the merged command line (and an exported card's command) says it once, and Hydra
    is never asked to append the same ``+key`` twice."""
    return arg.split("=", 1)[0].lstrip("+~")


def trusted(argv: list[str]) -> bool:
    """Whether the command line says ``trust_checkpoint=true`` (read before Hydra composes:
    the checkpoint is loaded to find the run's arguments)."""
    given = [a.split("=", 1)[1].lower() for a in argv if a.startswith("trust_checkpoint=")]
    return bool(given) and given[-1] in ("true", "1", "yes", "on")


def drop_empty_run_dir(run_dir: Path) -> None:
    """Hydra creates the run dir before we validate; remove it if it holds only Hydra's files."""
    if run_dir.is_dir() and all(
        p.name == ".hydra" or p.suffix == ".log" for p in run_dir.iterdir()
    ):
        shutil.rmtree(run_dir, ignore_errors=True)


# What each resume changed, in the run dir: the run's command line (``.hydra/overrides.yaml``)
# keeps only the merged arguments, so without it a run resumed with ``optim.lr=3e-5`` at 420k
# would look as if it had been trained at 3e-5 throughout.
RESUMES_FILE = "resumes.json"
NOT_SETTINGS = ("resume", "trust_checkpoint")  # how this piece was started, not how it trains


def record_resume(
    run_dir: Path, env_steps: int, before: dict[str, Any], after: dict[str, Any]
) -> None:
    """Append to ``resumes.json``: the agent step a resume continued from and every setting
    whose value it changed (``{key: [before, after]}``, flat keys)."""
    old, new = flatten(before), flatten(after)
    changed = {
        k: [old.get(k), v] for k, v in new.items() if k not in NOT_SETTINGS and old.get(k) != v
    }
    history = read_resumes(run_dir)
    history.append({"env_steps": int(env_steps), "changed": changed})
    write_text_atomic(run_dir / RESUMES_FILE, json.dumps(history, indent=1))


def read_resumes(run_dir: Path) -> list[dict[str, Any]]:
    """The run's resumes, oldest first (``[]`` for a run never resumed)."""
    path = run_dir / RESUMES_FILE
    if not path.exists():
        return []
    data = json.loads(path.read_text())
    return data if isinstance(data, list) else []
