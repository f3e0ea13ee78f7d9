"""DrQ's random shift (Kostrikov, Yarats and Fergus 2020; Dopamine's ``labs/atari_100k``):
pad each 84x84 frame by 4 pixels, repeating its edge, and crop a random 84x84 window, per
sample, at sampling time. ``algo.augment=shift`` turns it on; ``none`` (the default) leaves
every batch exactly as replay returned it.

It works on the uint8 stacks as they come from replay, on whatever device the update runs on:
the crop is two ``gather``s with clamped indices (edge padding without ever building the padded
frame or leaving uint8). All frames of one observation get the same shift, so the stack still
shows motion, not jitter; ``obs`` and ``next_obs`` get independent shifts, as in DrQ, so the
TD target does not see the same crop as the Q-value it trains.
"""

from __future__ import annotations

from typing import Any

import torch


def random_shift(frames: torch.Tensor, shifts: torch.Tensor, pad: int) -> torch.Tensor:
    """``frames`` (B, C, H, W) moved by ``shifts`` (B, 2: rows, cols, each in [0, 2 pad]),
    edge-replicated: output[b, :, i, j] = frames[b, :, clamp(i + dy - pad), clamp(j + dx - pad)].
    """
    b, c, h, w = frames.shape
    device = frames.device
    rows = (torch.arange(h, device=device)[None, :] + shifts[:, :1] - pad).clamp_(0, h - 1)
    cols = (torch.arange(w, device=device)[None, :] + shifts[:, 1:] - pad).clamp_(0, w - 1)
    moved = frames.gather(2, rows[:, None, :, None].expand(b, c, h, w))
    return moved.gather(3, cols[:, None, None, :].expand(b, c, h, w))


class RandomShift:
    """Shifts ``obs`` and ``next_obs`` of each batch independently, from its own seeded stream
    (saved with the run, so a resumed run draws the shifts it would have drawn).

    Args:
        pad: the largest shift in pixels (DrQ's 4 for 84x84 frames).
        seed: seeds the shift stream.
    """

    def __init__(self, pad: int = 4, seed: int = 0) -> None:
        self.pad = pad
        self.generator = torch.Generator().manual_seed(seed)  # on the host: any device's batch

    def shifts(self, batch_size: int, device: torch.device) -> torch.Tensor:
        drawn = torch.randint(0, 2 * self.pad + 1, (batch_size, 2), generator=self.generator)
        return drawn.to(device, non_blocking=True)

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        out = dict(batch)
        for key in ("obs", "next_obs"):
            frames = batch[key]
            out[key] = random_shift(frames, self.shifts(len(frames), frames.device), self.pad)
        return out

    def state_dict(self) -> dict[str, Any]:
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.generator.set_state(state["generator"])
