"""compare.py on real runs, W&B conventions read back from the offline run log, eval videos."""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys
from itertools import pairwise
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from dqn_harness.comparing.stats import aggregate, iqm
from dqn_harness.tracking.metrics import read_metrics
from tests.conftest import ROOT, run_cli, run_train

QUIET = ("progress=false",)
SEEDS = (0, 1, 2)
ALPHAS = (0.1, 0.5)


def wandb_records(run_dir: Path) -> list[dict]:
    """Every record of an offline W&B run's transaction log, as `wandb leet` decodes it."""
    out = subprocess.run(
        [str(Path(sys.executable).parent / "wandb"), "leet", "inspect", "--json", str(run_dir)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return [json.loads(line) for line in out.stdout.splitlines() if line.strip()]


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> Path:
    """Two FrozenLake configs x 3 seeds in group `demo`, and one run in group `other`."""
    root = tmp_path_factory.mktemp("compare")
    common = (
        "algo=tabular",
        "env=frozenlake",
        "algo.explore=epsilon",
        "total_steps=12000",
        "eval.every=3000",
        "eval.episodes=50",
        "eval.stop_on_solve=false",
        *QUIET,
    )
    for alpha in ALPHAS:
        for seed in SEEDS:
            # alpha 0.1 logs to W&B (offline) like a default run; alpha 0.5 to CSV only
            wandb = ("logger=wandb", f"logger.save_dir={root}")
            logger = wandb if alpha == 0.1 else ("logger=csv",)
            proc = run_train(
                *common,
                f"algo.alpha={alpha}",
                f"seed={seed}",
                "logger.group=demo",
                "logger.tags=[exp1]",
                *logger,
                f"hydra.run.dir={root}/outputs/demo-a{alpha}-s{seed}",
                cwd=root,
            )
            assert proc.returncode == 0, proc.stderr[-2000:]
    proc = run_train(
        *common,
        "total_steps=3000",
        "logger=none",
        "logger.group=other",
        f"hydra.run.dir={root}/outputs/other",
        cwd=root,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return root


def summaries(root: Path, pattern: str) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(root.glob(f"outputs/{pattern}/summary.json"))]


def compare(root: Path, *args: str) -> subprocess.CompletedProcess:
    return run_cli("compare.py", *args, cwd=root, timeout=120)


def read_csv(path: Path) -> list[dict]:
    with open(path) as f:
        return list(csv.DictReader(f))


def test_compare_draws_curves_and_tables_that_match_the_runs(runs):
    proc = compare(runs, "group=demo", "out=cmp")
    assert proc.returncode == 0, proc.stderr
    png = runs / "cmp" / "curves.png"
    with Image.open(png) as im:
        assert im.format == "PNG" and im.size[0] > 500
    # what the figure drew (curves.csv is read back from its lines and bands) is the runs' data:
    # each seed's curve is its metrics.jsonl, each config's curve the mean over its seeds
    drawn: dict[tuple[str, str], list[dict]] = {}
    for row in read_csv(runs / "cmp" / "curves.csv"):
        drawn.setdefault((row["config"], row["curve"]), []).append(row)
    for alpha in ALPHAS:
        config = f"algo.alpha={alpha}"
        per_seed = []
        for seed in SEEDS:
            run_dir = runs / "outputs" / f"demo-a{alpha}-s{seed}"
            curve = read_metrics(run_dir, "eval/return_mean")
            points = [
                (float(r["env_steps"]), float(r["value"])) for r in drawn[config, f"seed {seed}"]
            ]
            assert points == [(float(s), v) for s, v in curve] and len(curve) == 4
            per_seed.append([v for _, v in curve])
        mean_curve = drawn[config, "mean"]
        assert [float(r["env_steps"]) for r in mean_curve] == [3000, 6000, 9000, 12000]
        values = np.array(per_seed)  # (seeds, steps)
        for i, r in enumerate(mean_curve):
            assert float(r["value"]) == pytest.approx(values[:, i].mean())
            low, high = float(r["low"]), float(r["high"])
            lowest, highest = values[:, i].min() - 1e-9, values[:, i].max() + 1e-9  # float sums
            assert lowest <= low <= float(r["value"]) <= high <= highest
    rows = {r["config"]: r for r in read_csv(runs / "cmp" / "table.csv")}
    assert set(rows) == {f"algo.alpha={a}" for a in ALPHAS}  # the one key that differs
    for alpha in ALPHAS:
        row = rows[f"algo.alpha={alpha}"]
        sums = summaries(runs, f"demo-a{alpha}-s*")
        assert len(sums) == 3 and row["n"] == "3" and row["seeds"] == "0 1 2"
        finals = [s["eval_return_mean"] for s in sums]
        assert float(row["final_eval_return"]) == pytest.approx(np.mean(finals))
        assert float(row["final_ci_low"]) <= np.mean(finals) <= float(row["final_ci_high"])
        assert float(row["best_eval_return_mean"]) == pytest.approx(
            np.mean([s["best_eval_return"] for s in sums])
        )
        assert float(row["sps_mean"]) == pytest.approx(np.mean([s["sps"] for s in sums]))
        solved = [s["solved_at_step"] for s in sums]
        assert row["solved"] == f"{sum(x is not None for x in solved)}/3"
        assert row["steps_to_solve"] == " ".join("-" if x is None else str(x) for x in solved)
    per_run = read_csv(runs / "cmp" / "runs.csv")
    assert len(per_run) == 6 and {r["seed"] for r in per_run} == {"0", "1", "2"}
    table = (runs / "cmp" / "table.md").read_text()
    assert table in proc.stdout and "algo.alpha=0.5" in table


def test_compare_filters(runs):
    proc = compare(runs, "group=demo", "algo.alpha=0.5", "out=only05")
    assert proc.returncode == 0, proc.stderr
    rows = read_csv(runs / "only05" / "table.csv")
    # one config left, so nothing varies and the curve is named after the group
    assert [r["config"] for r in rows] == ["demo"] and rows[0]["n"] == "3"
    proc = compare(runs, "tag=exp1", "seed=0,1", "by=algo.alpha", "out=seeds01")
    assert proc.returncode == 0, proc.stderr
    rows = read_csv(runs / "seeds01" / "table.csv")
    assert sorted(r["seeds"] for r in rows) == ["0 1", "0 1"]
    proc = compare(runs, "group=other", "out=other")
    assert proc.returncode == 0, proc.stderr
    assert read_csv(runs / "other" / "table.csv")[0]["n"] == "1"


def test_a_run_without_a_summary_is_named_in_a_warning_not_dropped_silently(runs, tmp_path):
    """A run killed before its summary (kill -9, a second Ctrl-C) or still running has metrics
    and no summary.json: left out of the table, with a line that names it."""
    root = tmp_path / "some"
    shutil.copytree(runs / "outputs" / "demo-a0.5-s0", root / "finished")
    shutil.copytree(runs / "outputs" / "demo-a0.5-s1", root / "killed")
    (root / "killed" / "summary.json").unlink()
    proc = compare(runs, f"runs={root}", "out=some_out")
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.count("warning:") == 1
    assert f"warning: {root / 'killed'}: no summary.json" in proc.stderr
    assert read_csv(runs / "some_out" / "table.csv")[0]["n"] == "1"
    proc = compare(runs, f"runs={root / 'finished'}", "out=some_out")
    assert proc.returncode == 0 and "warning" not in proc.stderr, proc.stderr
    # a killed run the filters would not have chosen is not worth a line
    proc = compare(runs, f"runs={root}", "seed=0", "out=some_out")
    assert proc.returncode == 0 and "warning" not in proc.stderr, proc.stderr


def test_compare_titles_its_plot_with_the_filters_or_else_the_groups(runs):
    from dqn_harness.comparing.comparison import plot_title
    from dqn_harness.comparing.runs import find_runs

    found, _ = find_runs([runs / "outputs"])
    assert plot_title([], found, None) == "demo, other (7 runs)"  # was "(no filters)"
    demo = [r for r in found if r.group == "demo"]
    assert plot_title(["group=demo"], demo, 3600.0) == "group=demo, as they stood after 3600 s"
    assert plot_title([], demo[:1], None) == "demo (1 run)"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("group=nope",), "no runs match group=nope"),
        (("group=demo", "algo.alpha=0.3"), "no runs match"),
        (("optim.nope=1",), "optim.nope: no run under"),
        (("by=nope",), "by: no run has config key 'nope'"),
        (("runs=missing",), "runs: 'missing' is not a directory"),
        (("group",), "expected key=value"),
        (("group=demo", "budget_s=0"), "budget_s: must be seconds > 0, got '0'"),
    ],
)
def test_compare_refuses_with_one_line(runs, args, message):
    proc = compare(runs, *args)
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: ") and message in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr
    if args == ("group=nope",):
        assert "groups: demo, other" in proc.stderr  # says what there is instead


