"""Score a saved checkpoint under a stated protocol: what ``python evaluate.py`` does.

Training's evaluations steer the run (best checkpoint, solved rule) and use few episodes to stay
cheap. Reporting a result needs more: many episodes, the exploration rate and sticky-action
setting stated, a confidence interval, and the raw returns kept so anyone can recompute them.
The checkpoint carries the config it was trained with, so the network and the preprocessing are
rebuilt exactly; only the protocol keys (:data:`PROTOCOL_ENV_KEYS`) may differ from training.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from dqn_harness.config.schema import MOVED_KEYS, Config
from dqn_harness.envs import make_env, make_vec_env
from dqn_harness.envs.checks import validate_env
from dqn_harness.errors import UsageError
from dqn_harness.evaluation.play import evaluate
from dqn_harness.evaluation.video import play_episode, video_fps, write_gif
from dqn_harness.policy import Policy
from dqn_harness.run.checkpoint import read_checkpoint

# env keys a protocol may change: how episodes are played, not what the agent was trained on
PROTOCOL_ENV_KEYS = (
    "repeat_action_probability",
    "max_episode_steps",
    "max_num_frames_per_episode",
    "noop_max",
)
BOOTSTRAP_SAMPLES = 10_000


@dataclass
class Protocol:
    """How the checkpoint is played. ``None`` fields take the run's own ``eval.*`` values."""

    episodes: int | None = None
    epsilon: float | None = None
    num_envs: int | None = None
    seed: int | None = None  # default: the run's seed + 30,000 (no training/eval episode reused)
    video: int = 0  # episodes filmed after the scored ones
    env: dict[str, Any] = field(default_factory=dict)  # PROTOCOL_ENV_KEYS overrides
    name: str | None = None  # a named protocol (conf/protocol/) these settings come from
    full_action_space: bool | None = None  # the named protocol's; must be the network's
    modified: list[str] = field(default_factory=list)  # settings given on top of the name

    def label(self, trained: str) -> str:
        """What the result file records: the protocol's name (the run's own when none was
        named), and what was changed on top of it."""
        name = self.name or trained
        return f"{name}, modified: {' '.join(self.modified)}" if self.modified else name

    def updated(self, other: Protocol) -> Protocol:
        """These settings with ``other``'s given ones on top (a name stays, marked modified)."""
        changed = [
            f"{k}={getattr(other, k)}"
            for k in ("episodes", "epsilon", "num_envs")
            if getattr(other, k) is not None
        ] + [f"env.{k}={v}" for k, v in other.env.items()]
        return Protocol(
            episodes=other.episodes if other.episodes is not None else self.episodes,
            epsilon=other.epsilon if other.epsilon is not None else self.epsilon,
            num_envs=other.num_envs if other.num_envs is not None else self.num_envs,
            seed=other.seed if other.seed is not None else self.seed,
            video=other.video or self.video,
            env={**self.env, **other.env},
            name=self.name,
            full_action_space=self.full_action_space,
            modified=[*self.modified, *changed],
        )


def named_protocol(conf_dir: Path, name: str) -> Protocol:
    """A preset of ``conf/protocol/`` as scoring settings: its evaluation (episodes, epsilon,
    eval envs) and the emulator keys a scoring may change. Its ``terminal_on_life_loss`` is a
    training setting: scoring always plays whole games."""
    import yaml

    path = conf_dir / "protocol" / f"{name}.yaml"
    if not path.is_file():
        known = ", ".join(sorted(p.stem for p in (conf_dir / "protocol").glob("*.yaml")))
        raise UsageError("protocol", f"no protocol '{name}' (known: {known})")
    preset = yaml.safe_load(path.read_text()) or {}
    evaluation, env = preset.get("eval", {}), preset.get("env", {})
    return Protocol(
        episodes=evaluation.get("episodes"),
        epsilon=evaluation.get("epsilon"),
        num_envs=evaluation.get("num_envs"),
        env={k: v for k, v in env.items() if k in PROTOCOL_ENV_KEYS},
        name=name,
        full_action_space=env.get("full_action_space"),
    )


