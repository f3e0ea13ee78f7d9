"""A user's own Q-network, plugged in with ``model._target_=tests.custom_net.TinyQ``."""

from __future__ import annotations

from torch import nn


class TinyQ(nn.Module):
    def __init__(self, obs_space, n_actions: int, hidden: list[int], dueling: bool) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Linear(obs_space.shape[0], 8), nn.Tanh())
        self.q = nn.Linear(8, n_actions)

    def forward(self, obs):
        return self.q(self.body(obs.float()))
