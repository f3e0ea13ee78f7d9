"""Evaluation on a separate env, its cadence, the solved rule, and best/last checkpoints.

Episodes are split evenly across the eval envs and each env runs until it has finished its own
share: taking the first N episodes to finish would favour short ones.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from gymnasium.vector import VectorEnv

from dqn_harness.envs.episodes import Episodes
from dqn_harness.policy import Policy, epsilon_greedy
from dqn_harness.schedules import Cadence

if TYPE_CHECKING:
    from dqn_harness.evaluation.video import VideoRecorder


def evaluate(
    env: VectorEnv,
    policy: Policy,
    episodes: int,
    epsilon: float,
    rng: np.random.Generator,
    seed: int | None = None,
    lengths: list[int] | None = None,
) -> list[float]:
    """Unclipped returns of ``episodes`` episodes played ε-greedily on ``env`` (their lengths
    in agent steps appended to ``lengths`` when given)."""
    n = env.num_envs
    quota = np.full(n, episodes // n)
    quota[: episodes % n] += 1
    n_actions = int(env.single_action_space.n)  # type: ignore[attr-defined]
    obs, _ = env.reset(seed=seed)
    returns: list[float] = []
    finished = np.zeros(n, dtype=int)
    book = Episodes(n)
    while (finished < quota).any():
        actions = epsilon_greedy(policy, obs, epsilon, n_actions, rng)
        obs, rewards, terminated, truncated, _ = env.step(actions)
        for e, episode_return, length in book.step(rewards, terminated, truncated)[1]:
            if finished[e] < quota[e]:
                returns.append(episode_return)
                if lengths is not None:
                    lengths.append(length)
                finished[e] += 1
    return returns


class Evaluator:
    """Evaluates every ``eval.every`` agent steps, keeps best/last checkpoints, decides solved.

    Args:
        env: the evaluation vector env (never the training one: its episodes must not be cut).
        every: agent steps between evaluations.
        episodes: episodes per evaluation, split evenly across ``env``'s envs.
        epsilon: exploration during evaluation (0.05 is the Atari convention).
        stop_on_solve: ask training to end once the mean reaches ``threshold``.
        threshold: mean return that counts as solved (``None``: never solved).
        ckpt_dir: where ``best.pt`` and ``last.pt`` go.
        seed: seeds the first evaluation's reset and the exploration stream.
        log: called with (metrics, agent step) after each evaluation.
        on_result: a sweep's pruning hook, called with (agent step, mean); True stops the run.
        video: films an episode every K evaluations (``eval.video``).
    """

    def __init__(
        self,
        *,
        env: VectorEnv,
        every: int,
        episodes: int,
        epsilon: float,
        stop_on_solve: bool,
        threshold: float | None,
        ckpt_dir: Path,
        seed: int,
        log: Callable[[dict[str, float], int], None],
        on_result: Callable[[int, float], bool] | None = None,
        video: VideoRecorder | None = None,
    ) -> None:
        self.env = env
        self.video = video
        self.episodes = episodes
        self.epsilon = epsilon
        self.stop_on_solve = stop_on_solve
        self.threshold = threshold
        self.log = log
        self.on_result = on_result
        self.pruned = False
        self.ckpt_dir = ckpt_dir
        self.ckpt_dir.mkdir(parents=True, exist_ok=True)
        self.rng = np.random.default_rng(seed)
        self.seed: int | None = seed  # first evaluation seeds the env; later ones continue its RNG
        self.cadence = Cadence(every)
        self.last_step = -1
        self.count = 0
        self.last_mean: float | None = None
        self.best_mean: float | None = None
        self.solved_at: int | None = None
        self.best_path: Path | None = None
        self.last_path: Path | None = None

    @property
    def solved(self) -> bool:
        return self.solved_at is not None

    def due(self, env_steps: int) -> bool:
        """True once per ``eval.every`` period; the caller then runs the evaluation."""
        return self.cadence.due(env_steps)

    def run(self, env_steps: int, policy: Policy, checkpoint: Callable[[Path], None]) -> float:
        returns = evaluate(self.env, policy, self.episodes, self.epsilon, self.rng, self.seed)
        self.seed = None
        self.count += 1
        self.last_step = env_steps
        mean = float(np.mean(returns))
        self.last_mean = mean
        self.log(
            {
                "eval/return_mean": mean,
                "eval/return_std": float(np.std(returns)),
                "eval/episodes": float(len(returns)),
            },
            env_steps,
        )
        if self.video is not None and self.video.due(self.count):
            self.video.record(policy, env_steps, self.count)
        self.last_path = self.ckpt_dir / "last.pt"
        checkpoint(self.last_path)
        if self.best_mean is None or mean > self.best_mean:
            self.best_mean = mean
            self.best_path = self.ckpt_dir / "best.pt"
            checkpoint(self.best_path)
        if self.threshold is not None and mean >= self.threshold and self.solved_at is None:
            self.solved_at = env_steps
        if self.on_result is not None and self.on_result(env_steps, mean):
            self.pruned = True
        return mean

    def finish(
        self, env_steps: int, policy: Policy, checkpoint: Callable[[Path], None], interrupted: bool
    ) -> None:
        """Evaluate the final policy unless that was just done (or the run was cut short)."""
        if not interrupted and not self.pruned and self.last_step != env_steps:
            self.run(env_steps, policy, checkpoint)
        checkpoint(self.ckpt_dir / "last.pt")

    def close(self) -> None:
        self.env.close()
        if self.video is not None:
            self.video.close()

    def state_dict(self) -> dict[str, Any]:
        return {
            "count": self.count,
            "last_step": self.last_step,
            "last_mean": self.last_mean,
            "best_mean": self.best_mean,
            "solved_at": self.solved_at,
            "best_path": None if self.best_path is None else str(self.best_path),
            "last_path": None if self.last_path is None else str(self.last_path),
            "rng": self.rng.bit_generator.state,
            "seed": self.seed,
            "cadence": self.cadence.state_dict(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.count, self.last_step = state["count"], state["last_step"]
        self.last_mean, self.best_mean = state["last_mean"], state["best_mean"]
        self.solved_at = state["solved_at"]
        self.best_path = None if state["best_path"] is None else Path(state["best_path"])
        self.last_path = None if state["last_path"] is None else Path(state["last_path"])
        self.rng.bit_generator.state = state["rng"]
        self.seed = state["seed"]
        self.cadence.load_state_dict(state["cadence"])

    @property
    def should_stop(self) -> bool:
        return self.pruned or (self.stop_on_solve and self.solved)

    def summary(self) -> dict[str, Any]:
        best = self.best_path or self.last_path
        return {
            "eval_return_mean": self.last_mean,
            "best_eval_return": self.best_mean,
            "solved": self.solved,
            "solved_at_step": self.solved_at,
            "reward_threshold": self.threshold,
            "evaluations": self.count,
            "checkpoint": None if best is None else str(best),
        }
