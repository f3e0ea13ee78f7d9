"""Config schemas, composition and validation.

The dataclasses are registered in Hydra's ConfigStore as the base of ``conf/config.yaml``, so an
unknown key or a value of the wrong type is rejected by Hydra while composing, before anything
runs. Range checks that types cannot express live in :func:`validate`, which raises
:class:`ConfigError` with the offending key so the CLI can print one line and exit 2.
:func:`compose_config` is the one way a library caller (a sweep trial, a test) builds a config.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from gymnasium.spaces import Discrete
from hydra import compose, initialize_config_dir
from hydra.core.config_store import ConfigStore
from hydra.errors import ConfigCompositionException, MissingConfigException
from omegaconf import MISSING, DictConfig, OmegaConf
from omegaconf.errors import ConfigAttributeError, ConfigKeyError, ValidationError

from dqn_harness.errors import ConfigError


@dataclass
class EnvConfig:
    name: str = MISSING  # short name used in run names and W&B groups
    id: str = MISSING  # gymnasium id, e.g. ALE/Pong-v5 or CartPole-v1
    backend: str = "gymnasium"  # gymnasium | ale_vector (Atari only, C++ threads)
    num_envs: int = 1  # parallel envs stepped together; each step is num_envs agent steps
    frame: str = "full"  # Atari: full (whole screen to 84x84) | seed_crop (84x110, rows 18-101)
    frame_skip: int = 4  # Atari: emulator frames per agent step (max-pooled over the last two)
    frame_stack: int = 4  # Atari: frames per observation, channels first
    noop_max: int = 30  # Atari: random no-ops after reset
    fire_reset: bool = True  # Atari: press FIRE after reset in games that need it
    repeat_action_probability: float = 0.0  # Atari sticky actions (0 = classic DQN setting)
    max_episode_steps: int | None = None  # cap on agent steps per episode (None = env default)
    reward_threshold: float | None = None  # return that counts as solved (None = env spec's)
    kwargs: dict[str, Any] = field(default_factory=dict)  # extra gym.make arguments


@dataclass
class AlgoConfig:
    name: str = "dqn"  # dqn | tabular
    gamma: float = 0.99  # discount
    alpha: float = 0.1  # tabular: TD step size
    explore: str = "epsilon"  # tabular: epsilon (follow the schedule) | random (the seed's way)
    loss: str = "huber"  # dqn: huber | mse
    reward_clip: bool = False  # dqn: train on sign(r); logged returns stay unclipped
    max_grad_norm: float | None = 10.0  # dqn: clip gradient norm (None = off)
    double: bool = False  # dqn: Double DQN (online net picks the next action, target net values it)
    n_step: int = 1  # dqn: n-step returns (windows stop at episode ends; bootstrap with gamma^m)


@dataclass
class ModelConfig:
    name: str = "nature_cnn"  # nature_cnn | mlp
    hidden: list[int] = field(default_factory=lambda: [512])  # dense widths after the trunk
    dueling: bool = False  # value + advantage streams (model=dueling_cnn / dueling_mlp)
    # your own network class, e.g. my_pkg.nets.MyNet, built as
    # cls(obs_space=..., n_actions=..., hidden=..., dueling=...) instead of `name`'s
    _target_: str | None = None


@dataclass
class OptimConfig:
    lr: float = 1e-4  # Adam learning rate
    eps: float = 1.5e-4  # Adam epsilon
    fused: bool = True  # one fused Adam kernel (CPU step 0.5 ms vs 2 ms for the per-tensor loop)


@dataclass
class EpsilonConfig:
    kind: str = "linear"  # linear | exponential
    start: float = 1.0
    end: float = 0.01
    steps: int = 100_000  # agent steps from start to end (exponential: to within 1% of end)


@dataclass
class ScheduleConfig:
    name: str = "atari"
    epsilon: EpsilonConfig = field(default_factory=EpsilonConfig)
    target_sync: int = 1000  # agent steps between hard copies of the online net into the target


@dataclass
class BufferConfig:
    capacity: int = 100_000  # transitions kept (frames are stored once each)
    sampler: str = "uniform"  # uniform | prioritized (sum-tree sampler over the same storage)
    alpha: float = 0.6  # prioritized: how strongly priorities skew sampling (0 = uniform)
    beta: float = 0.4  # prioritized: importance-sampling exponent at the start, annealed to 1
    beta_steps: int | None = None  # prioritized: agent steps to reach beta 1 (None = total_steps)
    eps: float = 1.0e-6  # prioritized: added to |TD error| so no transition gets priority 0


@dataclass
class LoggerConfig:
    name: str = "wandb"  # wandb | tensorboard | csv | none
    project: str = "dqn-harness"
    entity: str | None = None
    mode: str = "auto"  # wandb: auto (online when an API key is configured) | online | offline
    group: str | None = None  # defaults to the env name
    tags: list[str] = field(default_factory=list)
    job_type: str = "train"  # wandb: train | trial (set by sweeps) | eval
    save_dir: str = "."  # wandb/ goes under here (tensorboard and csv logs go in the run dir)
    every: int = 1000  # agent steps between scalar logs (epsilon, loss, q, sps)


@dataclass
class TrainerConfig:
    accelerator: str = "cpu"  # cpu | gpu (one CUDA device)
    devices: int = 1  # one device: the replay and the envs live in the training process
    # 32-true | bf16-mixed (bf16 matrix work under autocast; fp32 weights, TD target and loss;
    # on a CPU without native bf16 it falls back to 32-true with a warning)
    precision: str = "32-true"
    channels_last: bool = False  # NHWC convolutions (oneDNN on CPU: ~13% faster Nature-CNN updates)
    threads: int | None = None  # torch CPU threads (None: 1 for mlp/tabular, torch's default else)


@dataclass
class EvalConfig:
    every: int = 50_000  # agent steps between evaluations
    episodes: int = 10
    epsilon: float = 0.05
    num_envs: int = 1  # eval envs stepped together (episodes are split evenly between them)
    stop_on_solve: bool = True  # end training once the eval mean reaches the reward threshold
    video: bool = False  # film one episode (GIF in <run dir>/videos, W&B key eval/video)
    video_every: int = 5  # evaluations between videos (the first evaluation is always filmed)


@dataclass
class CheckpointConfig:
    every: int = 50_000  # agent steps between resumable checkpoints (also written on exit)
    buffer: bool = True  # include the replay buffer (false: a resumed run refills it first)


@dataclass
class Config:
    env: EnvConfig = field(default_factory=EnvConfig)
    algo: AlgoConfig = field(default_factory=AlgoConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    buffer: BufferConfig = field(default_factory=BufferConfig)
    logger: LoggerConfig = field(default_factory=LoggerConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig)
    resume: str | None = None  # a run dir to continue from its checkpoint, or auto (README)
    seed: int = 0
    total_steps: int = 1_000_000  # agent env steps (an Atari agent step is frame_skip frames)
    batch_size: int = 32
    learning_starts: int = 10_000  # agent steps of pure collection before the first update
    train_freq: int = 4  # agent steps per gradient step
    run_name: str = MISSING  # {env}-{algo}-s{seed}-{timestamp}
    progress: bool = True  # progress bar on stderr


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
    """Compose ``conf/config.yaml`` with overrides; a bad override raises one-line ConfigError.

    Hydra's own messages are correct but run to several lines and suggest ``+key=`` appends that
    our schema would reject anyway. ``train.py``'s preflight and every sweep trial compose here.
    """
    register_configs()
    overrides = with_sweep_presets(conf_dir, overrides)
    try:
        with initialize_config_dir(config_dir=str(conf_dir), version_base="1.3"):
            return compose(config_name="config", overrides=overrides)
    except MissingConfigException as exc:
        first = str(exc).splitlines()[0].replace("In 'config': ", "")
        options = ", ".join(exc.options or [])
        key = first.split("'")[1].split("/")[0] if first.count("'") >= 2 else "config"
        raise ConfigError(key, f"{first}; available: {options}" if options else first) from None
    except ConfigCompositionException as exc:
        cause = exc.__cause__
        if isinstance(cause, (ConfigAttributeError, ConfigKeyError)):
            key = str(cause.full_key)
            raise ConfigError(key, f"unknown config key{_known_keys(key)}") from None
        if isinstance(cause, ValidationError):
            key = str(cause.full_key)
            raise ConfigError(key, str(cause.msg).splitlines()[0]) from None
        raise ConfigError("overrides", str(exc).splitlines()[0]) from None


def _known_keys(full_key: str) -> str:
    node = OmegaConf.structured(Config)
    for part in full_key.split(".")[:-1]:
        node = node.get(part) if isinstance(node, DictConfig) else None
    if not isinstance(node, DictConfig):
        return ""
    return f" (known keys here: {', '.join(str(k) for k in node)})"


ALGOS = ("dqn", "tabular")
MODELS = ("nature_cnn", "mlp")
BACKENDS = ("gymnasium", "ale_vector")
FRAMES = ("full", "seed_crop")
LOSSES = ("huber", "mse")
REPLAY_SAMPLERS = ("uniform", "prioritized")
EPS_KINDS = ("linear", "exponential")
EXPLORES = ("epsilon", "random")
LOGGERS = ("wandb", "tensorboard", "csv", "none")
WANDB_MODES = ("auto", "online", "offline")
JOB_TYPES = ("train", "trial", "eval")
ACCELERATORS = ("cpu", "gpu")
PRECISIONS = ("32-true", "bf16-mixed")


def _choice(key: str, value: str, options: tuple[str, ...]) -> None:
    if value not in options:
        raise ConfigError(key, f"'{value}' is not one of {', '.join(options)}")


def _positive(key: str, value: float) -> None:
    if not value > 0:
        raise ConfigError(key, f"must be > 0, got {value}")


def _unit(key: str, value: float) -> None:
    if not 0.0 <= value <= 1.0:
        raise ConfigError(key, f"must be in [0, 1], got {value}")


def validate(cfg: DictConfig) -> None:
    """Check ranges and cross-key consistency; raise ConfigError naming the first bad key."""
    _check_known_keys(cfg, OmegaConf.to_container(OmegaConf.structured(Config)), "")
    from dqn_harness.envs import is_atari

    _choice("algo.name", cfg.algo.name, ALGOS)
    _choice("model.name", cfg.model.name, MODELS)
    _choice("env.backend", cfg.env.backend, BACKENDS)
    _choice("env.frame", cfg.env.frame, FRAMES)
    _choice("algo.loss", cfg.algo.loss, LOSSES)
    _choice("buffer.sampler", cfg.buffer.sampler, REPLAY_SAMPLERS)
    _choice("algo.explore", cfg.algo.explore, EXPLORES)
    _choice("schedule.epsilon.kind", cfg.schedule.epsilon.kind, EPS_KINDS)
    _choice("logger.name", cfg.logger.name, LOGGERS)
    _choice("logger.mode", cfg.logger.mode, WANDB_MODES)
    _choice("logger.job_type", cfg.logger.job_type, JOB_TYPES)
    check_wandb_login(cfg.logger)

    if not 0.0 < cfg.algo.gamma <= 1.0:
        raise ConfigError("algo.gamma", f"must be in (0, 1], got {cfg.algo.gamma}")
    if not 0.0 < cfg.algo.alpha <= 1.0:
        raise ConfigError("algo.alpha", f"must be in (0, 1], got {cfg.algo.alpha}")
    _positive("optim.lr", cfg.optim.lr)
    _positive("optim.eps", cfg.optim.eps)
    _unit("schedule.epsilon.start", cfg.schedule.epsilon.start)
    _unit("schedule.epsilon.end", cfg.schedule.epsilon.end)
    _unit("eval.epsilon", cfg.eval.epsilon)
    _unit("buffer.alpha", cfg.buffer.alpha)
    _unit("buffer.beta", cfg.buffer.beta)
    _positive("buffer.eps", cfg.buffer.eps)
    if cfg.buffer.beta_steps is not None:
        _positive("buffer.beta_steps", cfg.buffer.beta_steps)
    if cfg.schedule.epsilon.kind == "exponential" and cfg.schedule.epsilon.end <= 0:
        raise ConfigError("schedule.epsilon.end", "must be > 0 for an exponential schedule")
    for key in (
        "schedule.epsilon.steps",
        "schedule.target_sync",
        "buffer.capacity",
        "batch_size",
        "train_freq",
        "total_steps",
        "env.num_envs",
        "eval.every",
        "eval.episodes",
        "eval.num_envs",
        "eval.video_every",
        "algo.n_step",
        "checkpoint.every",
    ):
        _positive(key, _get(cfg, key))
    if not 0 <= cfg.seed < 2**31:  # NumPy seeds are < 2**32; evaluation adds offsets
        raise ConfigError("seed", f"must be in [0, 2**31), got {cfg.seed}")
    if cfg.learning_starts < 0:
        raise ConfigError("learning_starts", f"must be >= 0, got {cfg.learning_starts}")
    if cfg.trainer.threads is not None:
        _positive("trainer.threads", cfg.trainer.threads)
    _check_trainer(cfg.trainer)
    if cfg.algo.max_grad_norm is not None:
        _positive("algo.max_grad_norm", cfg.algo.max_grad_norm)
    if any(h <= 0 for h in cfg.model.hidden):
        raise ConfigError("model.hidden", f"widths must be > 0, got {list(cfg.model.hidden)}")
    if cfg.model.dueling and not cfg.model.hidden:
        raise ConfigError("model.hidden", "a dueling head needs at least one width for its streams")
    if cfg.batch_size > cfg.buffer.capacity:
        raise ConfigError(
            "batch_size",
            f"{cfg.batch_size} is larger than buffer.capacity ({cfg.buffer.capacity})",
        )
    if cfg.eval.num_envs > cfg.eval.episodes:
        raise ConfigError(
            "eval.num_envs", f"{cfg.eval.num_envs} is more than eval.episodes ({cfg.eval.episodes})"
        )
    space = validate_env(cfg.env)
    if cfg.algo.name == "tabular":
        if not isinstance(space, Discrete):
            raise ConfigError(
                "algo", f"tabular needs a discrete observation space; {cfg.env.id} has {space}"
            )
        return
    if cfg.model._target_ is not None:
        from dqn_harness.nets import network_class

        network_class(cfg.model._target_)
    elif cfg.model.name == "nature_cnn" and not is_atari(cfg.env.id):
        raise ConfigError("model", f"nature_cnn needs Atari frames; use model=mlp for {cfg.env.id}")
    if cfg.learning_starts < cfg.batch_size:
        raise ConfigError(
            "learning_starts",
            f"{cfg.learning_starts} is smaller than batch_size ({cfg.batch_size})",
        )
    _check_replay_memory(cfg, space)


def validate_env(env: Any) -> Any:
    """Check ``env.*`` alone (training, and evaluate.py's protocol overrides); returns the
    observation space of the env it builds once."""
    from dqn_harness.envs import check_env_id, is_atari

    for key in ("frame_skip", "frame_stack"):
        _positive(f"env.{key}", env[key])
    _unit("env.repeat_action_probability", env.repeat_action_probability)
    if env.max_episode_steps is not None:
        _positive("env.max_episode_steps", env.max_episode_steps)
    if env.noop_max < 0:
        raise ConfigError("env.noop_max", f"must be >= 0, got {env.noop_max}")
    check_env_id(env)
    if env.repeat_action_probability > 0 and not is_atari(env.id):
        raise ConfigError(
            "env.repeat_action_probability", f"sticky actions are an ALE setting; {env.id} has none"
        )
    return _built_space(env)


def check_wandb_login(logger: Any) -> None:
    from dqn_harness.wandb_mode import wandb_has_credentials, wandb_mode

    online = logger.name == "wandb" and wandb_mode(logger.mode) == "online"
    if online and not wandb_has_credentials():
        raise ConfigError(
            "logger.mode",
            "online needs a W&B API key (`wandb login` or WANDB_API_KEY); "
            "logger.mode=offline writes the run under wandb/ to `wandb sync` later",
        )


def _built_space(env_cfg: Any) -> Any:
    """The observation space, from an env built once with ``env.*``: gymnasium and ALE reject
    bad arguments (``env.kwargs.map_name=9x9``) with their own exceptions, which become one line
    naming the key here instead of a traceback from inside the run."""
    from dqn_harness.envs import is_atari, make_env, single_observation_space

    try:
        if is_atari(env_cfg.id) and env_cfg.kwargs:
            make_env(env_cfg).close()  # Atari's space is known without an env; its kwargs are not
        return single_observation_space(env_cfg)
    except ConfigError:
        raise
    except Exception as exc:  # noqa: BLE001 (whatever the env's constructor raises)
        key = "env.kwargs" if env_cfg.kwargs else "env"
        args = ", ".join(f"{k}={v!r}" for k, v in env_cfg.kwargs.items())
        reason = str(exc).splitlines()[0] if str(exc) else ""
        raise ConfigError(
            key,
            f"{env_cfg.id} could not be built{f' with {args}' if args else ''} "
            f"({type(exc).__name__}: {reason[:160]})",
        ) from None


def _check_trainer(trainer: Any) -> None:
    """Only what is offered and tested; a GPU that is not there is named before Lightning
    fails on it with a traceback."""
    _choice("trainer.accelerator", trainer.accelerator, ACCELERATORS)
    if trainer.precision not in PRECISIONS:
        why = (
            " (fp16 needs a loss scaler and half weights lose small TD updates; bf16-mixed "
            "keeps fp32 weights and needs no scaler)"
            if str(trainer.precision).startswith(("16", "bf16"))
            else ""
        )
        raise ConfigError(
            "trainer.precision",
            f"'{trainer.precision}' is not one of {', '.join(PRECISIONS)}{why}",
        )
    if trainer.devices != 1:
        raise ConfigError(
            "trainer.devices",
            f"must be 1, got {trainer.devices} (replay and envs live in the training process)",
        )
    if trainer.accelerator == "gpu":
        import torch

        if not torch.cuda.is_available():
            raise ConfigError(
                "trainer.accelerator",
                f"no CUDA device is available to this torch ({torch.__version__}); use trainer=cpu",
            )


def _check_replay_memory(cfg: DictConfig, space: Any) -> None:
    from dqn_harness.replay.storage import check_fits, nbytes_for

    frame_shape = space.shape[1:] if len(space.shape) == 3 else space.shape
    check_fits(
        cfg.buffer.capacity,
        nbytes_for(cfg.buffer.capacity, frame_shape, np.dtype(space.dtype)),
    )


def _check_known_keys(cfg: DictConfig, schema: Any, prefix: str) -> None:
    """``+key=value`` can slip past Hydra's struct check; nothing outside the schema may run."""
    for key in cfg:
        full = f"{prefix}{key!s}"
        if key not in schema:
            raise ConfigError(full, "unknown config key")
        if isinstance(schema[key], dict) and full != "env.kwargs":
            _check_known_keys(cfg[key], schema[key], f"{full}.")


def _get(cfg: DictConfig, dotted: str) -> Any:
    node: Any = cfg
    for part in dotted.split("."):
        node = node[part]
    return node
