"""What a sweep is: its spec (``sweeps/<name>.yaml`` + command line), checked before any trial.

A sweep is data: the base overrides, the search space over any config key or config group, the
objective, sampler, pruner and budget. Everything that can be wrong with it is reported here, with
the key named, before a study is opened: unknown keys, bad ranges, and every corner of the space
composed and validated as a real config.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import yaml
from omegaconf import MISSING, DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from dqn_harness.arguments import key_values
from dqn_harness.config import compose_config, validate
from dqn_harness.errors import UsageError
from dqn_harness.tracking.metrics import LOGGED_METRICS
from dqn_harness.tracking.summary import SUMMARY_FIELDS

OBJECTIVE_REDUCE = ("last", "max", "min", "mean")
AGGREGATES: dict[str, Callable[[list[float]], Any]] = {
    "mean": np.mean,
    "median": np.median,
    "min": np.min,
    "max": np.max,
}
OPTUNA_SAMPLERS = ("tpe", "random")
PRUNERS = ("median", "hyperband", "none")
PARAM_TYPES = ("float", "int", "categorical")


# Heartbeats, retries and stale-trial handling are "experimental" in Optuna since 2.9; we rely
# on them on purpose (see the module docstring), so their warnings would only be noise.
warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)


@dataclass
class ObjectiveSpec:
    metric: str = "best_eval_return"  # a summary.json field, or a logged metric (eval/return_mean)
    reduce: str = "last"  # logged metric over the run: last | max | min | mean (area under curve)
    direction: str = "maximize"  # maximize | minimize
    seeds: list[int] = field(default_factory=lambda: [0])  # one training run per seed
    aggregate: str = "mean"  # over seeds: mean | median | min | max
    missing: float | None = None  # value for a null field (unsolved solved_at_step: steps run)


@dataclass
class SamplerSpec:
    name: str = "tpe"  # tpe | random
    seed: int = 0  # each worker offsets it, so workers don't propose the same points
    n_startup_trials: int = 10  # tpe: random trials before the model is used


@dataclass
class PrunerSpec:
    name: str = "median"  # median | hyperband | none
    n_startup_trials: int = 5  # median: trials that finish before anything is pruned
    n_warmup_steps: int = 0  # median: agent steps of a trial before it can be pruned
    min_resource: int = 1  # hyperband: agent steps before the first rung
    reduction_factor: int = 3  # hyperband


@dataclass
class HeartbeatSpec:
    interval: int = 10  # seconds between a running trial's heartbeats
    grace: int = 60  # a trial without a heartbeat for this long belongs to a dead worker
    max_retry: int = 2  # re-runs of a trial whose worker died


@dataclass
class SweepSpec:
    sweep: str = MISSING  # name of sweeps/<name>.yaml (or a path to a YAML file)
    study: str = MISSING  # study name (default: the sweep's name)
    base: list[str] = field(default_factory=list)  # train.py overrides every trial starts from
    space: dict[str, Any] = field(default_factory=dict)  # config key or group -> distribution
    objective: ObjectiveSpec = field(default_factory=ObjectiveSpec)
    sampler: SamplerSpec = field(default_factory=SamplerSpec)
    pruner: PrunerSpec = field(default_factory=PrunerSpec)
    heartbeat: HeartbeatSpec = field(default_factory=HeartbeatSpec)
    n_trials: int = 20  # total trials in the study (complete + pruned + failed, retries excluded)
    timeout: float | None = None  # seconds after which this command starts no new trial
    workers: int = 1  # worker processes on this machine
    # RDB URL (sqlite:///..., postgresql://...) or journal:<file> on a shared file system;
    # default sqlite:///<out>/<study>/study.db
    storage: str | None = None
    out: str = "outputs/sweeps"  # trial run dirs, study.db and the report go in <out>/<study>/
    # also write <study>_best.yaml into experiments/ (presets_dir), replacing a recorded preset
    # of that name; without it the preset stays with the study in <out>/<study>/experiment/
    export: bool = False
    presets_dir: str | None = None  # where export=true writes (default: the repo's experiments/)
    report: bool = False  # print and write the report of the study as it stands, run nothing


SWEEP_KEYS = {f for f in SweepSpec.__dataclass_fields__ if f not in ("base", "space")}


@dataclass
class Paths:
    conf: Path  # conf/ of train.py
    sweeps: Path  # sweeps/ with the search-space files
    presets: Path  # experiments/ (conf/experiment links here)


def split_args(argv: list[str]) -> tuple[list[str], list[str]]:
    """Sweep options (``n_trials=40``, ``pruner.name=none``) vs overrides for every trial."""
    sweep_args: list[str] = []
    train_args: list[str] = []
    for arg, (key, _value) in zip(argv, key_values(argv, "sweep=cartpole_dqn"), strict=True):
        (sweep_args if key.lstrip("+").split(".")[0] in SWEEP_KEYS else train_args).append(arg)
    return sweep_args, train_args


def load_spec(argv: list[str], paths: Paths) -> tuple[SweepSpec, list[str]]:
    sweep_args, train_args = split_args(argv)
    cli = OmegaConf.from_dotlist(sweep_args)
    if "sweep" not in cli:
        available = ", ".join(sorted(p.stem for p in paths.sweeps.glob("*.yaml")))
        raise UsageError(
            "sweep", f"name a sweep, e.g. sweep=frozenlake_tabular (have: {available})"
        )
    name = str(cli.sweep)
    file = Path(name) if name.endswith((".yaml", ".yml")) else paths.sweeps / f"{name}.yaml"
    if not file.exists():
        available = ", ".join(sorted(p.stem for p in paths.sweeps.glob("*.yaml")))
        raise UsageError("sweep", f"no sweep file {file}; available: {available}")
    try:
        data = yaml.safe_load(file.read_text()) or {}
    except yaml.YAMLError as exc:
        raise UsageError(str(file), f"not valid YAML ({str(exc).splitlines()[0]})") from None
    if not isinstance(data, dict):
        raise UsageError(str(file), "expected a mapping of sweep options")
    data.setdefault("study", file.stem)
    schema = OmegaConf.structured(SweepSpec)
    try:
        merged = OmegaConf.merge(schema, data, cli)
        spec = OmegaConf.to_object(merged)
    except OmegaConfBaseException as exc:
        key = getattr(exc, "full_key", None) or "sweep"
        raise UsageError(f"{file.name}: {key}", f"{str(exc).splitlines()[0]}") from None
    assert isinstance(spec, SweepSpec)
    return spec, train_args


def format_param(value: Any) -> str:
    """A sampled parameter as the report and the trial lines print it."""
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _param_error(key: str, message: str) -> UsageError:
    return UsageError(f"space.{key}", message)


def check_param(key: str, dist: Any) -> None:
    if not isinstance(dist, dict):
        raise _param_error(key, "expected a mapping like {type: float, low: 0.1, high: 1.0}")
    kind = dist.get("type")
    if kind not in PARAM_TYPES:
        raise _param_error(key, f"type '{kind}' is not one of {', '.join(PARAM_TYPES)}")
    allowed = (
        {"type", "choices"} if kind == "categorical" else {"type", "low", "high", "log", "step"}
    )
    extra = set(dist) - allowed
    if extra:
        raise _param_error(key, f"unknown field(s) {', '.join(sorted(extra))} for a {kind}")
    if kind == "categorical":
        choices = dist.get("choices")
        if not isinstance(choices, list) or not choices:
            raise _param_error(key, "choices must be a non-empty list")
        return
    if "low" not in dist or "high" not in dist:
        raise _param_error(key, "needs low and high")
    low, high = dist["low"], dist["high"]
    number = int if kind == "int" else (int, float)
    if not isinstance(low, number) or not isinstance(high, number) or isinstance(low, bool):
        raise _param_error(key, f"low and high must be {kind}s, got {low!r} and {high!r}")
    if not low < high:
        raise _param_error(key, f"empty range: low ({low}) must be below high ({high})")
    if dist.get("log") and low <= 0:
        raise _param_error(key, f"a log range needs low > 0, got {low}")
    if dist.get("log") and dist.get("step") is not None:
        raise _param_error(key, "log and step can't be combined")


def _override_value(value: Any) -> str:
    """A Python value as Hydra override syntax."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(_override_value(v) for v in value) + "]"
    text = str(value)
    return text if text.replace("_", "").replace("-", "").replace("/", "").isalnum() else repr(text)


