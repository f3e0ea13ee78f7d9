"""Sweeps end to end: real Optuna studies on SQLite and PostgreSQL, real trainings, the real CLI."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import optuna
import pytest
import sqlalchemy
import yaml

from dqn_harness.commands.sweep import sweep_main
from dqn_harness.sweeping.workers import trials_used
from tests.conftest import ROOT, run_sweep, run_train

FAST_FROZENLAKE = ["logger=none", "total_steps=40000", "objective.seeds=[0]"]


def load(study: str, storage: str) -> optuna.Study:
    return optuna.load_study(study_name=study, storage=storage)


def sqlite(tmp: Path, study: str) -> str:
    return f"sqlite:///{tmp / 'outputs' / 'sweeps' / study / 'study.db'}"


def by_state(study: optuna.Study) -> dict[str, list[optuna.trial.FrozenTrial]]:
    out: dict[str, list[optuna.trial.FrozenTrial]] = {}
    for t in study.get_trials():
        out.setdefault(t.state.name, []).append(t)
    return out


def write_sweep(tmp: Path, name: str, **fields) -> Path:
    spec = {
        "base": ["algo=tabular", "env=frozenlake", "algo.explore=epsilon", "eval.every=2000"],
        "space": {"algo.alpha": {"type": "float", "low": 0.05, "high": 0.3}},
        "objective": {"metric": "best_eval_return", "direction": "maximize"},
        "n_trials": 2,
        **fields,
    }
    path = tmp / f"{name}.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


@pytest.fixture
def study_name(request):
    """A unique study name; its preset in experiments/ is removed afterwards."""
    name = f"pytest_{request.node.name[:20]}_{uuid.uuid4().hex[:6]}"
    yield name
    (ROOT / "experiments" / f"{name}_best.yaml").unlink(missing_ok=True)


# --- bad input: a clear message before any trial runs -------------------------------------


@pytest.mark.parametrize(
    ("fields", "args", "expected"),
    [
        ({"space": {"optim.lrr": {"type": "float", "low": 0.1, "high": 0.2}}}, [], "optim.lrr"),
        ({"space": {"algo.alpha": {"type": "float", "low": 0.5, "high": 0.5}}}, [], "empty range"),
        (
            {"space": {"algo.alpha": {"type": "float", "low": 0.0, "high": 0.5, "log": True}}},
            [],
            "log range",
        ),
        ({"space": {"algo.alpha": {"type": "categorical", "choices": []}}}, [], "non-empty"),
        ({"space": {"algo.alpha": {"type": "float", "low": 0.1, "high": 2.0}}}, [], "algo.alpha"),
        ({"space": {"model": {"type": "categorical", "choices": ["mlp", "nope"]}}}, [], "nope"),
        ({}, ["objective.metric=eval/return_meen"], "eval/return_meen"),
        ({"prunr": {"name": "median"}}, [], "prunr"),
        ({}, ["pruner.name=sometimes"], "pruner.name"),
        ({}, ["n_trials=0"], "n_trials"),
        ({}, ["optim.lrr=3"], "optim.lrr"),
    ],
)
def test_bad_sweeps_fail_before_any_trial(tmp_path, capsys, monkeypatch, fields, args, expected):
    monkeypatch.chdir(tmp_path)
    path = write_sweep(tmp_path, "bad", **fields)
    code = sweep_main([f"sweep={path}", *args], ROOT)
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1 and err[0].startswith("error: ") and expected in err[0], err
    assert not (tmp_path / "outputs").exists()  # no study, no trial


def test_unknown_sweep_name_lists_the_sweeps(tmp_path):
    result = run_sweep("sweep=nope", cwd=tmp_path, timeout=120)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    line = result.stderr.strip().splitlines()[-1]
    assert "nope" in line and "frozenlake_tabular" in line and "cartpole_dqn" in line


def test_shipped_sweeps_validate(tmp_path, monkeypatch):
    """Every sweep in sweeps/ composes and validates at both ends of its space and at every
    choice, as a sweep checks itself before opening a study. The check is called directly, so
    the test does not lean on which error a later step prints; the config composed last is the
    space's high corner, and a copy of the sweep with that corner out of range is refused."""
    from omegaconf import OmegaConf

    from dqn_harness.errors import UsageError
    from dqn_harness.sweeping.spec import Paths, Plan, load_spec

    monkeypatch.chdir(tmp_path)
    paths = Paths(ROOT / "conf", ROOT / "sweeps", ROOT / "experiments")
    for path in sorted((ROOT / "sweeps").glob("*.yaml")):
        spec, train_args = load_spec([f"sweep={path.stem}"], paths)
        plan = Plan(spec, train_args, paths)
        numeric = {k: d for k, d in spec.space.items() if d["type"] in ("float", "int")}
        for key, dist in numeric.items():
            assert OmegaConf.select(plan.example, key) == dist["high"], (path.name, key)
        if "algo.gamma" in numeric:  # an out-of-range corner must be caught by that check
            broken = yaml.safe_load(path.read_text())
            broken["space"]["algo.gamma"]["high"] = 1.5
            bad = tmp_path / f"broken_{path.name}"
            bad.write_text(yaml.safe_dump(broken))
            spec, train_args = load_spec([f"sweep={bad}"], paths)
            with pytest.raises(UsageError, match="algo.gamma"):
                Plan(spec, train_args, paths)


