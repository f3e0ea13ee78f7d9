"""An evaluation steps only the envs that still have games to play, and plays the same games.

The reference below is the rule as it was: every env stepped until every env has finished its
share, the surplus games thrown away. On real CartPole and Pong envs, the new rule returns the
same returns and lengths in the same order, on fewer emulator steps when the shares are uneven.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch

from dqn_harness.envs import make_vec_env, single_observation_space
from dqn_harness.envs.episodes import Episodes
from dqn_harness.evaluation.play import evaluate
from dqn_harness.nets import build_q_net
from dqn_harness.policy import epsilon_greedy
from tests.conftest import compose_cfg


class Counting(gym.Wrapper):
    """A real env that counts the steps taken on it."""

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        self.steps = 0

    def step(self, action):
        self.steps += 1
        return self.env.step(action)


def every_env_stepped(env, policy, episodes, epsilon, rng, seed):
    """The reference: the vector env's own step, every env, every time."""
    n = env.num_envs
    quota = np.full(n, episodes // n)
    quota[: episodes % n] += 1
    obs, _ = env.reset(seed=seed)
    returns, lengths, finished, book = [], [], np.zeros(n, dtype=int), Episodes(n)
    while (finished < quota).any():
        actions = epsilon_greedy(policy, obs, epsilon, int(env.single_action_space.n), rng)
        obs, rewards, terminated, truncated, _ = env.step(actions)
        for e, episode_return, length in book.step(rewards, terminated, truncated)[1]:
            if finished[e] < quota[e]:
                returns.append(episode_return)
                lengths.append(length)
                finished[e] += 1
    return returns, lengths


def both_ways(cfg, policy, episodes: int, epsilon: float):
    out = []
    for rule in ("reference", "active only"):
        env = make_vec_env(cfg.env, 4, training=False)
        env.envs = [Counting(e) for e in env.envs]
        rng = np.random.default_rng(7)
        if rule == "reference":
            returns, lengths = every_env_stepped(env, policy, episodes, epsilon, rng, 123)
        else:
            lengths = []
            returns = evaluate(env, policy, episodes, epsilon, rng, 123, lengths)
        out.append((returns, lengths, sum(e.steps for e in env.envs)))
        env.close()
    return out


def leans(obs: np.ndarray) -> np.ndarray:
    """CartPole: push the way the pole leans (long, varied episodes)."""
    return (obs[:, 2] > 0).astype(np.int64)


def test_cartpole_games_are_the_same_on_fewer_steps():
    (ref, ref_len, ref_steps), (new, new_len, new_steps) = both_ways(
        compose_cfg("env=cartpole"), leans, episodes=10, epsilon=0.2
    )
    assert len(new) == 10 and new == ref and new_len == ref_len
    assert len(set(new)) > 3  # the games differ, so a shifted stream would show
    assert new_steps == sum(new_len)  # nothing but the games that count
    assert ref_steps > new_steps


@pytest.mark.parametrize("episodes", [6, 8])
def test_pong_games_are_the_same_with_a_network_policy(episodes):
    cfg = compose_cfg("env=pong")
    torch.manual_seed(0)
    obs_space = single_observation_space(cfg.env)
    net = build_q_net(cfg.model, obs_space, 6, cfg.trainer.channels_last).eval()

    @torch.no_grad()
    def greedy(obs: np.ndarray) -> np.ndarray:
        return net(torch.as_tensor(obs)).argmax(1).numpy()

    (ref, ref_len, ref_steps), (new, new_len, new_steps) = both_ways(cfg, greedy, episodes, 0.3)
    assert new == ref and new_len == ref_len and len(new) == episodes
    # the reset step after each game is a step of no agent step; nothing else is extra
    assert new_steps == sum(new_len)
    if episodes % 4:
        assert ref_steps > new_steps
    else:
        assert ref_steps >= new_steps
