"""Resumable run state: everything a run needs to continue as if it had never stopped.

Each component owns its state (``state_dict``/``load_state_dict``: collector, replay storage
and sampler, cadences, evaluator, tracker, the learner's networks and optimizer); this module
only composes them and writes them safely. ``checkpoints/state.pt`` holds everything but the
replay buffer, which goes to its own ``replay-<env_steps>.npz`` (uint8 frames, uncompressed)
because it is hundreds of MB and ``checkpoint.buffer=false`` leaves it out. Write order makes a
kill at any moment safe: the new replay file first (temporary name, then rename), then
``state.pt`` naming it (same), then the old replay file is deleted. Whatever instant the
process dies, ``state.pt`` names a complete replay file from the same step.

What cannot be restored: the emulator's state mid-episode. A resumed run starts fresh episodes
(the interrupted episode's frames stay in the replay as an episode that ended without a
transition out of its last frame, so nothing is bootstrapped across the gap).
"""

from __future__ import annotations

import json
import random
import sys
import zipfile
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import OmegaConf

from dqn_harness.config.schema import MOVED_KEYS
from dqn_harness.dotted import lookup
from dqn_harness.errors import UsageError
from dqn_harness.files import save_atomic, write_text_atomic

STATE_FILE = "state.pt"
# Bumped when the layout of state.pt changes; older checkpoints are refused in one line.
# 3: each run component (decisions, summary, progress) saves its own state (2026-12-01).
FORMAT = 3
# Keys whose change makes a checkpoint meaningless for the new config.
COMPATIBLE_KEYS = (
    "algo.name",
    "env.id",
    "env.frame",
    "env.frame_stack",
    "env.num_envs",
    "model.name",
    "model._target_",
    "model.hidden",
    "model.dueling",
    "buffer.sampler",  # a prioritized replay file carries its priorities; a uniform one has none
)
META = "meta"  # the npz entry holding a replay state's non-array leaves, as JSON


def rng_states() -> dict[str, Any]:
    """The global generators (Python, NumPy, torch); components keep their own in their state."""
    return {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
    }


def restore_rng(states: dict[str, Any]) -> None:
    random.setstate(states["python"])
    np.random.set_state(states["numpy"])
    torch.set_rng_state(states["torch"])


def _flatten(tree: dict[str, Any], prefix: str = "") -> tuple[dict[str, np.ndarray], dict]:
    """Split a nested state into its arrays (dotted names) and everything else (JSON-able)."""
    arrays: dict[str, np.ndarray] = {}
    rest: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, np.ndarray):
            arrays[f"{prefix}{key}"] = value
        elif isinstance(value, dict):
            sub_arrays, sub_rest = _flatten(value, f"{prefix}{key}.")
            arrays.update(sub_arrays)
            rest[key] = sub_rest
        else:
            rest[key] = value
    return arrays, rest


class _LazyState(Mapping):
    """A saved replay state read from its open npz file one array at a time, when asked for:
    a 1M-transition Atari replay is 6.6 GiB, and reading it all before copying would need
    twice that."""

    def __init__(self, data: Any, rest: dict[str, Any], prefix: str = "") -> None:
        self.data, self.rest, self.prefix = data, rest, prefix
        self.arrays = {n[len(prefix) :] for n in data.files if n.startswith(prefix) and n != META}

    def __getitem__(self, key: str) -> Any:
        if key in self.arrays:
            return self.data[f"{self.prefix}{key}"]
        value = self.rest[key]
        if isinstance(value, dict) and any(a.startswith(f"{key}.") for a in self.arrays):
            return _LazyState(self.data, value, f"{self.prefix}{key}.")
        return value  # plain values and array-free dicts (RNG states) as saved

    def __iter__(self) -> Iterator[str]:
        return iter({k.split(".")[0] for k in self.arrays} | set(self.rest))

    def __len__(self) -> int:
        return len(set(self))


def save_replay(state: dict[str, Any], ckpt_dir: Path, env_steps: int) -> str:
    """A replay buffer's ``state_dict`` as ``replay-<env_steps>.npz``; returns the file name."""
    name = f"replay-{env_steps}.npz"
    arrays, rest = _flatten(state)
    arrays[META] = np.frombuffer(json.dumps(rest).encode(), dtype=np.uint8)
    save_atomic(arrays, ckpt_dir / name, lambda obj, f: np.savez(f, **obj))
    return name