def checkpoint_path(run_dir: Path | None, checkpoint: str) -> Path:
    """``best``/``last`` in ``run_dir``, or a file path."""
    if checkpoint in ("best", "last"):
        if run_dir is None:
            raise UsageError("run", "give run=<run dir> (or checkpoint=<file>)")
        if not run_dir.is_dir():
            raise UsageError("run", f"no run directory at {run_dir}")
        path = run_dir / "checkpoints" / f"{checkpoint}.pt"
        if not path.exists():
            raise UsageError(
                "checkpoint", f"no {path.name} in {path.parent} (the run never evaluated)"
            )
        return path
    path = Path(checkpoint)
    from dqn_harness.scoring.export import is_export

    if not path.is_file() and not is_export(path):
        raise UsageError("checkpoint", f"no checkpoint file (or export folder) at {path}")
    return path


def load_weights(path: Path, trust: bool = False) -> dict[str, Any]:
    """A best/last weights file (or an export folder) and the config it was trained with, or
    a one-line error. A ``.pt`` is read as data only unless ``trust`` (``trust_checkpoint=true``:
    see ``run.checkpoint.read_checkpoint``); an export folder is safetensors and JSON."""
    if path.is_dir():
        from dqn_harness.scoring.export import read_export

        return read_export(path)
    data = read_checkpoint(path, "checkpoint", "best/last", trust)
    if "q_net" not in data and "values" not in data:
        raise UsageError("checkpoint", f"{path} holds no Q-network or Q-table")
    return data


def scoring_config(saved: dict[str, Any], protocol: Protocol) -> DictConfig:
    """The checkpoint's training config with the protocol's env overrides, checked.

    A checkpoint from before a key moved (``schedule.target_sync``) still scores: the key is
    put where it lives now, since scoring plays the saved policy and never trains.
    """
    saved = with_moved_keys(saved)
    cfg = OmegaConf.merge(OmegaConf.structured(Config), saved)
    trained = bool(OmegaConf.select(cfg, "env.full_action_space"))
    if protocol.full_action_space is not None and protocol.full_action_space != trained:
        sets = {True: "the full 18-action set", False: "the game's minimal action set"}
        raise UsageError(
            "protocol",
            f"{protocol.name} plays {sets[protocol.full_action_space]}; this network was "
            f"trained on {sets[trained]}",
        )
    assert isinstance(cfg, DictConfig)
    for key, value in protocol.env.items():
        if key not in PROTOCOL_ENV_KEYS:
            raise UsageError(
                f"env.{key}",
                "evaluate.py plays the run's own env; only "
                + ", ".join(f"env.{k}" for k in PROTOCOL_ENV_KEYS)
                + " may change",
            )
        try:
            OmegaConf.update(cfg, f"env.{key}", value)
        except OmegaConfBaseException as exc:
            raise UsageError(f"env.{key}", str(exc).splitlines()[0]) from None
    validate_env(cfg.env)
    return cfg


def with_moved_keys(saved: dict[str, Any]) -> dict[str, Any]:
    """A saved config with its moved keys (``MOVED_KEYS``) at their new places."""
    saved = copy.deepcopy(saved)
    for old, new in MOVED_KEYS.items():
        *old_parents, old_leaf = old.split(".")
        node = saved
        for part in old_parents:
            node = node.get(part, {}) if isinstance(node, dict) else {}
        if isinstance(node, dict) and old_leaf in node:
            value = node.pop(old_leaf)
            *new_parents, new_leaf = new.split(".")
            target = saved
            for part in new_parents:
                target = target.setdefault(part, {})
            target.setdefault(new_leaf, value)
    return saved


def load_policy(cfg: DictConfig, weights: dict[str, Any], n_actions: int, obs_space: Any) -> Policy:
    """The greedy policy of the saved Q-network or Q-table."""
    if cfg.algo.name == "tabular":
        from dqn_harness.tabular.qtable import QTable

        table = QTable(n_actions, seed=cfg.seed)
        table.load_state_dict(weights)
        return table.greedy
    from dqn_harness.nets import build_q_net

    net = build_q_net(cfg.model, obs_space, n_actions, cfg.trainer.channels_last)
    try:
        net.load_state_dict(weights["q_net"])
    except RuntimeError as exc:
        raise UsageError("checkpoint", f"weights do not fit the network: {exc}") from None
    net.eval()

    @torch.no_grad()
    def greedy(obs: np.ndarray) -> np.ndarray:
        return net(torch.as_tensor(obs)).argmax(1).numpy()

    return greedy