# --- a FrozenLake sweep: solves, reports, writes a preset that solves, resumes ---------------


def test_frozenlake_sweep_reports_preset_and_resumes(tmp_path, study_name):
    args = [
        "sweep=frozenlake_tabular",
        f"study={study_name}",
        "total_steps=40000",
        "objective.seeds=[0]",
    ]
    first = run_sweep(*args, "n_trials=3", cwd=tmp_path)
    assert first.returncode == 0, first.stderr[-3000:]
    storage = sqlite(tmp_path, study_name)
    study = load(study_name, storage)
    before = {t.number: (t.params, t.value) for t in study.get_trials()}
    assert len(before) == 3 and all(t.state.name == "COMPLETE" for t in study.get_trials())

    out = tmp_path / "outputs" / "sweeps" / study_name
    report = json.loads((out / "report.json").read_text())
    assert report["counts"]["complete"] == 3
    assert report["best_value"] == study.best_value < 40000  # some trial solved
    assert report["best_params"] == study.best_params
    assert (out / "sweep.png").stat().st_size > 5000
    assert f"best: trial {study.best_trial.number}" in first.stdout

    # Every trial is a W&B run in the study's group, typed trial, with flat params.
    best_dir = Path(study.best_trial.user_attrs["run_dir_s0"])
    summary = json.loads((best_dir / "summary.json").read_text())
    assert summary["solved"] and summary["solved_at_step"] == study.best_value
    records = subprocess.run(
        [
            str(Path(sys.executable).parent / "wandb"),
            "leet",
            "inspect",
            "--json",
            summary["wandb_run_dir"],
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    run = [json.loads(r)["run"] for r in records if '"type":"run"' in r][-1]
    assert run["run_group"] == study_name and run["job_type"] == "trial"
    config = run["config"]["update"]
    assert config["sweep.trial"] == study.best_trial.number
    assert config["algo.alpha"] == pytest.approx(study.best_params["algo.alpha"])

    # The preset stays with the study (the repository's experiments/ is not touched), and
    # +experiment= finds it there: it re-runs the best trial through train.py and solves.
    preset = out / "experiment" / f"{study_name}_best.yaml"
    recorded = ROOT / "experiments" / f"{study_name}_best.yaml"
    assert not recorded.exists()
    assert "algo.alpha" not in preset.read_text() and "alpha:" in preset.read_text()
    trained = run_train(f"+experiment={study_name}_best", "logger=none", cwd=tmp_path)
    assert trained.returncode == 0, trained.stderr[-2000:]
    assert f"SOLVED at {int(study.best_value):,} agent steps" in trained.stdout

    # The same command with a bigger budget continues the study; nothing is lost. A preset
    # the repository records under the same name is kept (and the report says so).
    recorded.write_text("# @package _global_\n# recorded results refer to this file\nseed: 5\n")
    second = run_sweep(*args, "n_trials=5", "logger=none", cwd=tmp_path)
    assert second.returncode == 0, second.stderr[-3000:]
    assert recorded.read_text().startswith("# @package _global_\n# recorded results")
    assert "export=true to replace" in second.stdout
    study = load(study_name, storage)
    assert len(study.get_trials()) == 5
    assert {t.number: (t.params, t.value) for t in study.get_trials()[:3]} == before
    exported = run_sweep(*args, "report=true", "export=true", cwd=tmp_path, timeout=120)
    assert exported.returncode == 0, exported.stderr[-2000:]
    assert recorded.read_text() == preset.read_text()
    assert f"trial {study.best_trial.number}" in recorded.read_text()

    # report=true prints the study as it stands and runs nothing.
    again = run_sweep(*args, "report=true", cwd=tmp_path, timeout=120)
    assert again.returncode == 0 and f"study {study_name}: 5 trials" in again.stdout
    assert len(load(study_name, storage).get_trials()) == 5


# --- pruning ---------------------------------------------------------------------------------


def test_hopeless_trials_are_pruned_and_skip_their_other_seeds(tmp_path, study_name, monkeypatch):
    """alpha=1e-5 cannot learn in 16k steps: the median pruner must stop it after its first
    evaluations, before its second seed starts."""
    monkeypatch.chdir(tmp_path)
    path = write_sweep(
        tmp_path,
        "prune",
        base=[
            "algo=tabular",
            "env=frozenlake",
            "algo.explore=epsilon",
            "eval.every=2000",
            "eval.stop_on_solve=false",
            "total_steps=16000",
            "logger=none",
            "progress=false",
        ],
        space={"algo.alpha": {"type": "categorical", "choices": [0.2, 0.00001]}},
        objective={"metric": "eval/return_mean", "reduce": "mean", "seeds": [0, 1]},
        sampler={"name": "random", "seed": 3},
        pruner={"name": "median", "n_startup_trials": 2, "n_warmup_steps": 0},
        n_trials=6,
    )
    # The first two trials are the pruner's reference: one good, one hopeless, in that order.
    storage = sqlite(tmp_path, study_name)
    (tmp_path / "outputs" / "sweeps" / study_name).mkdir(parents=True)
    seed_study = optuna.create_study(study_name=study_name, storage=storage, direction="maximize")
    seed_study.enqueue_trial({"algo.alpha": 0.2})
    seed_study.enqueue_trial({"algo.alpha": 0.2})
    seed_study.enqueue_trial({"algo.alpha": 0.00001})
    assert sweep_main([f"sweep={path}", f"study={study_name}"], ROOT) == 0

    study = load(study_name, storage)
    states = by_state(study)
    pruned = states.get("PRUNED", [])
    assert pruned, [(t.params, t.state) for t in study.get_trials()]
    assert all(t.params["algo.alpha"] == 0.00001 for t in pruned)
    assert all(t.params["algo.alpha"] == 0.2 for t in states["COMPLETE"])
    trials = tmp_path / "outputs" / "sweeps" / study_name / "trials"
    for t in pruned:
        steps = max(t.intermediate_values)
        assert steps < 16000  # stopped early, inside seed 0
        run_dir = trials / f"{t.number:04d}-s0"
        assert json.loads((run_dir / "summary.json").read_text())["status"] == "pruned"
        assert not (trials / f"{t.number:04d}-s1").exists()
    for t in states["COMPLETE"]:
        assert (trials / f"{t.number:04d}-s1" / "summary.json").exists()


# --- a worker killed mid-trial ---------------------------------------------------------------


def test_sigkilled_worker_is_retried_and_nothing_finished_is_lost(tmp_path, study_name):
    args = [
        "sweep=frozenlake_tabular",
        f"study={study_name}",
        "n_trials=3",
        "logger=none",
        "heartbeat.interval=1",
        "heartbeat.grace=3",
        "total_steps=60000",
        # every trial runs its full 60k steps (~10 s), so the poll below cannot miss one in
        # flight; with solved-stops a lucky trial ends in well under a second
        "eval.stop_on_solve=false",
        "objective.seeds=[0]",
    ]
    storage = sqlite(tmp_path, study_name)
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "sweep.py"), *args],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    victim = None
    deadline = time.monotonic() + 300
    try:
        while victim is None and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.3)
            # read from the start, as optuna-dashboard on a new study would: the sweep must
            # survive a reader that races it for the new database's schema
            try:
                trials = load(study_name, storage).get_trials()
            except KeyError:  # the study is not created yet
                continue
            except sqlalchemy.exc.SQLAlchemyError:  # this reader lost the schema race (not ours)
                continue
            running = [t for t in trials if t.state.name == "RUNNING" and t.intermediate_values]
            if any(t.state.name == "COMPLETE" for t in trials) and running:
                victim = running[0]
                os.killpg(proc.pid, signal.SIGKILL)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert victim is not None, "never saw a running trial after a complete one"
    finished_before = {
        t.number: t.value
        for t in load(study_name, storage).get_trials()
        if t.state.name == "COMPLETE"
    }
    assert load(study_name, storage).get_trials()[victim.number].state.name == "RUNNING"

    result = run_sweep(*args, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    study = load(study_name, storage)
    trials = study.get_trials()
    assert trials[victim.number].state.name == "FAIL"
    retries = [t for t in trials if t.system_attrs.get("failed_trial") == victim.number]
    assert len(retries) == 1 and retries[0].params == victim.params
    assert retries[0].state.name in ("COMPLETE", "PRUNED")
    assert {n: v for n, v in finished_before.items()} == {
        t.number: t.value for t in trials if t.number in finished_before
    }
    assert trials_used(trials) == 3
    assert sum(t.state.name in ("COMPLETE", "PRUNED") for t in trials) == 3


# --- several workers on PostgreSQL -----------------------------------------------------------


def test_two_workers_share_a_postgresql_study(tmp_path, study_name, postgres_url):
    result = run_sweep(
        "sweep=frozenlake_tabular",
        f"study={study_name}",
        f"storage={postgres_url}",
        "workers=2",
        "n_trials=4",
        *FAST_FROZENLAKE,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    study = load(study_name, postgres_url)
    trials = study.get_trials()
    numbers = [t.number for t in trials]
    assert len(set(numbers)) == len(numbers) == len(trials)
    assert sorted(numbers) == list(range(len(trials)))
    assert 4 <= len(trials) <= 5  # two workers may both start the last trial at once
    assert all(t.state.name == "COMPLETE" for t in trials)
    workers = {t.user_attrs["worker"] for t in trials}
    assert len(workers) == 2  # both processes ran trials
    assert "study " in result.stdout and "best: trial" in result.stdout


def test_two_workers_share_a_journal_study_without_a_server(tmp_path, study_name):
    """storage=journal:<file>: what a cluster with a shared file system and no database has."""
    journal = tmp_path / "shared" / "study.journal"
    result = run_sweep(
        "sweep=frozenlake_tabular",
        f"study={study_name}",
        f"storage=journal:{journal}",
        "workers=2",
        "n_trials=4",
        *FAST_FROZENLAKE,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    from optuna.storages.journal import JournalFileBackend, JournalStorage

    study = optuna.load_study(
        study_name=study_name, storage=JournalStorage(JournalFileBackend(str(journal)))
    )
    trials = study.get_trials()
    numbers = [t.number for t in trials]
    assert sorted(numbers) == list(range(len(trials))) and 4 <= len(trials) <= 5
    assert all(t.state.name == "COMPLETE" for t in trials)
    assert len({t.user_attrs["worker"] for t in trials}) == 2
    assert "best: trial" in result.stdout


def test_a_diverging_trial_fails_and_the_sweep_goes_on(tmp_path, study_name, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = write_sweep(
        tmp_path,
        "diverge",
        base=[
            "env=cartpole",
            "total_steps=1500",
            "learning_starts=500",
            "eval.every=1000",
            "eval.episodes=2",
            "logger=none",
            "progress=false",
        ],
        space={"optim.lr": {"type": "categorical", "choices": [1e30, 1e-3]}},
        objective={"metric": "best_eval_return", "seeds": [0]},
        sampler={"name": "random", "seed": 0},
        pruner={"name": "none"},
        n_trials=2,
    )
    storage = sqlite(tmp_path, study_name)
    (tmp_path / "outputs" / "sweeps" / study_name).mkdir(parents=True)
    seed_study = optuna.create_study(study_name=study_name, storage=storage, direction="maximize")
    seed_study.enqueue_trial({"optim.lr": 1e30})
    seed_study.enqueue_trial({"optim.lr": 1e-3})
    assert sweep_main([f"sweep={path}", f"study={study_name}"], ROOT) == 0
    trials = load(study_name, storage).get_trials()
    assert [t.state.name for t in trials] == ["FAIL", "COMPLETE"]
    assert "training diverged: non-finite" in trials[0].user_attrs["error"]


def _hammer(url: str, barrier, stop) -> None:
    """A reader opening the study's storage over and over, from the first instant."""
    from optuna.storages import RDBStorage

    barrier.wait()
    while not stop.is_set():
        with contextlib.suppress(Exception):  # a reader that loses the race just tries again
            RDBStorage(url, engine_kwargs={"connect_args": {"timeout": 60}})


def test_a_reader_at_the_first_instant_cannot_end_the_sweep(tmp_path):
    """The cause of the flaky SIGKILL test: Optuna creates a new database's schema in steps
    that are not atomic, so a second process opening it at the same moment made the sweep's
    own open fail ('table studies already exists', 'UNIQUE constraint failed:
    alembic_version.version_num': 8 in 30 tries here) and the sweep ended. The sweep now opens
    again when it lost that race. Each round: a new SQLite file, a reader hammering it from the
    same instant, and the sweep's own open_rdb, which must succeed every time."""
    import multiprocessing

    from dqn_harness.sweeping.study import open_rdb

    ctx = multiprocessing.get_context("fork")  # the reader starts at once, nothing to import
    for i in range(25):
        url = f"sqlite:///{tmp_path / f'race-{i}.db'}"
        barrier, stop = ctx.Barrier(2), ctx.Event()
        reader = ctx.Process(target=_hammer, args=(url, barrier, stop))
        reader.start()
        barrier.wait()
        try:
            storage = open_rdb(url, engine_kwargs={"connect_args": {"timeout": 60}})
            assert storage.get_all_studies() == []
        finally:
            stop.set()
            reader.join(timeout=30)
