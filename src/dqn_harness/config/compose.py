"""Composing a config: ``conf/config.yaml`` + overrides -> one DictConfig, or one UsageError.

Hydra's own messages are correct but run to several lines and suggest ``+key=`` appends that the
schema would reject anyway; here every way composition can fail becomes one ``UsageError``
naming the key: an unknown group option, an unknown key (or one that moved, with its new name),
a value of the wrong type, and a choice outside the schema's allowed values. ``train.py``'s
preflight, every sweep trial and the benchmarks compose through :func:`compose_config`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hydra import compose, initialize_config_dir
from hydra.core.config_store import ConfigStore
from hydra.errors import ConfigCompositionException, MissingConfigException
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import ConfigAttributeError, ConfigKeyError, ValidationError

from dqn_harness.config.schema import MOVED_KEYS, Config, choices
from dqn_harness.errors import UsageError


def game_name(env_id: str) -> str:
    """``ALE/SpaceInvaders-v5`` -> ``spaceinvaders``: env=atari's default ``env.name``."""
    return env_id.split("/")[-1].split("-")[0].lower()


def register_configs() -> None:
    """Register the schema so ``conf/config.yaml`` can name it first in its defaults list, and
    the ``${game_name:...}`` resolver env=atari names its runs with."""
    ConfigStore.instance().store(name="config_schema", node=Config)
    if not OmegaConf.has_resolver("game_name"):
        OmegaConf.register_new_resolver("game_name", game_name)


SWEEP_PRESETS = Path("outputs") / "sweeps"  # sweep.py's default out: <study>/experiment/*.yaml


def with_sweep_presets(conf_dir: Path, overrides: list[str]) -> list[str]:
    """``+experiment=<study>_best`` also finds the preset a sweep keeps with its study
    (``outputs/sweeps/<study>/experiment/``), through Hydra's search path. A preset of the same
    name in ``experiments/`` (recorded in the repository) comes first."""
    if any(o.startswith("hydra.searchpath=") for o in overrides):
        return overrides
    names = [
        name
        for o in overrides
        if o.lstrip("+").startswith("experiment=")
        for name in o.split("=", 1)[1].split(",")
    ]
    dirs: list[Path] = []
    for name in names:
        if (conf_dir / "experiment" / f"{name}.yaml").exists():
            continue
        found = sorted(
            SWEEP_PRESETS.glob(f"*/experiment/{name}.yaml"), key=lambda p: p.stat().st_mtime
        )
        if found:
            dirs.append(found[-1].parent.parent.absolute())
    if not dirs:
        return overrides
    paths = ",".join(f"file://{d}" for d in dict.fromkeys(dirs))
    return [*overrides, f"hydra.searchpath=[{paths}]"]


def compose_config(conf_dir: Path, overrides: list[str]) -> DictConfig:
    """Compose ``conf/config.yaml`` with overrides; anything wrong raises one UsageError."""
    register_configs()
    overrides = with_sweep_presets(conf_dir, overrides)
    try:
        with initialize_config_dir(config_dir=str(conf_dir), version_base="1.3"):
            cfg = compose(config_name="config", overrides=overrides)
    except MissingConfigException as exc:
        first = str(exc).splitlines()[0].replace("In 'config': ", "")
        options = ", ".join(exc.options or [])
        key = first.split("'")[1].split("/")[0] if first.count("'") >= 2 else "config"
        raise UsageError(key, f"{first}; available: {options}" if options else first) from None
    except ConfigCompositionException as exc:
        raise composition_error(exc) from None
    check_choices(cfg)
    return cfg


def composition_error(exc: ConfigCompositionException) -> UsageError:
    """Hydra's composition failure as one line naming the key."""
    cause = exc.__cause__
    if isinstance(cause, (ConfigAttributeError, ConfigKeyError)):
        key = str(cause.full_key)
        if key in MOVED_KEYS:
            return moved_key_error(key)
        if key.startswith("env.kwargs."):  # a free-form dict: new entries need Hydra's `+`
            return UsageError(key, f"not set by this env preset; add it with +{key}=VALUE")
        return UsageError(key, f"unknown config key{known_keys(key)}")
    if isinstance(cause, ValidationError):
        return UsageError(str(cause.full_key), str(cause.msg).splitlines()[0])
    return UsageError("overrides", str(exc).splitlines()[0])


def moved_key_error(key: str) -> UsageError:
    new = MOVED_KEYS[key]
    return UsageError(key, f"this key is now {new} (set {new}=... instead)")


def check_choices(cfg: Any) -> None:
    """A choice outside the schema's allowed values, named with its key and the options."""
    for key, options in choices().items():
        value = OmegaConf.select(cfg, key)
        if value not in options:
            raise UsageError(key, f"'{value}' is not one of {', '.join(options)}")


def known_keys(full_key: str) -> str:
    """`` (known keys here: a, b)`` for the section an unknown key was looked up in."""
    node = OmegaConf.structured(Config)
    for part in full_key.split(".")[:-1]:
        node = node.get(part) if isinstance(node, DictConfig) else None
    if not isinstance(node, DictConfig):
        return ""
    return f" (known keys here: {', '.join(str(k) for k in node)})"
