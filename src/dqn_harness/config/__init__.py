"""The config: its schema (``schema.py``), how it is composed (``compose.py``) and checked
(``checks.py``)."""

from dqn_harness.config.checks import validate
from dqn_harness.config.compose import compose_config, register_configs, with_sweep_presets
from dqn_harness.config.schema import Config, EnvConfig

__all__ = [
    "Config",
    "EnvConfig",
    "compose_config",
    "register_configs",
    "validate",
    "with_sweep_presets",
]
