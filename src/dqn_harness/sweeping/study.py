"""Where a study lives and how it proposes and prunes: storage, sampler, pruner, open_study.

The study lives in an Optuna storage, so running the same command again, or on another machine,
joins the same study: a SQLite file per study by default (one machine), PostgreSQL for many
machines, or ``journal:<path>``, an append-only file on a shared file system for clusters
without a database server. Only the RDB storages have Optuna's heartbeat: on a journal a dead
worker's trial stays RUNNING and is not retried (README "Sweeps across machines").
"""

from __future__ import annotations

import json
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import optuna
from omegaconf import OmegaConf
from optuna.storages import BaseStorage, RDBStorage, RetryHeartbeatStaleTrialCallback
from optuna.storages.journal import JournalFileBackend, JournalStorage
from sqlalchemy.engine import make_url

from dqn_harness.errors import UsageError
from dqn_harness.sweeping.spec import Plan, SweepSpec


def storage_url(plan: Plan) -> str:
    if plan.spec.storage:
        return plan.spec.storage
    return f"sqlite:///{plan.out / 'study.db'}"


def redact(url: str) -> str:
    """Hide a password in a database URL before printing it."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 (not a URL SQLAlchemy can parse: nothing to hide)
        return url


JOURNAL = "journal:"


def has_heartbeat(storage: BaseStorage) -> bool:
    """Whether dead workers' trials are noticed (and retried): RDB storages only."""
    return isinstance(storage, RDBStorage)


def open_journal(path: str) -> JournalStorage:
    if not path:
        raise UsageError(
            "storage", "journal: needs a file path (storage=journal:/shared/study.log)"
        )
    file = Path(path).absolute()
    try:
        file.parent.mkdir(parents=True, exist_ok=True)
        return JournalStorage(JournalFileBackend(str(file)))
    except OSError as exc:
        raise UsageError("storage", f"cannot open journal {file}: {exc.strerror or exc}") from None


def open_storage(plan: Plan) -> BaseStorage:
    url = storage_url(plan)
    if url.startswith(JOURNAL):
        return open_journal(url[len(JOURNAL) :])
    if url.startswith("sqlite:///"):
        plan.out.mkdir(parents=True, exist_ok=True)
    hb = plan.spec.heartbeat
    engine_kwargs: dict[str, Any] = (
        {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {"pool_pre_ping": True}
    )
    try:
        return open_rdb(
            url,
            engine_kwargs=engine_kwargs,
            heartbeat_interval=hb.interval,
            grace_period=hb.grace,
            heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(hb.max_retry),
        )
    except Exception as exc:  # noqa: BLE001 (SQLAlchemy/driver errors of every kind)
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UsageError("storage", f"cannot open {redact(url)}: {first}") from None


# Optuna creates a new database's schema with check-then-create steps (SQLAlchemy's create_all,
# then an alembic stamp of the version table) that are not atomic. Another process opening the
# same new database at that moment (a second worker, optuna-dashboard, a script reading the
# study) makes one of the two fail with one of these, though the schema is complete once the
# other is done. Measured here on a fresh SQLite file with a reader started at once: the
# sweep's open failed in 8 of 30 tries, and the sweep then ended ("storage: cannot open").
SCHEMA_RACE = ("already exists", "UNIQUE constraint failed", "duplicate key value")
SCHEMA_RETRIES = 10


def open_rdb(url: str, **kwargs: Any) -> RDBStorage:
    """``RDBStorage(url, **kwargs)``, opened again when it lost the schema-creation race
    (:data:`SCHEMA_RACE`): the second open finds the tables the other process made."""
    from sqlalchemy.exc import IntegrityError, OperationalError, ProgrammingError

    for attempt in range(SCHEMA_RETRIES):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                return RDBStorage(url, **kwargs)
        except (OperationalError, IntegrityError, ProgrammingError) as exc:
            lost_race = any(marker in str(exc) for marker in SCHEMA_RACE)
            if not lost_race or attempt == SCHEMA_RETRIES - 1:
                raise
            time.sleep(0.05 * (attempt + 1))
    raise AssertionError("unreachable")


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


def open_study(plan: Plan, storage: BaseStorage, sampler_seed: int) -> optuna.Study:
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
        raise UsageError(f"study '{spec.study}'", f"{str(exc).splitlines()[0]}") from None
    if study.direction.name.lower() != spec.objective.direction:
        raise UsageError(
            "objective.direction",
            f"study '{spec.study}' already exists and "
            f"{study.direction.name.lower()}s; use another study=<name>",
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
