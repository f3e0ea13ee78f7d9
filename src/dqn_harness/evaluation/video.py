"""Evaluation videos: one episode of the current policy, every K evaluations, as a GIF.

The episode is played on its own single env built with ``render_mode="rgb_array"``, so the
recorded frames are the full-colour screen a person would see, while the agent still acts on the
same preprocessed observations it was trained on. GIF (written with Pillow, which matplotlib
already brings) needs no video codec: W&B shows it as a video and any browser plays the file in
the run dir. Frames are kept at agent-step rate (every ``frame_skip``-th Atari frame).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from PIL import Image

from dqn_harness.envs import is_atari, make_env
from dqn_harness.files import save_atomic
from dqn_harness.policy import Policy, epsilon_greedy

MAX_FRAMES = 4_500  # 5 minutes of Pong at 15 agent steps/s; longer episodes are cut here


def play_episode(
    env: gym.Env,
    policy: Policy,
    epsilon: float,
    rng: np.random.Generator,
    seed: int,
    max_frames: int = MAX_FRAMES,
) -> tuple[list[np.ndarray], float]:
    """Frames (the reset screen, then one per agent step) and the episode's return, stopped
    after ``max_frames`` frames (a clip needs no more of the game than it keeps)."""
    obs, _ = env.reset(seed=seed)
    frames: list[np.ndarray] = [np.asarray(env.render())]
    total, done = 0.0, False
    n_actions = int(env.action_space.n)  # type: ignore[attr-defined]
    while not done and len(frames) < max_frames:
        action = int(epsilon_greedy(policy, np.asarray(obs)[None], epsilon, n_actions, rng)[0])
        obs, reward, terminated, truncated, _ = env.step(action)
        total += float(reward)
        done = terminated or truncated
        frames.append(np.asarray(env.render()))
    return frames, total


def video_fps(env_cfg: Any, env: gym.Env) -> float:
    """Real-time playback: frames are kept at agent-step rate."""
    if is_atari(env_cfg.id):
        return 60.0 / env_cfg.frame_skip  # the emulator runs at 60 frames/s
    return float(env.metadata.get("render_fps") or 30)


def write_gif(frames: list[np.ndarray], path: Path, fps: float) -> None:
    images = [Image.fromarray(np.asarray(f, dtype=np.uint8)) for f in frames]
    save_atomic(
        images,
        path,
        lambda imgs, f: imgs[0].save(
            f,
            format="GIF",
            save_all=True,
            append_images=imgs[1:],
            duration=max(20, round(1000 / fps)),
            loop=0,
        ),
    )


class VideoRecorder:
    """Records an episode at the 1st, (K+1)th, (2K+1)th ... evaluation of a run.

    Args:
        env_cfg: ``env.*``; a render env with the same preprocessing is built on first use.
        out_dir: where ``eval-<agent step>.gif`` files go.
        every: evaluations between videos (K).
        epsilon: exploration while filming (the evaluation's).
        seed: the filmed episodes are seeded from it, so a run always films the same ones.
        log_video: called with (path, agent step, return) to put the video in the run's log.
    """

    def __init__(
        self,
        *,
        env_cfg: Any,
        out_dir: Path,
        every: int,
        epsilon: float,
        seed: int,
        log_video: Callable[[Path, int, float], None],
    ) -> None:
        self.env_cfg = env_cfg
        self.out_dir = out_dir
        self.every = every
        self.epsilon = epsilon
        self.seed = seed
        self.log_video = log_video
        self.env: gym.Env | None = None  # built on first use: most evaluations record nothing

    def due(self, evaluation: int) -> bool:
        """``evaluation`` counts from 1, so a run's first evaluation is always recorded."""
        return (evaluation - 1) % self.every == 0

    @property
    def fps(self) -> float:
        assert self.env is not None
        return video_fps(self.env_cfg, self.env)

    def record(self, policy: Policy, env_steps: int, evaluation: int) -> Path:
        if self.env is None:
            self.env = make_env(self.env_cfg, render_mode="rgb_array", training=False)
        seed = self.seed + evaluation  # the same run always films the same episodes
        rng = np.random.default_rng(seed)
        frames, episode_return = play_episode(self.env, policy, self.epsilon, rng, seed)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        path = self.out_dir / f"eval-{env_steps:09d}.gif"
        write_gif(frames, path, self.fps)
        self.log_video(path, env_steps, episode_return)
        return path

    def close(self) -> None:
        if self.env is not None:
            self.env.close()
