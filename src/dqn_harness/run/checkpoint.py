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

import io
import json
import pickle
import random
import sys
import zipfile
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import torch
from omegaconf import OmegaConf

from dqn_harness.config.schema import MOVED_KEYS
from dqn_harness.dotted import lookup
from dqn_harness.errors import UsageError
from dqn_harness.files import read_jsonl, save_atomic, write_text_atomic

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
    """The global generators (Python, NumPy, torch); components keep their own in their state.

    Plain data only (ints, lists, tensors), so ``state.pt`` loads with ``weights_only=True``:
    NumPy's state is its dict form with the 624-word key as a list, not the legacy tuple that
    carries an ``ndarray`` (which unpickles through NumPy's reconstruct, a global torch's safe
    loader refuses)."""
    numpy_state = np.random.get_state(legacy=False)
    numpy_state["state"] = {
        "key": [int(k) for k in numpy_state["state"]["key"]],
        "pos": int(numpy_state["state"]["pos"]),
    }
    return {
        "python": random.getstate(),
        "numpy": numpy_state,
        "torch": torch.get_rng_state(),
    }


def seed_everything(seed: int) -> None:
    """The global generators (Python, NumPy, torch) a new run starts from."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def restore_rng(states: dict[str, Any]) -> None:
    random.setstate(states["python"])
    numpy_state = states["numpy"]
    if isinstance(numpy_state, dict):
        numpy_state = {
            **numpy_state,
            "state": {
                "key": np.asarray(numpy_state["state"]["key"], dtype=np.uint32),
                "pos": numpy_state["state"]["pos"],
            },
        }
    np.random.set_state(numpy_state)  # a trusted older checkpoint's legacy tuple as saved
    torch.set_rng_state(states["torch"])


def torch_save(obj: Any, f: BinaryIO) -> None:
    """``torch.save`` through memory, then one plain write: torch's zip writer turns a failed
    write (a full disk) into a RuntimeError ("unexpected pos"); a plain write raises the
    OSError that says what happened."""
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    f.write(buffer.getbuffer())


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


# Bytes read from a saved replay array per step while it is copied into its buffer.
READ_CHUNK = 4 << 20


class SavedArray:
    """One array of a replay file, not yet read: ``shape`` and ``dtype`` from its header, and
    ``read_into`` to stream it into a buffer's own array a chunk at a time. The frames are
    nearly all of a replay (0.7 GB for Pong's 100k, 6.6 GiB for a 1M Atari replay): reading
    them whole before the copy would hold them twice at the moment a resume peaks.
    ``np.asarray`` reads it whole, for the small arrays that need no care."""

    def __init__(self, data: Any, name: str) -> None:
        self.data, self.name = data, name
        with self._open() as f:
            self.shape, self.dtype, self.fortran = _npy_header(f)
        if self.dtype.hasobject:  # what np.load refuses without allow_pickle: never unpickled
            raise ValueError(f"{name} holds Python objects, which only allow_pickle would load")

    def _open(self) -> Any:  # a zipfile.ZipExtFile, typed IO[bytes], which lacks readinto
        return self.data.zip.open(f"{self.name}.npy")

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        array = self.data[self.name]
        return array if dtype is None else array.astype(dtype)

    def read_into(self, target: np.ndarray) -> None:
        """Fill ``target`` (C-contiguous, of this shape and dtype) from the file."""
        if self.fortran or self.dtype != target.dtype or not target.flags.c_contiguous:
            target[...] = np.asarray(self)  # not a layout a byte copy can fill: read it whole
            return
        view = target.reshape(-1).view(np.uint8).data
        with self._open() as f:
            _npy_header(f)
            for start in range(0, len(view), READ_CHUNK):
                part = view[start : start + READ_CHUNK]
                if f.readinto(part) != len(part):
                    raise ValueError(f"{self.name} ends early")


def _npy_header(f: BinaryIO) -> tuple[tuple[int, ...], np.dtype, bool]:
    """An .npy stream's (shape, dtype, fortran order), leaving ``f`` at the first data byte."""
    npy = np.lib.format
    major, _ = npy.read_magic(f)
    read = npy.read_array_header_1_0 if major == 1 else npy.read_array_header_2_0
    shape, fortran, dtype = read(f)
    return shape, dtype, fortran


class _LazyState(Mapping):
    """A saved replay state read from its open npz file one array at a time, when asked for,
    each as a ``SavedArray`` that a buffer streams into its own memory."""

    def __init__(self, data: Any, rest: dict[str, Any], prefix: str = "") -> None:
        self.data, self.rest, self.prefix = data, rest, prefix
        self.arrays = {n[len(prefix) :] for n in data.files if n.startswith(prefix) and n != META}

    def __getitem__(self, key: str) -> Any:
        if key in self.arrays:
            return SavedArray(self.data, f"{self.prefix}{key}")
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
    """state.pt (and the replay file when ``replay``, a buffer's state, is given), kill-safe.

    If state.pt cannot be written (a full disk), the new replay file, which nothing names yet,
    is removed again: the previous checkpoint stays whole and the space is given back."""
    old = sorted(ckpt_dir.glob("replay-*.npz"))
    state = {"format": FORMAT, **state}
    state["replay_file"] = save_replay(replay, ckpt_dir, state["env_steps"]) if replay else None
    try:
        save_atomic(state, ckpt_dir / STATE_FILE, torch_save)
    except BaseException:
        new = ckpt_dir / state["replay_file"] if state["replay_file"] else None
        if new is not None and new not in old:
            new.unlink(missing_ok=True)
        raise
    for path in old:
        if path.name != state["replay_file"]:
            path.unlink(missing_ok=True)


TRUST_KEY = "trust_checkpoint"


def read_checkpoint(path: Path, key: str, kind: str, trust: bool = False) -> dict[str, Any]:
    """A file this harness saved (``state.pt``, ``best.pt``, ``last.pt``), or a one-line
    UsageError under ``key`` saying it is corrupt, not ours, or holds code.

    Read with ``weights_only=True``: tensors, numbers, strings, lists and dicts, and nothing
    that runs code while it loads (what the harness writes is only that). A file that needs
    more (a pickled object: a crafted file, or one written by an older harness) is refused with
    the switch that loads it anyway, ``trust_checkpoint=true``, for files the user trusts.
    """
    try:
        data = torch.load(path, map_location="cpu", weights_only=not trust)
    except pickle.UnpicklingError as exc:
        if trust or "GLOBAL" not in str(exc):  # not a refused global: a broken file
            raise UsageError(key, f"checkpoint {path} is corrupt ({_reason(exc)})") from None
        raise UsageError(
            key,
            f"{path} holds more than tensors and plain data ({_reason(exc)}), and loading it "
            f"would run code from the file; if you trust where it came from (a checkpoint of "
            f"an older dqn-harness), add {TRUST_KEY}=true",
        ) from None
    except Exception as exc:  # noqa: BLE001 (truncated zip, a file of another kind, ...)
        raise UsageError(
            key, f"checkpoint {path} is corrupt or truncated ({_reason(exc)})"
        ) from None
    if not isinstance(data, dict) or "config" not in data or "env_steps" not in data:
        raise UsageError(key, f"{path} is not a dqn-harness {kind} checkpoint")
    return data


def _reason(exc: BaseException) -> str:
    """The first informative line of a load error, short (torch's weights-only message is a
    page of advice; the line that names the refused global is the one to keep)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    named = [line for line in lines if "GLOBAL" in line or "Unsupported" in line]
    text = (named or lines or [type(exc).__name__])[0]
    text = text.replace("WeightsUnpickler error: ", "")
    return text.split(" was not an allowed global")[0][:160]


def load_state(run_dir: Path, trust: bool = False) -> dict[str, Any]:
    """The saved state of a run, or a UsageError saying why it cannot be resumed (``trust``:
    ``trust_checkpoint=true``, see :func:`read_checkpoint`)."""
    if not run_dir.is_dir():
        raise UsageError("resume", f"no run directory at {run_dir}")
    path = run_dir / "checkpoints" / STATE_FILE
    if not path.exists():
        raise UsageError(
            "resume", f"no checkpoint at {path} (the run stopped before its first checkpoint)"
        )
    state = read_checkpoint(path, "resume", "run", trust)
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
    """Drop records logged after the checkpoint: the resumed run logs those steps again. A torn
    last line (a kill or a full disk mid-write) is dropped too, with a warning."""
    path = run_dir / "metrics.jsonl"
    if not path.exists():
        return
    kept = [
        json.dumps(record) for record in read_jsonl(path) if record.get("env_steps", 0) <= env_steps
    ]
    write_text_atomic(path, "\n".join(kept) + "\n" if kept else "")


def read_resume(cfg: Any, run_dir: Path) -> dict[str, Any] | None:
    """The checkpoint ``resume=`` names, checked against this config; metrics trimmed to it."""
    if not cfg.resume:
        return None
    state = load_state(Path(cfg.resume), bool(cfg.trust_checkpoint))
    check_compatible(OmegaConf.to_container(cfg, resolve=True), state["config"])  # type: ignore[arg-type]
    if state["replay_file"] is None and cfg.algo.name == "dqn":
        print(
            "warning: the checkpoint has no replay buffer (checkpoint.buffer=false): "
            f"learning restarts after {cfg.learning_starts:,} steps of fresh collection",
            file=sys.stderr,
        )
    trim_metrics(run_dir, state["env_steps"])
    return state
