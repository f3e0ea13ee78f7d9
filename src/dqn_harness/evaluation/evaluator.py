"""Training's periodic evaluation: play the current policy on a separate env, log the result.

What the result means for the run (best/last checkpoints, solved, pruned) is decided elsewhere
(``run/decisions.py``), and when an evaluation is due is the run's cadence (``run/cadences.py``):
this class only evaluates, films every K-th evaluation, and keeps the state a resume needs.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from gymnasium.vector import VectorEnv

from dqn_harness.envs import make_vec_env, max_return, reward_threshold
from dqn_harness.evaluation.play import evaluate
from dqn_harness.policy import Policy

if TYPE_CHECKING:
    from dqn_harness.evaluation.video import VideoRecorder


class Evaluator:
    """Plays ``episodes`` episodes at a fixed ``epsilon`` whenever it is asked to.

    Args:
        env: the evaluation vector env (never the training one: its episodes must not be cut).
        episodes: episodes per evaluation, split evenly across ``env``'s envs.
        epsilon: exploration during evaluation, a fixed rate (the Atari protocol's 0.01).
        seed: seeds the first evaluation's reset and the exploration stream.
        log: called with (metrics, agent step) after each evaluation.
        video: films an episode every K evaluations (``eval.video``).
        stop_short: ``(min_episodes, threshold, max_return)``: games are played
            ``min_episodes`` at a time, and after each lot the evaluation stops when even
            ``max_return`` in every game left could not lift the mean to ``threshold``. Such an
            evaluation could not have solved, so the decision is the same as with every game
            played; ``None``: every evaluation plays all ``episodes`` at once.
        robust: ``(threshold, epsilon, games)``: an evaluation whose mean reaches ``threshold``
            (the solve threshold) plays ``games`` more games at ``epsilon`` (``eval/robust_*``),
            which ``Decisions`` reads to tell a policy from one narrow line of play.
    """

    def __init__(
        self,
        *,
        env: VectorEnv,
        episodes: int,
        epsilon: float,
        seed: int,
        log: Callable[[dict[str, float], int], None],
        video: VideoRecorder | None = None,
        stop_short: tuple[int, float, float] | None = None,
        robust: tuple[float, float, int] | None = None,
    ) -> None:
        self.env = env
        self.episodes = episodes
        self.stop_short = stop_short
        self.robust = robust
        self.last_robust: float | None = None  # the last evaluation's robust mean, if it played
        self.epsilon = epsilon
        self.log = log
        self.video = video
        self.rng = np.random.default_rng(seed)
        self.base_seed = seed
        self.seed: int | None = seed  # first evaluation seeds the env; later ones continue its RNG
        self.count = 0
        self.last_step = -1  # agent step of the last evaluation
        self.last_mean: float | None = None
        self.last_wall_s = 0.0  # seconds the last evaluation took, games and video

    def run(self, env_steps: int, policy: Policy) -> float:
        """Evaluate ``policy`` as of agent step ``env_steps``; returns the mean return."""
        start, lengths, returns = time.perf_counter(), list[int](), list[float]()
        lot = self.episodes if self.stop_short is None else self.stop_short[0]
        while len(returns) < self.episodes:
            # each lot is new games: the env is reset, its RNG continued (the first lot of the
            # first evaluation seeds it). A lot of one game per eval env gives every env an
            # equal share: no lot waits on one env's extra game.
            games = min(lot, self.episodes - len(returns))
            returns += evaluate(self.env, policy, games, self.epsilon, self.rng, self.seed, lengths)
            self.seed = None
            if len(returns) < self.episodes and self.hopeless(returns):
                break
        self.count += 1
        self.last_step = env_steps
        mean = float(np.mean(returns))
        self.last_mean = mean
        record = {
            "eval/return_mean": mean,
            "eval/return_std": float(np.std(returns)),
            "eval/episodes": float(len(returns)),
            # what an evaluation costs: Atari games at epsilon 0.01 grow long as play
            # improves (a close Pong game lasts several times a 21-0 loss), and so does
            # the evaluation
            "eval/length_mean": float(np.mean(lengths)),
            **self.robust_games(policy, mean),
        }
        if self.video is not None and self.video.due(self.count):
            filmed = time.perf_counter()
            self.video.record(policy, env_steps, self.count)
            record["eval/video_s"] = time.perf_counter() - filmed
        # one clock for the whole evaluation, filmed episode included: the progress bar's
        # "time left" and the training clock it keeps apart read this same figure
        self.last_wall_s = record["eval/wall_s"] = time.perf_counter() - start
        self.log(record, env_steps)
        return mean

    def robust_games(self, policy: Policy, mean: float) -> dict[str, float]:
        """The games at the robust epsilon, when this evaluation reached the threshold: new
        games with the env's and the exploration's RNGs continued, as after a short stop."""
        self.last_robust = None
        if self.robust is None or mean < self.robust[0]:
            return {}
        _, epsilon, games = self.robust
        returns = evaluate(self.env, policy, games, epsilon, self.rng, None, [])
        self.last_robust = float(np.mean(returns))
        return {
            "eval/robust_return_mean": self.last_robust,
            "eval/robust_return_std": float(np.std(returns)),
            "eval/robust_episodes": float(len(returns)),
        }

    def hopeless(self, returns: list[float]) -> bool:
        """Whether the games left, all at the best score, could not bring the mean up to the
        threshold: the evaluation then stops, since it cannot decide solved."""
        assert self.stop_short is not None
        _, threshold, best = self.stop_short
        return sum(returns) + (self.episodes - len(returns)) * best < threshold * self.episodes

    def close(self) -> None:
        self.env.close()
        if self.video is not None:
            self.video.close()

    def state_dict(self) -> dict[str, Any]:
        return {
            "count": self.count,
            "last_step": self.last_step,
            "last_mean": self.last_mean,
            "rng": self.rng.bit_generator.state,
            "seed": self.seed,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue a checkpointed run's evaluations. The env's emulators are not saved, and a
        new env reset without a seed draws one from the OS: two resumes of one checkpoint would
        then judge the same policy on different games (a different solve, a different drop of
        the learning rate). So once evaluations have run, the resumed run's first one seeds the
        new env from the run's seed and the evaluations already played."""
        self.count, self.last_step = state["count"], state["last_step"]
        self.last_mean = state["last_mean"]
        self.rng.bit_generator.state = state["rng"]
        self.seed = state["seed"]
        if self.seed is None:
            drawn = np.random.SeedSequence([self.base_seed, self.count]).generate_state(1)[0]
            self.seed = int(drawn) % 2**31


# Offsets of the evaluation and video seeds from the run's: no training episode is replayed.
EVAL_SEED, VIDEO_SEED = 10_000, 20_000


def training_evaluator(
    cfg: Any,
    run_dir: Path,
    log: Callable[[dict[str, float], int], None],
    log_video: Callable[[Path, int, float], None],
) -> Evaluator:
    """The evaluator a training run's config asks for: ``eval.*`` on its own env (whole games,
    seeded apart from training), filming into ``<run dir>/videos`` when ``eval.video``."""
    from dqn_harness.evaluation.video import VideoRecorder  # PIL only when filming

    video = None
    if cfg.eval.video:
        video = VideoRecorder(
            env_cfg=cfg.env,
            out_dir=run_dir / "videos",
            every=cfg.eval.video_every,
            epsilon=cfg.eval.epsilon,
            seed=cfg.seed + VIDEO_SEED,
            log_video=log_video,
        )
    return Evaluator(
        # no more envs than episodes: an env without an episode to play would idle
        env=make_vec_env(cfg.env, min(cfg.eval.num_envs, cfg.eval.episodes), training=False),
        episodes=cfg.eval.episodes,
        epsilon=cfg.eval.epsilon,
        seed=cfg.seed + EVAL_SEED,
        log=log,
        video=video,
        stop_short=stop_short(cfg),
        robust=robust_check(cfg),
    )


def stop_short(cfg: Any) -> tuple[int, float, float] | None:
    """``eval.min_episodes`` with the solve threshold and the game's best score, when all three
    are known and fewer games than the evaluation's: what lets an evaluation that cannot solve
    stop short, looking after every ``min_episodes`` games (``Evaluator``). An evaluation of
    no more games than min_episodes plays them all."""
    threshold, best, first = reward_threshold(cfg.env), max_return(cfg.env), cfg.eval.min_episodes
    if first is None or first >= cfg.eval.episodes or threshold is None or best is None:
        return None
    return first, threshold, best


def robust_check(cfg: Any) -> tuple[float, float, int] | None:
    """``(solve threshold, eval.robust_epsilon, games)`` for the evaluator, when the config asks
    for a robust solve (validation has made sure the env has a threshold). The games are
    ``eval.robust_episodes``, or as many as an evaluation's when unset: more games make a pass
    depend less on luck (the standard error falls as one over their square root)."""
    threshold = reward_threshold(cfg.env)
    if cfg.eval.robust_epsilon is None or threshold is None:
        return None
    games = cfg.eval.robust_episodes or cfg.eval.episodes
    return threshold, float(cfg.eval.robust_epsilon), int(games)
