"""Which W&B mode a run gets: decided before anything is built, so config validation can refuse
``logger.mode=online`` without an API key in one line instead of wandb's traceback mid-run."""

from __future__ import annotations

import netrc
import os
from typing import Any


def wandb_has_credentials() -> bool:
    """An API key in the environment or in ~/.netrc (what `wandb login` writes)."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    try:
        auth = netrc.netrc().authenticators("api.wandb.ai")
    except (OSError, netrc.NetrcParseError):
        return False
    return bool(auth and auth[2])


def wandb_mode(requested: str) -> str:
    if os.environ.get("WANDB_MODE") in ("online", "offline", "disabled"):
        return os.environ["WANDB_MODE"]
    if requested != "auto":
        return requested
    return "online" if wandb_has_credentials() else "offline"


def check_wandb_login(logger: Any) -> None:
    """``logger.mode=online`` without a key: one line now, not wandb's traceback mid-run."""
    from dqn_harness.errors import UsageError

    online = logger.name == "wandb" and wandb_mode(logger.mode) == "online"
    if online and not wandb_has_credentials():
        raise UsageError(
            "logger.mode",
            "online needs a W&B API key (`wandb login` or WANDB_API_KEY); "
            "logger.mode=offline writes the run under wandb/ to `wandb sync` later",
        )
