"""Optuna sweeps: each trial is one composed Hydra config trained by train.py's own ``run()``.

A sweep is data (``sweeps/<name>.yaml``): the base overrides, the search space over any config
key or config group, the objective, sampler, pruner and budget. The study lives in an Optuna RDB
storage (a SQLite file per study by default, PostgreSQL for many machines), so running the same
command again, or on another machine, joins the same study.

Decisions worth knowing:

- ``n_trials`` is the study's total budget, not a per-command count: workers on any number of
  machines share it, and a re-run after a crash finishes the study rather than starting over.
  Failed trials that were retried don't count; a trial cut short by Ctrl-C is re-queued.
- Killed workers are detected by Optuna's heartbeat: a RUNNING trial whose heartbeat is older
  than the grace period is marked FAIL and re-queued with the same parameters.
- Pruning sees the evaluation return at each evaluation. With several seeds a trial's seeds run
  one after another and report at ``seed_index * total_steps + env_steps``, so the pruner compares
  trials seed by seed, and a pruned trial skips its remaining seeds. Steps are rounded down to
  the eval cadence so trials with different ``num_envs``/``train_freq`` report at the same steps.
- Intermediate values are eval returns oriented to the study's direction (negated when it
  minimizes, e.g. ``solved_at_step``), so the pruner always keeps the trials that learn best.
"""

from __future__ import annotations

import contextlib
import json
import math
import multiprocessing
import os
import socket
import sys
import time
import traceback
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
from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback
from optuna.trial import FrozenTrial, Trial, TrialState

from dqn_harness.cli import compose_config
from dqn_harness.config import ConfigError, validate
from dqn_harness.tracking import LOGGED_METRICS, SUMMARY_FIELDS, read_metrics

OBJECTIVE_REDUCE = ("last", "max", "min", "mean")
AGGREGATES: dict[str, Callable[[list[float]], Any]] = {
    "mean": np.mean,
    "median": np.median,
    "min": np.min,
    "max": np.max,
}
SAMPLERS = ("tpe", "random")
PRUNERS = ("median", "hyperband", "none")
PARAM_TYPES = ("float", "int", "categorical")


# Heartbeats, retries and stale-trial handling are "experimental" in Optuna since 2.9; we rely
# on them on purpose (see the module docstring), so their warnings would only be noise.
warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)


class SweepError(ValueError):
    """A sweep file or sweep option is wrong; the message names the key."""


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
    storage: str | None = None  # RDB URL; default sqlite:///<out>/<study>/study.db
    out: str = "outputs/sweeps"  # trial run dirs, study.db and the report go in <out>/<study>/
    presets_dir: str | None = (
        None  # where <study>_best.yaml goes (default: the repo's experiments/)
    )
    report: bool = False  # print and write the report of the study as it stands, run nothing


SWEEP_KEYS = {f for f in SweepSpec.__dataclass_fields__ if f not in ("base", "space")}


@dataclass
class Paths:
    conf: Path  # conf/ of train.py
    sweeps: Path  # sweeps/ with the search-space files
    presets: Path  # experiments/ (conf/experiment links here)


# ---------------------------------------------------------------------------------------------
# Parsing and validation: everything that can be wrong is reported before any trial runs.


def split_args(argv: list[str]) -> tuple[list[str], list[str]]:
    """Sweep options (``n_trials=40``, ``pruner.name=none``) vs overrides for every trial."""
    sweep_args: list[str] = []
    train_args: list[str] = []
    for arg in argv:
        if "=" not in arg:
            raise SweepError(f"expected key=value, got '{arg}'")
        key = arg.split("=", 1)[0].lstrip("+")
        (sweep_args if key.split(".")[0] in SWEEP_KEYS else train_args).append(arg)
    return sweep_args, train_args


