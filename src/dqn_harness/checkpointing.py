"""Resumable run state: everything a run needs to continue as if it had never stopped.

``checkpoints/state.pt`` holds the networks, optimizer, counters, cadences, RNG states and the
W&B run id; the replay buffer goes to its own ``replay-<env_steps>.npz`` (uint8 frames, stored
uncompressed) because it is hundreds of MB and ``checkpoint.buffer=false`` leaves it out. Write
order makes a kill at any moment safe: the new replay file first (temporary name, then rename),
then ``state.pt`` naming it (same), then the old replay file is deleted. Whatever instant the
process dies, ``state.pt`` names a complete replay file from the same step.

What cannot be restored: the emulator's state mid-episode. A resumed run starts fresh episodes
(the interrupted episode's frames stay in the replay as an episode that ended without a
transition out of its last frame, so nothing is bootstrapped across the gap).
"""

from __future__ import annotations

import json
import random
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dqn_harness.config import ConfigError
from dqn_harness.evaluation import save_atomic

STATE_FILE = "state.pt"
# Keys whose change makes a checkpoint meaningless for the new config.
COMPATIBLE_KEYS = (
    "algo.name",
    "env.id",
    "env.frame",
    "env.frame_stack",
    "env.num_envs",
    "model.name",
    "model.hidden",
    "model.dueling",
    "buffer.name",  # a prioritized replay file carries its priorities; a uniform one has none
)
# What a checkpoint written before a key existed was trained with.
COMPATIBLE_DEFAULTS = {"model.dueling": False, "buffer.name": "uniform"}
BUFFER_ARRAYS = ("frames", "actions", "rewards", "terminated", "truncated", "has_next", "pos")


def rng_states() -> dict[str, Any]:
    return {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
    }


def restore_rng(states: dict[str, Any]) -> None:
    random.setstate(states["python"])
    np.random.set_state(states["numpy"])
    torch.set_rng_state(states["torch"])


def run_state(collector: Any, tracker: Any, evaluator: Any, config: Any) -> dict[str, Any]:
    """The algorithm-independent part of a resumable state (DQN and tabular add their own)."""
    return {
        "env_steps": collector.env_steps,
        "collector": collector.state(),
        "tracker": tracker.state(),
        "evaluator": evaluator.state(),
        "rng": rng_states(),
        "wandb_id": tracker.wandb_id,
        "config": config,
    }


def save_replay(buffer: Any, ckpt_dir: Path, env_steps: int) -> str:
    name = f"replay-{env_steps}.npz"
    arrays = {key: getattr(buffer, key) for key in BUFFER_ARRAYS}
    meta = {
        "cursor": buffer.cursor,
        "written": buffer.written,
        "transitions": buffer.transitions,
        "rng": buffer.rng.bit_generator.state,
    }
    if buffer.sampler is not None:
        arrays["priorities"] = buffer.sampler.tree.values()
        meta["sampler"] = buffer.sampler.state()
    arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    save_atomic(arrays, ckpt_dir / name, lambda obj, f: np.savez(f, **obj))
    return name


def load_replay(buffer: Any, path: Path) -> None:
    """Fill ``buffer`` (already allocated with the same shape) from a replay file."""
    try:
        with np.load(path) as data:
            meta = json.loads(bytes(data["meta"]).decode())
            for key in BUFFER_ARRAYS:
                target = getattr(buffer, key)
                if data[key].shape != target.shape:
                    raise ConfigError(
                        "buffer.capacity",
                        f"the checkpoint's replay has shape {data[key].shape}, this config "
                        f"needs {target.shape} (keep buffer.capacity and env.num_envs)",
                    )
                target[...] = data[key]
            if buffer.sampler is not None:
                buffer.sampler.restore(data["priorities"], meta["sampler"])
    except (OSError, ValueError, KeyError, zipfile.BadZipFile, EOFError) as exc:
        raise ConfigError("resume", f"replay file {path} is unreadable ({exc})") from None
    buffer.cursor, buffer.written = meta["cursor"], meta["written"]
    buffer.transitions = meta["transitions"]
    buffer.rng.bit_generator.state = meta["rng"]


def write_state(state: dict[str, Any], ckpt_dir: Path, buffer: Any | None) -> None:
    """state.pt (and the replay file when ``buffer`` is given), in the kill-safe order."""
    old = sorted(ckpt_dir.glob("replay-*.npz"))
    state = dict(state)
    state["replay_file"] = save_replay(buffer, ckpt_dir, state["env_steps"]) if buffer else None
    save_atomic(state, ckpt_dir / STATE_FILE, torch.save)
    for path in old:
        if path.name != state["replay_file"]:
            path.unlink(missing_ok=True)


def load_state(run_dir: Path) -> dict[str, Any]:
    """The saved state of a run, or a ConfigError saying why it cannot be resumed."""
    if not run_dir.is_dir():
        raise ConfigError("resume", f"no run directory at {run_dir}")
    path = run_dir / "checkpoints" / STATE_FILE
    if not path.exists():
        raise ConfigError(
            "resume", f"no checkpoint at {path} (the run stopped before its first checkpoint)"
        )
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # noqa: BLE001 (truncated zip, unpickling errors, ...)
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ConfigError(
            "resume", f"checkpoint {path} is corrupt or truncated ({reason[:120]})"
        ) from None
    if not isinstance(state, dict) or "config" not in state or "env_steps" not in state:
        raise ConfigError("resume", f"{path} is not a dqn-harness run checkpoint")
    if state.get("replay_file"):
        replay = path.parent / state["replay_file"]
        try:  # the zip directory sits at the end: a truncated file fails here, cheaply
            with zipfile.ZipFile(replay) as z:
                missing = {f"{k}.npy" for k in (*BUFFER_ARRAYS, "meta")} - set(z.namelist())
        except (OSError, zipfile.BadZipFile) as exc:
            raise ConfigError("resume", f"replay file {replay} is unreadable ({exc})") from None
        if missing:
            raise ConfigError("resume", f"replay file {replay} lacks {', '.join(sorted(missing))}")
    return state


def check_compatible(config: dict[str, Any], saved: dict[str, Any]) -> None:
    """A checkpoint from a different env or network shape cannot continue this config."""
    for key in COMPATIBLE_KEYS:
        new, old = _get(config, key), _get(saved, key)
        if old is None:
            old = COMPATIBLE_DEFAULTS.get(key)
        if new != old:
            raise ConfigError(
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
    save_atomic(
        ("\n".join(kept) + "\n" if kept else "").encode(), path, lambda obj, f: f.write(obj)
    )


def _get(tree: dict[str, Any], dotted: str) -> Any:
    node: Any = tree
    for part in dotted.split("."):
        node = node.get(part) if isinstance(node, dict) else None
    return node