def bootstrap_ci(
    values: np.ndarray, rng: np.random.Generator, level: float = 0.95
) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean (episodes resampled with replacement)."""
    if len(values) < 2:
        return float(values.mean()), float(values.mean())
    idx = rng.integers(0, len(values), size=(BOOTSTRAP_SAMPLES, len(values)))
    means = values[idx].mean(axis=1)
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(means, [tail, 100 - tail])
    return float(low), float(high)


def score(
    cfg: DictConfig, weights: dict[str, Any], protocol: Protocol, out_dir: Path, tag: str
) -> dict[str, Any]:
    """Play the protocol's episodes; returns the result (returns kept, stats, video paths)."""
    episodes = protocol.episodes or int(cfg.eval.episodes)
    epsilon = float(cfg.eval.epsilon if protocol.epsilon is None else protocol.epsilon)
    num_envs = min(protocol.num_envs or int(cfg.eval.num_envs), episodes)
    seed = int(cfg.seed) + 30_000 if protocol.seed is None else protocol.seed
    env = make_vec_env(cfg.env, num_envs, training=False)
    start = time.perf_counter()
    try:
        n_actions = int(env.single_action_space.n)  # type: ignore[attr-defined]
        policy = load_policy(cfg, weights, n_actions, env.single_observation_space)
        lengths: list[int] = []
        cut: list[bool] = []
        returns = evaluate(
            env, policy, episodes, epsilon, np.random.default_rng(seed), seed, lengths, cut
        )
    finally:
        env.close()
    values = np.asarray(returns, dtype=float)
    low, high = bootstrap_ci(values, np.random.default_rng(seed))
    result: dict[str, Any] = {
        "protocol": protocol.label(str(cfg.protocol.name)),
        "episodes": episodes,
        "epsilon": epsilon,
        "seed": seed,
        "num_envs": num_envs,
        "env": {k: cfg.env[k] for k in ("id", *PROTOCOL_ENV_KEYS)},
        "return_mean": float(values.mean()),
        "return_std": float(values.std()),
        "return_min": float(values.min()),
        "return_max": float(values.max()),
        "return_ci95": [low, high],
        "returns": [float(r) for r in returns],
        "lengths": lengths,
        # truncated by a cap (ALE's frames, env.max_episode_steps), as the env says: a length
        # test would miss Atari's, whose no-op and FIRE frames at reset spend the cap too
        "capped_episodes": sum(cut),
        "wall_s": time.perf_counter() - start,
        "videos": [],
    }
    if protocol.video:
        result["videos"] = film(cfg, policy, protocol.video, epsilon, seed, out_dir, tag)
    return result


def film(
    cfg: DictConfig, policy: Policy, count: int, epsilon: float, seed: int, out: Path, tag: str
) -> list[str]:
    """GIFs of ``count`` more episodes, played the protocol's way on a rendering env."""
    env = make_env(cfg.env, render_mode="rgb_array", training=False)
    paths = []
    try:
        out.mkdir(parents=True, exist_ok=True)
        for i in range(count):
            rng = np.random.default_rng(seed + 1 + i)
            frames, _ = play_episode(env, policy, epsilon, rng, seed + 1 + i)
            path = out / f"{tag}-{i}.gif"
            write_gif(frames, path, video_fps(cfg.env, env))
            paths.append(str(path))
    finally:
        env.close()
    return paths


def film_export(out: Path, cfg: Any, weights: dict[str, Any], max_steps: int = 300) -> Path:
    """replay.gif: one episode of the exported policy, cut at ``max_steps`` agent steps."""
    from dqn_harness.evaluation.video import play_episode, video_fps, write_gif

    env = make_env(cfg.env, render_mode="rgb_array", training=False)
    try:
        n_actions = int(env.action_space.n)  # type: ignore[attr-defined]
        policy = load_policy(cfg, weights, n_actions, env.observation_space)
        rng = np.random.default_rng(0)
        frames, _ = play_episode(
            env, policy, float(cfg.eval.epsilon), rng, int(cfg.seed), max_frames=max_steps
        )
        path = out / "replay.gif"
        write_gif(frames, path, video_fps(cfg.env, env))
    finally:
        env.close()
    return path