def test_compare_at_a_wall_time_budget_cuts_each_run_where_its_clock_passed_it(runs):
    """budget_s=S: curve, final/best eval, solved and agent steps as they stood after S seconds."""
    run_dir = runs / "outputs" / "demo-a0.5-s0"
    walls = read_metrics(run_dir, "perf/wall_s")
    evals = read_metrics(run_dir, "eval/return_mean")
    assert len(walls) >= 6 and [s for s, _ in evals] == [3000, 6000, 9000, 12000]
    # a budget between the logs at 7,000 and 8,000 agent steps
    (s0, t0), (s1, t1) = next(p for p in pairwise(walls) if p[0][0] == 7000)
    budget = (t0 + t1) / 2
    proc = compare(runs, "group=demo", "algo.alpha=0.5", "seed=0", f"budget_s={budget}", "out=b")
    assert proc.returncode == 0, proc.stderr
    row = read_csv(runs / "b" / "runs.csv")[0]
    assert int(row["env_steps"]) == pytest.approx((s0 + s1) / 2, abs=1)
    assert float(row["wall_s"]) == pytest.approx(budget)
    assert float(row["eval_return_mean"]) == pytest.approx(evals[1][1])  # the one at 6,000
    assert float(row["best_eval_return"]) == pytest.approx(max(evals[0][1], evals[1][1]))
    full = summaries(runs, "demo-a0.5-s0")[0]
    solved_at = full["solved_at_step"]
    if solved_at is not None and solved_at <= 6000:
        assert row["status"] == "solved" and row["solved_at_step"] == str(solved_at)
    else:
        assert row["status"] == f"at {budget:g} s" and row["solved_at_step"] == ""
    # a budget past the run's end changes nothing
    proc = compare(runs, "group=demo", "algo.alpha=0.5", "seed=0", "budget_s=1e6", "out=all")
    assert proc.returncode == 0, proc.stderr
    row = read_csv(runs / "all" / "runs.csv")[0]
    assert int(row["env_steps"]) == full["env_steps"] and row["status"] == full["status"]