def load_spec(argv: list[str], paths: Paths) -> tuple[SweepSpec, list[str]]:
    sweep_args, train_args = split_args(argv)
    cli = OmegaConf.from_dotlist(sweep_args)
    if "sweep" not in cli:
        available = ", ".join(sorted(p.stem for p in paths.sweeps.glob("*.yaml")))
        raise SweepError(f"sweep: name a sweep, e.g. sweep=frozenlake_tabular (have: {available})")
    name = str(cli.sweep)
    file = Path(name) if name.endswith((".yaml", ".yml")) else paths.sweeps / f"{name}.yaml"
    if not file.exists():
        available = ", ".join(sorted(p.stem for p in paths.sweeps.glob("*.yaml")))
        raise SweepError(f"sweep: no sweep file {file}; available: {available}")
    try:
        data = yaml.safe_load(file.read_text()) or {}
    except yaml.YAMLError as exc:
        raise SweepError(f"{file}: not valid YAML ({str(exc).splitlines()[0]})") from None
    if not isinstance(data, dict):
        raise SweepError(f"{file}: expected a mapping of sweep options")
    data.setdefault("study", file.stem)
    schema = OmegaConf.structured(SweepSpec)
    try:
        merged = OmegaConf.merge(schema, data, cli)
        spec = OmegaConf.to_object(merged)
    except OmegaConfBaseException as exc:
        key = getattr(exc, "full_key", None) or "sweep"
        raise SweepError(f"{file.name}: {key}: {str(exc).splitlines()[0]}") from None
    assert isinstance(spec, SweepSpec)
    return spec, train_args


def _param_error(key: str, message: str) -> SweepError:
    return SweepError(f"space.{key}: {message}")


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
            raise SweepError(
                f"objective.metric: '{obj.metric}' is neither a summary.json field "
                f"({', '.join(SUMMARY_FIELDS)}) nor a logged metric ({', '.join(LOGGED_METRICS)})"
            )
        for key, value, options in (
            ("objective.direction", obj.direction, ("maximize", "minimize")),
            ("objective.reduce", obj.reduce, OBJECTIVE_REDUCE),
            ("objective.aggregate", obj.aggregate, tuple(AGGREGATES)),
            ("sampler.name", spec.sampler.name, SAMPLERS),
            ("pruner.name", spec.pruner.name, PRUNERS),
        ):
            if value not in options:
                raise SweepError(f"{key}: '{value}' is not one of {', '.join(options)}")
        if not obj.seeds:
            raise SweepError("objective.seeds: needs at least one seed")
        for key in ("n_trials", "workers"):
            if getattr(spec, key) < 1:
                raise SweepError(f"{key}: must be >= 1, got {getattr(spec, key)}")
        if spec.timeout is not None and spec.timeout <= 0:
            raise SweepError(f"timeout: must be > 0, got {spec.timeout}")
        if spec.heartbeat.interval < 1 or spec.heartbeat.grace <= spec.heartbeat.interval:
            raise SweepError("heartbeat: need interval >= 1 and grace > interval")
        if not spec.space:
            raise SweepError("space: the sweep has no parameters")
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
        except ConfigError as exc:
            where = "space" if exc.key in self.spec.space else "overrides"
            raise SweepError(f"{where}: {exc} (with {' '.join(overrides)})") from None
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


# ---------------------------------------------------------------------------------------------
# Storage, sampler, pruner.


def storage_url(plan: Plan) -> str:
    if plan.spec.storage:
        return plan.spec.storage
    return f"sqlite:///{plan.out / 'study.db'}"


def redact(url: str) -> str:
    """Hide a password in a database URL before printing it."""
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        creds, host = rest.rsplit("@", 1)
        return f"{scheme}://{creds.split(':')[0]}:***@{host}" if ":" in creds else url
    return url