def _corner(dist: dict[str, Any], end: str) -> Any:
    if dist["type"] == "categorical":
        return dist["choices"][0 if end == "low" else -1]
    return dist[end]


class Plan:
    """A validated sweep: the spec, the trial overrides, and how to compose a trial's config."""

    def __init__(
        self, spec: SweepSpec, train_args: list[str], paths: Paths, check: bool = True
    ) -> None:
        self.spec = spec
        self.paths = paths
        self.train_args = train_args
        self.overrides = [*spec.base, *train_args]
        self.out = Path(spec.out).resolve() / spec.study
        if check:  # workers get an already-checked plan
            self._check()

    def _check(self) -> None:
        spec = self.spec
        obj = spec.objective
        if obj.metric not in SUMMARY_FIELDS and obj.metric not in LOGGED_METRICS:
            raise UsageError(
                "objective.metric",
                f"'{obj.metric}' is neither a summary.json field "
                f"({', '.join(SUMMARY_FIELDS)}) nor a logged metric ({', '.join(LOGGED_METRICS)})",
            )
        for key, value, options in (
            ("objective.direction", obj.direction, ("maximize", "minimize")),
            ("objective.reduce", obj.reduce, OBJECTIVE_REDUCE),
            ("objective.aggregate", obj.aggregate, tuple(AGGREGATES)),
            ("sampler.name", spec.sampler.name, OPTUNA_SAMPLERS),
            ("pruner.name", spec.pruner.name, PRUNERS),
        ):
            if value not in options:
                raise UsageError(key, f"'{value}' is not one of {', '.join(options)}")
        if not obj.seeds:
            raise UsageError("objective.seeds", "needs at least one seed")
        for key in ("n_trials", "workers"):
            if getattr(spec, key) < 1:
                raise UsageError(key, f"must be >= 1, got {getattr(spec, key)}")
        if spec.timeout is not None and spec.timeout <= 0:
            raise UsageError("timeout", f"must be > 0, got {spec.timeout}")
        if spec.heartbeat.interval < 1 or spec.heartbeat.grace <= spec.heartbeat.interval:
            raise UsageError("heartbeat", "need interval >= 1 and grace > interval")
        if not spec.space:
            raise UsageError("space", "the sweep has no parameters")
        for key, dist in spec.space.items():
            check_param(key, dist)
            if key in SWEEP_KEYS or key in ("seed", "run_name"):
                raise _param_error(key, "is set by the sweep itself and can't be searched")
        # Compose the extremes of the space: unknown keys, wrong types and out-of-range values
        # fail here, with the key named, instead of in every trial.
        for end in ("low", "high"):
            params = {k: _corner(d, end) for k, d in self.spec.space.items()}
            self.example = self.compose(params, seed=obj.seeds[0], name="check")
        for key, dist in spec.space.items():
            if dist["type"] == "categorical":
                for choice in dist["choices"]:
                    self.compose({key: choice}, seed=obj.seeds[0], name="check")

    def param_overrides(self, params: dict[str, Any]) -> list[str]:
        return [f"{key}={_override_value(value)}" for key, value in params.items()]

    def compose(self, params: dict[str, Any], seed: int, name: str) -> DictConfig:
        overrides = [*self.overrides, *self.param_overrides(params)]
        try:
            cfg = compose_config(self.paths.conf, [*overrides, f"seed={seed}"])
            cfg.run_name = name
            validate(cfg)
        except UsageError as exc:
            where = "space" if exc.key in self.spec.space else "overrides"
            raise UsageError(where, f"{exc} (with {' '.join(overrides)})") from None
        return cfg

    def trial_config(
        self, params: dict[str, Any], seed: int, number: int, progress: bool
    ) -> DictConfig:
        cfg = self.compose(params, seed, f"{self.spec.study}-t{number}-s{seed}")
        cfg.logger.group = self.spec.study
        cfg.logger.job_type = "trial"
        cfg.logger.tags = [*cfg.logger.tags, "sweep"]
        cfg.progress = progress
        return cfg