def load_replay(path: Path, load_state_dict: Callable[[Mapping[str, Any]], None]) -> None:
    """Hand the replay state saved in ``path`` to ``load_state_dict`` (a buffer's), or raise a
    one-line UsageError."""
    try:
        with np.load(path) as data:
            load_state_dict(_LazyState(data, json.loads(bytes(data[META]).decode())))
    except (OSError, ValueError, KeyError, zipfile.BadZipFile, EOFError) as exc:
        raise UsageError("resume", f"replay file {path} is unreadable ({exc})") from None


def write_state(state: dict[str, Any], ckpt_dir: Path, replay: dict[str, Any] | None) -> None:
    """state.pt (and the replay file when ``replay``, a buffer's state, is given), kill-safe."""
    old = sorted(ckpt_dir.glob("replay-*.npz"))
    state = {"format": FORMAT, **state}
    state["replay_file"] = save_replay(replay, ckpt_dir, state["env_steps"]) if replay else None
    save_atomic(state, ckpt_dir / STATE_FILE, torch.save)
    for path in old:
        if path.name != state["replay_file"]:
            path.unlink(missing_ok=True)


def read_checkpoint(path: Path, key: str, kind: str) -> dict[str, Any]:
    """A file this harness saved (``state.pt``, ``best.pt``, ``last.pt``), or a one-line
    UsageError under ``key`` saying it is corrupt or not ours."""
    try:
        data = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # noqa: BLE001 (truncated zip, unpickling errors, ...)
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise UsageError(
            key, f"checkpoint {path} is corrupt or truncated ({reason[:120]})"
        ) from None
    if not isinstance(data, dict) or "config" not in data or "env_steps" not in data:
        raise UsageError(key, f"{path} is not a dqn-harness {kind} checkpoint")
    return data


def load_state(run_dir: Path) -> dict[str, Any]:
    """The saved state of a run, or a UsageError saying why it cannot be resumed."""
    if not run_dir.is_dir():
        raise UsageError("resume", f"no run directory at {run_dir}")
    path = run_dir / "checkpoints" / STATE_FILE
    if not path.exists():
        raise UsageError(
            "resume", f"no checkpoint at {path} (the run stopped before its first checkpoint)"
        )
    state = read_checkpoint(path, "resume", "run")
    for old, new in MOVED_KEYS.items():
        if lookup(state["config"], old) is not None:
            raise UsageError(
                old,
                f"{path} was written before this key became {new}; it cannot be resumed "
                f"(its best.pt/last.pt still score with evaluate.py); start a new run",
            )
    if state.get("format") != FORMAT:
        raise UsageError(
            "resume",
            f"{path} was written by an older dqn-harness (checkpoint format "
            f"{state.get('format', 1)}, this version reads {FORMAT}); start a new run",
        )
    if state.get("replay_file"):
        replay = path.parent / state["replay_file"]
        try:  # the zip directory sits at the end: a truncated file fails here, cheaply
            with zipfile.ZipFile(replay) as z:
                missing = {f"{META}.npy"} - set(z.namelist())
        except (OSError, zipfile.BadZipFile) as exc:
            raise UsageError("resume", f"replay file {replay} is unreadable ({exc})") from None
        if missing:
            raise UsageError("resume", f"replay file {replay} lacks {', '.join(sorted(missing))}")
    return state


def check_compatible(config: dict[str, Any], saved: dict[str, Any]) -> None:
    """A checkpoint from a different env or network shape cannot continue this config."""
    for key in COMPATIBLE_KEYS:
        new, old = lookup(config, key), lookup(saved, key)
        if new != old:
            raise UsageError(
                key, f"the checkpoint was trained with {old!r}, this config has {new!r}"
            )


def trim_metrics(run_dir: Path, env_steps: int) -> None:
    """Drop records logged after the checkpoint: the resumed run logs those steps again."""
    path = run_dir / "metrics.jsonl"
    if not path.exists():
        return
    kept = [
        line
        for line in path.read_text().splitlines()
        if line.strip() and json.loads(line).get("env_steps", 0) <= env_steps
    ]
    write_text_atomic(path, "\n".join(kept) + "\n" if kept else "")


def read_resume(cfg: Any, run_dir: Path) -> dict[str, Any] | None:
    """The checkpoint ``resume=`` names, checked against this config; metrics trimmed to it."""
    if not cfg.resume:
        return None
    state = load_state(Path(cfg.resume))
    check_compatible(OmegaConf.to_container(cfg, resolve=True), state["config"])  # type: ignore[arg-type]
    if state["replay_file"] is None and cfg.algo.name == "dqn":
        print(
            "warning: the checkpoint has no replay buffer (checkpoint.buffer=false): "
            f"learning restarts after {cfg.learning_starts:,} steps of fresh collection",
            file=sys.stderr,
        )
    trim_metrics(run_dir, state["env_steps"])
    return state
