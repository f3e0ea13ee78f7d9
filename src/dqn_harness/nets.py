"""Q-networks. Observations arrive as stored (uint8 frames, int states); scaling happens here."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from dqn_harness.errors import UsageError

# Convolutions of the shipped CNNs as (out channels, kernel, stride), over 84x84 frames.
NATURE_CONVS = ((32, 8, 4), (64, 4, 2), (64, 3, 1))  # Mnih et al. 2015 (Nature): 7x7x64 out
NIPS_CONVS = ((16, 8, 4), (32, 4, 2))  # Mnih et al. 2013 (NIPS workshop): 9x9x32, ~1/3 the MACs
CONVS = {"nature_cnn": NATURE_CONVS, "nips_cnn": NIPS_CONVS}


class NatureCNN(nn.Module):
    """Mnih et al. 2015: 3 conv + 2 dense layers over a (stack, 84, 84) uint8 observation.

    ``convs=NIPS_CONVS`` (``model=nips_cnn``) is the 2013 paper's smaller trunk, two
    convolutions and 256 dense units: the same input path, about a third of the work.
    """

    def __init__(
        self,
        in_channels: int,
        n_actions: int,
        hidden: Sequence[int] = (512,),
        channels_last: bool = False,
        dueling: bool = False,
        convs: Sequence[tuple[int, int, int]] = NATURE_CONVS,
    ) -> None:
        super().__init__()
        # NHWC lets oneDNN pick its fast convolution kernels on CPU instead of reordering the
        # activations on every call; the maths and the state_dict are the same either way.
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        layers: list[nn.Module] = []
        channels, size = in_channels, 84
        for out, kernel, stride in convs:
            layers += [nn.Conv2d(channels, out, kernel, stride=stride), nn.ReLU()]
            channels, size = out, (size - kernel) // stride + 1
        self.trunk = nn.Sequential(*layers, nn.Flatten())
        self.head = q_head(channels * size * size, hidden, n_actions, dueling)
        self.to(memory_format=self.memory_format)  # type: ignore[call-overload]

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        first: nn.Conv2d = self.trunk[0]  # type: ignore[assignment]
        half = half_precision(obs.device.type, first.weight.dtype)
        if half is None:  # fp32: the same values as (obs.float() / 255), bit for bit
            # a copy that is always new (never the caller's tensor, even a float one), divided
            # in place: one fp32 batch buffer instead of two (0.3 ms less per batch of 32)
            x = obs.to(torch.float32, copy=True).div_(255.0)
            return self.head(self.trunk(x.contiguous(memory_format=self.memory_format)))
        # bf16/fp16: 0..255 are exact in both, so the frames go uint8 -> half, and the 1/255
        # scales the first layer's 8k weights instead of the 900k-element batch. Same function
        # (conv(x/255, W) = conv(x, W/255)); it removes the fp32 frame tensor and its division.
        # The cast and the NCHW -> NHWC transpose are two copies, not one: a cast that also
        # transposes runs as a slow strided loop (1.47 ms against 0.14 + 0.61 ms for a batch
        # of 32 on a 2-core AMX Xeon, 2026-12-02), while a contiguous cast vectorises and the
        # transpose then moves 16-bit values.
        x = obs.to(dtype=half).contiguous(memory_format=self.memory_format)
        x = F.conv2d(x, first.weight * (1.0 / 255.0), first.bias, first.stride)
        return self.head(self.trunk[1:](x))


def half_precision(device_type: str, param_dtype: torch.dtype) -> torch.dtype | None:
    """The 16-bit float a forward computes in: its weights' dtype (a bf16 copy of the target
    net), or autocast's (``trainer.precision=bf16-mixed``); ``None`` for fp32."""
    if param_dtype in (torch.bfloat16, torch.float16):
        return param_dtype
    if device_type in ("cpu", "cuda") and torch.is_autocast_enabled(device_type):
        dtype = torch.get_autocast_dtype(device_type)
        return dtype if dtype in (torch.bfloat16, torch.float16) else None
    return None