def open_storage(plan: Plan) -> RDBStorage:
    url = storage_url(plan)
    if url.startswith("sqlite:///"):
        plan.out.mkdir(parents=True, exist_ok=True)
    hb = plan.spec.heartbeat
    engine_kwargs: dict[str, Any] = (
        {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {"pool_pre_ping": True}
    )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return RDBStorage(
                url,
                engine_kwargs=engine_kwargs,
                heartbeat_interval=hb.interval,
                grace_period=hb.grace,
                heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(hb.max_retry),
            )
    except Exception as exc:  # noqa: BLE001 (SQLAlchemy/driver errors of every kind)
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise SweepError(f"storage: cannot open {redact(url)}: {first}") from None


def make_sampler(spec: SweepSpec, seed: int) -> optuna.samplers.BaseSampler:
    if spec.sampler.name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.samplers.TPESampler(
            seed=seed,
            n_startup_trials=spec.sampler.n_startup_trials,
            multivariate=True,
            constant_liar=True,  # parallel workers don't all pile onto the same promising point
        )


def make_pruner(spec: SweepSpec) -> optuna.pruners.BasePruner:
    p = spec.pruner
    if p.name == "median":
        return optuna.pruners.MedianPruner(
            n_startup_trials=p.n_startup_trials, n_warmup_steps=p.n_warmup_steps
        )
    if p.name == "hyperband":
        return optuna.pruners.HyperbandPruner(
            min_resource=p.min_resource, reduction_factor=p.reduction_factor
        )
    return optuna.pruners.NopPruner()


def open_study(plan: Plan, storage: RDBStorage, sampler_seed: int) -> optuna.Study:
    spec = plan.spec
    try:
        study = optuna.create_study(
            study_name=spec.study,
            storage=storage,
            sampler=make_sampler(spec, sampler_seed),
            pruner=make_pruner(spec),
            direction=optuna.study.StudyDirection[spec.objective.direction.upper()],
            load_if_exists=True,
        )
    except ValueError as exc:  # e.g. the stored study has the other direction
        raise SweepError(f"study '{spec.study}': {str(exc).splitlines()[0]}") from None
    if study.direction.name.lower() != spec.objective.direction:
        raise SweepError(
            f"objective.direction: study '{spec.study}' already exists and "
            f"{study.direction.name.lower()}s; use another study=<name>"
        )
    definition = {
        "space": spec.space,
        "overrides": plan.overrides,
        "objective": OmegaConf.to_container(OmegaConf.structured(spec.objective)),
    }
    stored = study.user_attrs.get("definition")
    if stored is None:
        study.set_user_attr("definition", json.loads(json.dumps(definition)))
    elif stored != json.loads(json.dumps(definition)):
        print(
            f"warning: study '{spec.study}' was started with another space/overrides/objective; "
            "its earlier trials are kept (use study=<new name> for a separate study)",
            file=sys.stderr,
        )
    return study


# ---------------------------------------------------------------------------------------------
# Trials.


def suggest(trial: Trial, key: str, dist: dict[str, Any]) -> Any:
    kind = dist["type"]
    if kind == "float":
        return trial.suggest_float(
            key, dist["low"], dist["high"], log=dist.get("log", False), step=dist.get("step")
        )
    if kind == "int":
        return trial.suggest_int(
            key, dist["low"], dist["high"], log=dist.get("log", False), step=dist.get("step") or 1
        )
    choices = dist["choices"]
    if all(c is None or isinstance(c, (bool, int, float, str)) for c in choices):
        return trial.suggest_categorical(key, choices)
    # Optuna stores scalars only; lists (e.g. model.hidden) go through their JSON text.
    picked = trial.suggest_categorical(key, [json.dumps(c) for c in choices])
    return json.loads(str(picked))


class Reporter:
    """The pruning hook one seed's run calls at each evaluation."""

    def __init__(self, trial: Trial, offset: int, every: int, sign: float) -> None:
        self.trial, self.offset, self.every, self.sign = trial, offset, every, sign
        self.last_step = -1
        self.pruned_at: int | None = None

    def __call__(self, env_steps: int, mean: float) -> bool:
        step = self.offset + (env_steps // self.every) * self.every
        if step <= self.last_step or not math.isfinite(mean):
            return False
        self.last_step = step
        self.trial.report(self.sign * mean, step)
        if self.trial.should_prune():
            self.pruned_at = env_steps
            return True
        return False


def objective_value(spec: ObjectiveSpec, summary: dict[str, Any], run_dir: Path) -> float:
    if spec.metric in SUMMARY_FIELDS:
        value = summary.get(spec.metric)
    else:
        series = [v for _, v in read_metrics(run_dir, spec.metric)]
        value = None
        if series:
            value = {"last": series[-1], "max": max(series), "min": min(series)}.get(
                spec.reduce, float(np.mean(series))
            )
    if value is None and spec.metric == "solved_at_step" and spec.missing is None:
        value = summary["env_steps"]  # never solved: it took at least every step it ran
    if value is None:
        if spec.missing is None:
            raise RuntimeError(
                f"objective {spec.metric} is null in this run and objective.missing is not set"
            )
        value = spec.missing
    return float(value)


class Interrupted(KeyboardInterrupt):
    """Ctrl-C / SIGTERM ended a trial's run: the sweep stops and the trial is re-queued.

    A KeyboardInterrupt, so Optuna marks the trial failed and re-raises instead of going on.
    """


class TrialRunner:
    """The objective Optuna calls: one training run per seed, pruned between evaluations."""

    def __init__(self, plan: Plan, progress: bool, worker: str) -> None:
        self.plan = plan
        self.progress = progress
        self.worker = worker
        self.current: int | None = None  # the trial this worker runs now

    def __call__(self, trial: Trial) -> float:
        from dqn_harness.run import run

        self.current = trial.number
        spec = self.plan.spec
        obj = spec.objective
        params = {key: suggest(trial, key, dist) for key, dist in spec.space.items()}
        trial.set_user_attr("worker", self.worker)
        trial.set_user_attr("error", None)  # a retry starts clean
        sign = 1.0 if obj.direction == "maximize" else -1.0
        values: list[float] = []
        for index, seed in enumerate(obj.seeds):
            run_dir = self.plan.out / "trials" / f"{trial.number:04d}-s{seed}"
            try:
                cfg = self.plan.trial_config(params, seed, trial.number, self.progress)
            except SweepError as exc:
                trial.set_user_attr("error", str(exc))
                raise
            reporter = Reporter(trial, index * cfg.total_steps, cfg.eval.every, sign)
            extra = {
                "sweep.study": spec.study,
                "sweep.trial": trial.number,
                "sweep.seed_index": index,
                "sweep.params": sorted(params),
            }
            trial.set_user_attr(f"run_dir_s{seed}", str(run_dir))
            try:
                summary = run(cfg, run_dir, on_eval=reporter, extra_config=extra)
            except Exception as exc:
                run_dir.mkdir(parents=True, exist_ok=True)
                (run_dir / "error.txt").write_text(traceback.format_exc())
                trial.set_user_attr("error", f"{type(exc).__name__}: {exc}"[:500])
                raise
            if summary["status"] == "interrupted":
                trial.set_user_attr("error", "interrupted (Ctrl-C/SIGTERM); re-queued")
                raise Interrupted(f"trial {trial.number} interrupted")
            if summary["status"] == "diverged":  # failed; the sweep goes on to the next trial
                trial.set_user_attr("error", summary["error"])
                raise RuntimeError(f"trial {trial.number}, seed {seed}: {summary['error']}")
            if summary["status"] == "pruned":
                trial.set_user_attr("pruned_at", f"seed {seed}, {reporter.pruned_at} steps")
                raise optuna.TrialPruned(f"seed {seed} at {reporter.pruned_at} agent steps")
            value = objective_value(obj, summary, run_dir)
            trial.set_user_attr(f"objective_s{seed}", value)
            trial.set_user_attr(f"wall_s_s{seed}", summary["wall_s"])
            values.append(value)
        return float(AGGREGATES[obj.aggregate](values))


# ---------------------------------------------------------------------------------------------
# Workers.


def trials_used(trials: list[FrozenTrial]) -> int:
    """Trials that count against n_trials: all but failures that were re-queued as retries."""
    retried = set()
    for t in trials:
        retried.update(t.system_attrs.get("retry_history", []))  # what the retry callback writes
    return sum(1 for t in trials if not (t.state == TrialState.FAIL and t.number in retried))


def fail_stale(study: optuna.Study) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)


def requeue(study: optuna.Study, trial: FrozenTrial, max_retry: int) -> None:
    """Put an interrupted trial back as WAITING with the same parameters (as a retry)."""
    RetryHeartbeatStaleTrialCallback(max_retry)(study, trial)


class TrialPrinter:
    """One line per finished trial, from the storage, so it works for any number of workers."""

    def __init__(self, study: optuna.Study, write: Any = None) -> None:
        self.study = study
        self.seen = {t.number for t in study.get_trials(deepcopy=False) if t.state.is_finished()}
        self.write = write or (lambda line: print(line, file=sys.stderr))

    def poll(self) -> None:
        for t in self.study.get_trials(deepcopy=False):
            if t.state.is_finished() and t.number not in self.seen:
                self.seen.add(t.number)
                self.write(describe_trial(t, self.study.direction.name.lower() == "maximize"))


def describe_trial(t: FrozenTrial, maximize: bool = True) -> str:
    params = " ".join(f"{k}={_fmt(v)}" for k, v in t.params.items())
    if t.state == TrialState.COMPLETE:
        what = f"value {t.value:.6g}"
    elif t.state == TrialState.PRUNED:
        what = f"pruned ({t.user_attrs.get('pruned_at', 'early')})"
    else:
        what = f"failed: {t.user_attrs.get('error') or 'its worker died or was stopped'}"
    seconds = (
        (t.datetime_complete - t.datetime_start).total_seconds()
        if t.datetime_complete and t.datetime_start
        else float("nan")
    )
    return f"trial {t.number:>3} {t.state.name.lower():8} {what} in {seconds:.0f}s | {params}"


def _fmt(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def work(plan: Plan, worker_index: int, progress: bool, printer: bool) -> int:
    """One worker: run trials until the study's budget is spent and no trial is left running.

    Returns 130 when interrupted, else 0.
    """
    spec = plan.spec
    storage = open_storage(plan)
    study = open_study(plan, storage, spec.sampler.seed)
    # Offset the sampler's seed by worker and by what the study holds already, so neither
    # parallel workers nor a resumed command re-propose the random start-up points.
    started_with = len(study.get_trials(deepcopy=False))
    study.sampler = make_sampler(spec, spec.sampler.seed + 1000 * worker_index + started_with)
    runner = TrialRunner(plan, progress, f"{socket.gethostname()}:{os.getpid()}")
    lines = TrialPrinter(study) if printer else None
    deadline = None if spec.timeout is None else time.monotonic() + spec.timeout
    waiting_note = False
    try:
        while True:
            fail_stale(study)
            trials = study.get_trials(deepcopy=False)
            pending = any(t.state == TrialState.WAITING for t in trials)
            running = [t for t in trials if t.state == TrialState.RUNNING]
            if deadline is not None and time.monotonic() >= deadline:
                break
            if pending or trials_used(trials) < spec.n_trials:
                study.optimize(runner, n_trials=1, catch=(Exception,))
                if lines:
                    lines.poll()
                continue
            if not running:
                break
            if not waiting_note and printer:
                print(
                    f"waiting for {len(running)} running trial(s): other workers', or a dead "
                    f"worker's that is retried once stale ({spec.heartbeat.grace}s)",
                    file=sys.stderr,
                )
                waiting_note = True
            time.sleep(1.0)  # cheap to poll; a long sleep would idle after the others finish
    except KeyboardInterrupt:
        if runner.current is not None:
            trial = next(t for t in study.get_trials() if t.number == runner.current)
            if trial.state == TrialState.FAIL:
                requeue(study, trial, spec.heartbeat.max_retry)
        if lines:
            lines.poll()
        return 130
    return 0


def _study_id(storage: RDBStorage, name: str) -> int:
    try:
        return storage.get_study_id_from_name(name)
    except KeyError:
        return -1


def _worker_entry(
    spec: SweepSpec, train_args: list[str], paths: Paths, index: int, threads: int
) -> None:
    import torch

    torch.set_num_threads(threads)
    os.environ.setdefault("WANDB_SILENT", "true")
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    plan = Plan(spec, train_args, paths, check=False)
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(work(plan, index, progress=False, printer=False))
    sys.exit(130)


def run_workers(plan: Plan, train_args: list[str], storage: RDBStorage, study: optuna.Study) -> int:
    """``workers=N``: N processes on the same storage; this process prints what finishes."""
    n = plan.spec.workers
    threads = max(1, (os.cpu_count() or 1) // n)
    # fork where there is one: the workers start with everything imported and checked (spawn
    # re-imports torch, Lightning and Optuna in each, seconds per worker). No database
    # connection may cross the fork (SQLite's locks would break): the pool is emptied first,
    # and each worker opens its own storage.
    storage.engine.dispose()
    methods = multiprocessing.get_all_start_methods()
    ctx: Any = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
    procs = [
        ctx.Process(target=_worker_entry, args=(plan.spec, train_args, plan.paths, i, threads))
        for i in range(n)
    ]
    for p in procs:
        p.start()
    lines = TrialPrinter(study)
    try:
        while any(p.is_alive() for p in procs):
            lines.poll()
            time.sleep(1.0)
    except KeyboardInterrupt:
        for p in procs:
            p.join()
        lines.poll()
        return 130
    lines.poll()
    codes = [p.exitcode for p in procs]
    return 130 if 130 in codes else (0 if all(c == 0 for c in codes) else 1)


# ---------------------------------------------------------------------------------------------
# Entry.


def sweep_main(argv: list[str], root: Path) -> int:
    """What ``python sweep.py`` does; returns the exit code."""
    from dqn_harness.sweep_report import write_report

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    os.environ.setdefault("WANDB_SILENT", "true")  # no per-trial W&B run summaries on the console
    paths = Paths(root / "conf", root / "sweeps", root / "experiments")
    try:
        spec, train_args = load_spec(argv, paths)
        if spec.presets_dir:
            paths.presets = Path(spec.presets_dir).resolve()
        plan = Plan(spec, train_args, paths)
        if spec.report and not spec.storage and not (plan.out / "study.db").exists():
            raise SweepError(f"study: no study '{spec.study}' in {plan.out / 'study.db'}")
        storage = open_storage(plan)
        if spec.report:
            if _study_id(storage, spec.study) < 0:
                raise SweepError(f"study: no study '{spec.study}' in {redact(storage_url(plan))}")
            study = optuna.load_study(study_name=spec.study, storage=storage)
            print(write_report(study, plan))
            return 0
        study = open_study(plan, storage, spec.sampler.seed)
    except SweepError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    done = trials_used(study.get_trials(deepcopy=False))
    print(
        f"study '{spec.study}' in {redact(storage_url(plan))}: {done}/{spec.n_trials} trials "
        f"so far; {spec.workers} worker(s); trials in {plan.out / 'trials'}\n"
        f"  watch: optuna-dashboard {redact(storage_url(plan))}",
        file=sys.stderr,
    )
    if plan.example.logger.name == "wandb":
        from dqn_harness.tracking import wandb_mode

        if wandb_mode(plan.example.logger.mode) == "offline":
            save_dir = Path(plan.example.logger.save_dir) / "wandb"
            print(
                f"  W&B offline: each trial is a run in group '{spec.study}' under {save_dir}/\n"
                f"  browse: wandb leet {save_dir}   upload: wandb sync --sync-all",
                file=sys.stderr,
            )
    if spec.workers == 1:
        code = work(plan, 0, progress=True, printer=True)
    else:
        code = run_workers(plan, train_args, storage, study)
    print(write_report(study, plan))
    return code