def test_wandb_run_has_step_metric_group_job_type_and_tags(runs):
    s = summaries(runs, "demo-a0.1-s0")[0]
    records = wandb_records(Path(s["wandb_run_dir"]))
    run = next(r["run"] for r in records if r["type"] == "run")
    assert run["run_group"] == "demo" and run["job_type"] == "train"
    assert set(run["tags"]) == {"exp1", "frozenlake", "tabular"}
    assert run["config"]["update"]["algo.alpha"] == 0.1  # flat hyperparameters
    step_of: dict[str, str] = {}
    for r in records:
        if r["type"] == "metric":
            m = r["metric"]
            step_of[m.get("name") or m.get("glob_name")] = m.get("step_metric", "")
    # agent steps are the x-axis of everything (the last "*" replaces Lightning's global_step)
    assert "env_steps" in step_of
    for glob in ("*", "train/*", "eval/*", "perf/*"):
        assert step_of[glob] == "env_steps", glob
    history = [r for r in records if r["type"] == "history"]
    assert history and all("env_steps" in json.dumps(h) for h in history)


def test_eval_video_is_saved_and_logged(tmp_path):
    run_dir = tmp_path / "run"
    proc = run_train(
        "env=cartpole",
        "total_steps=3000",
        "learning_starts=500",
        "eval.every=1000",
        "eval.episodes=2",
        "eval.video=true",
        "eval.video_every=2",
        "logger=wandb",
        f"logger.save_dir={tmp_path}",
        f"hydra.run.dir={run_dir}",
        *QUIET,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["evaluations"] == 3
    videos = sorted((run_dir / "videos").glob("*.gif"))
    # evaluations 1 and 3 of 3 (every 2nd, starting with the first)
    assert [v.name for v in videos] == ["eval-000001000.gif", "eval-000003000.gif"]
    for video in videos:
        with Image.open(video) as im:
            assert im.size == (600, 400) and im.n_frames > 5  # CartPole's rendered screen
    wandb_dir = Path(summary["wandb_run_dir"])
    logged = sorted(wandb_dir.glob("files/media/videos/eval/*.gif"))
    assert len(logged) == 2
    assert sorted(p.stat().st_size for p in logged) == sorted(v.stat().st_size for v in videos)
    # the filmed episode's seconds are logged at the evaluations that film, and counted in that
    # evaluation's cost (one clock, which the progress bar reads too)
    walls = dict(read_metrics(run_dir, "eval/wall_s"))
    filmed = dict(read_metrics(run_dir, "eval/video_s"))
    assert sorted(walls) == [1000, 2000, 3000] and sorted(filmed) == [1000, 3000], filmed
    assert all(0 < seconds < walls[step] for step, seconds in filmed.items()), (walls, filmed)


def test_iqm_and_bootstrap_interval():
    values = np.array([0.0, 1.0, 2.0, 3.0, 100.0, -50.0, 4.0, 5.0])
    # sorted: -50 0 1 2 3 4 5 100 -> drop two from each end -> mean(1, 2, 3, 4)
    assert iqm(values) == pytest.approx(2.5)
    point, low, high = aggregate(values, np.random.default_rng(0))
    assert point == pytest.approx(2.5) and low < point < high
    point, low, high = aggregate(np.array([1.0, 2.0, 3.0]), np.random.default_rng(0))
    assert point == pytest.approx(2.0) and 1.0 <= low < 2.0 < high <= 3.0  # mean below 5 seeds
    assert aggregate(np.array([7.0]), np.random.default_rng(0)) == (7.0, 7.0, 7.0)


def short_frozenlake(root: Path, name: str, *args: str) -> None:
    """A 2,000-step tabular FrozenLake run under ``root/outputs/name``."""
    proc = run_train(
        "algo=tabular",
        "env=frozenlake",
        "total_steps=2000",
        "eval.every=1000",
        "eval.episodes=20",
        "logger=none",
        *args,
        *QUIET,
        f"hydra.run.dir={root}/outputs/{name}",
        cwd=root,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]


def test_compare_refuses_to_mix_evaluation_protocols_unless_asked(tmp_path):
    """Two FrozenLake runs evaluated at different epsilons measure different things: one table
    of both is refused, naming what differs, until mix_protocols=true."""
    for epsilon in (0.0, 0.2):
        short_frozenlake(tmp_path, f"eps{epsilon}", f"eval.epsilon={epsilon}")
    proc = compare(tmp_path, "env=frozenlake", "out=mixed")
    assert proc.returncode == 2 and proc.stderr.startswith("error: protocol: ")
    assert "eval.epsilon 0.0 vs 0.2" in proc.stderr and len(proc.stderr.splitlines()) == 1
    proc = compare(tmp_path, "env=frozenlake", "eval.epsilon=0.0", "out=one")
    assert proc.returncode == 0, proc.stderr  # one protocol at a time is fine
    proc = compare(tmp_path, "env=frozenlake", "mix_protocols=true", "out=mixed")
    assert proc.returncode == 0, proc.stderr
    assert len(read_csv(tmp_path / "mixed" / "table.csv")) == 2


def test_source_evaluate_refuses_results_scored_under_different_settings(tmp_path):
    """compare.py source=evaluate tables evaluate.py's results: two results scored with
    different episode caps (or epsilons) measure different things, so the table is refused
    with the key that differs, as for training's own evaluations, until mix_protocols=true."""
    for seed in (0, 1):
        short_frozenlake(tmp_path, f"s{seed}", f"seed={seed}")

    def score(seed: int, *args: str) -> None:
        run = f"run={tmp_path}/outputs/s{seed}"
        proc = run_cli("evaluate.py", run, "episodes=10", "logger=none", *args, cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr[-2000:]

    score(0)
    score(1, "env.max_episode_steps=50")
    proc = compare(tmp_path, "env=frozenlake", "source=evaluate", "out=cmp")
    assert proc.returncode == 2 and proc.stderr.startswith("error: source: "), proc.stderr
    assert "env.max_episode_steps None vs 50" in proc.stderr, proc.stderr
    assert len(proc.stderr.splitlines()) == 1
    proc = compare(tmp_path, "env=frozenlake", "source=evaluate", "mix_protocols=true", "out=mix")
    assert proc.returncode == 0, proc.stderr
    score(1, "epsilon=0.2")  # the newest result is the one compared
    proc = compare(tmp_path, "env=frozenlake", "source=evaluate", "out=cmp")
    assert proc.returncode == 2 and "eval.epsilon 0.0 vs 0.2" in proc.stderr, proc.stderr
    score(1)
    proc = compare(tmp_path, "env=frozenlake", "source=evaluate", "out=cmp")
    assert proc.returncode == 0, proc.stderr
    assert len(read_csv(tmp_path / "cmp" / "runs.csv")) == 2


@pytest.mark.parametrize(
    "policy, expected",
    [("all", {"best", "last"}), ("last", {"last"}), ("best", {"best"})],
)
def test_checkpoints_become_wandb_artifacts_read_back_from_the_offline_run(
    tmp_path, policy, expected
):
    """logger.log_model: the checkpoints are versions of the run's model artifact, staged in
    the offline run (what `wandb sync` uploads), with their alias, agent step, evaluation
    return and protocol. The steps and returns are checked against the evaluations the run
    logged to metrics.jsonl: each version is labelled with the step of the evaluation that
    wrote it (a DQN run, where the collector is a batch ahead of that step)."""
    run_dir = tmp_path / "run"
    proc = run_train(
        "env=cartpole",
        "total_steps=2000",
        "learning_starts=300",
        "eval.every=500",
        "eval.episodes=3",
        "eval.stop_on_solve=false",
        "logger=wandb",
        f"logger.log_model={policy}",
        f"logger.save_dir={tmp_path}",
        f"hydra.run.dir={run_dir}",
        *QUIET,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    summary = json.loads((run_dir / "summary.json").read_text())
    evals = [
        (r["env_steps"], r["eval/return_mean"])
        for r in map(json.loads, (run_dir / "metrics.jsonl").read_text().splitlines())
        if "eval/return_mean" in r
    ]
    assert [s for s, _ in evals] == [500, 1000, 1500, 2000]
    new_bests, best = [], None
    for step, mean in evals:
        if best is None or mean > best:
            new_bests.append((step, mean))
            best = mean
    records = wandb_records(Path(summary["wandb_run_dir"]))
    artifacts = [r["artifact"] for r in records if r.get("type") == "artifact"]
    assert artifacts and all(a["type"] == "model" for a in artifacts)
    aliases = {alias for a in artifacts for alias in a["aliases"]}
    assert aliases >= expected and not ({"best", "last"} - expected) & aliases
    versions = {"best": [], "last": []}
    for art in artifacts:
        meta = json.loads(art["metadata"])
        assert meta["protocol"] == "preset" and meta["env"] == "CartPole-v1"
        [kind] = {"best", "last"} & set(art["aliases"])
        [step_alias] = [a for a in art["aliases"] if a.startswith("step-")]
        step = int(step_alias.removeprefix("step-"))
        versions[kind].append((step, meta["eval_return"]))
        [content] = art["manifest"]["contents"]
        assert content["path"] == f"{kind}.pt"
        # the file as staged for upload: data only, labelled with that evaluation's step
        staged = torch.load(content["local_path"], weights_only=True)
        assert staged["env_steps"] == step and "q_net" in staged
    if "best" in expected:  # a version at each new best evaluation: its step, its return
        assert versions["best"] == new_bests
    if policy == "all":  # every evaluation wrote last.pt, and the final one again
        assert [s for s, _ in versions["last"]] == [s for s, _ in evals] + [2000]
    if policy == "last":  # the final last.pt only
        assert versions["last"] == [evals[-1]]


def test_plot_screening_draws_recorded_curves_and_refuses_an_unknown_config(tmp_path):
    """experiments/plot_screening.py over the recorded screening files (committed data)."""
    base = ROOT / "experiments/results/pong_screening"
    out = tmp_path / "s.png"
    ok = subprocess.run(
        [sys.executable, str(ROOT / "experiments/plot_screening.py"), str(out)]
        + [
            f"a={base}/short_eps/curves.csv",
            f"b={base}/round2/curves.csv#algo.n_step=10 algo.augment=none",
        ],
        capture_output=True,
        text=True,
    )
    assert ok.returncode == 0, ok.stderr[-2000:]
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    bad = subprocess.run(
        [sys.executable, str(ROOT / "experiments/plot_screening.py"), str(out)]
        + [f"a={base}/round2/curves.csv#no such config"],
        capture_output=True,
        text=True,
    )
    assert bad.returncode == 2 and "no per-seed curves there" in bad.stderr