class MLP(nn.Module):
    """For vector observations; discrete observations (FrozenLake) are one-hot encoded."""

    def __init__(
        self, obs_space: gym.Space, n_actions: int, hidden: Sequence[int], dueling: bool = False
    ) -> None:
        super().__init__()
        self.n_states = int(obs_space.n) if isinstance(obs_space, gym.spaces.Discrete) else None
        in_dim = self.n_states or int(np.prod(obs_space.shape))  # type: ignore[arg-type]
        self.net = q_head(in_dim, hidden, n_actions, dueling)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        if self.n_states is not None:
            x = nn.functional.one_hot(obs.long(), self.n_states).float()
        else:
            x = obs.float().flatten(1)
        return self.net(x)


def mlp(in_dim: int, hidden: Sequence[int], out_dim: int) -> nn.Sequential:
    layers: list[nn.Module] = []
    for width in hidden:
        layers += [nn.Linear(in_dim, width), nn.ReLU()]
        in_dim = width
    layers.append(nn.Linear(in_dim, out_dim))
    return nn.Sequential(*layers)


class DuelingHead(nn.Module):
    """Q = V + A - mean(A) (Wang et al. 2016).

    V and A are only defined up to a constant shared between them; subtracting the mean
    advantage pins that constant, so V estimates the state value and the greedy action is
    unchanged (argmax A = argmax Q).
    """

    def __init__(self, in_dim: int, width: int, n_actions: int) -> None:
        super().__init__()
        self.value = mlp(in_dim, [width], 1)
        self.advantage = mlp(in_dim, [width], n_actions)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        advantage = self.advantage(x)
        return self.value(x) + advantage - advantage.mean(dim=1, keepdim=True)


def q_head(in_dim: int, hidden: Sequence[int], n_actions: int, dueling: bool) -> nn.Sequential:
    """Dense layers to Q-values; dueling: all widths but the last shared, each stream the last."""
    if not dueling:
        return mlp(in_dim, hidden, n_actions)
    shared: list[nn.Module] = []
    for width in hidden[:-1]:
        shared += [nn.Linear(in_dim, width), nn.ReLU()]
        in_dim = width
    return nn.Sequential(*shared, DuelingHead(in_dim, hidden[-1], n_actions))


def network_class(target: str) -> type[nn.Module]:
    """The class ``model._target_`` names, or a UsageError saying why it cannot be used."""
    from hydra.utils import get_class

    try:
        cls = get_class(target)
    except Exception as exc:  # noqa: BLE001 (ImportError, AttributeError, ValueError, ...)
        reason = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
        raise UsageError("model._target_", f"cannot import '{target}' ({reason})") from None
    if not (isinstance(cls, type) and issubclass(cls, nn.Module)):
        raise UsageError("model._target_", f"'{target}' is not a torch.nn.Module class")
    return cls


def build_q_net(
    model: Any, obs_space: gym.Space, n_actions: int, channels_last: bool = False
) -> nn.Module:
    """The Q-network ``model.*`` describes: a shipped one by ``model.name``, or
    ``model._target_``. The one call shape, for training and for ``evaluate.py``.

    A user's class plugs in without editing the package: it gets the observation space (its
    observations arrive as stored, uint8 frames included, so it scales them itself), the
    number of actions and the ``hidden``/``dueling`` settings, and returns Q-values (B, A).
    ``channels_last`` is ``trainer.channels_last`` (how the CPU is fed, not what is learned).
    """
    hidden, dueling = list(model.hidden), bool(model.dueling)
    if model._target_ is not None:
        cls = network_class(model._target_)
        return cls(obs_space=obs_space, n_actions=n_actions, hidden=hidden, dueling=dueling)
    if model.name in CONVS:
        in_channels = obs_space.shape[0]  # type: ignore[index]
        return NatureCNN(in_channels, n_actions, hidden, channels_last, dueling, CONVS[model.name])
    return MLP(obs_space, n_actions, hidden, dueling)
