"""One command contract for train.py, evaluate.py, sweep.py and compare.py, run as a user runs
them: --help/-h prints usage and exits 0, bad input is one `error: <key>: <problem>` line and
exit 2 without a traceback, whichever step refused it; and the layout stays within its limits."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest
import torch

from tests.conftest import ROOT, run_cli, run_train

TOOLS = ("train.py", "evaluate.py", "sweep.py", "compare.py", "export.py")


@pytest.mark.parametrize("flag", ["--help", "-h"])
@pytest.mark.parametrize("tool", TOOLS)
def test_help_prints_usage_and_exits_0(tool, flag, tmp_path):
    proc = run_cli(tool, flag, cwd=tmp_path, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.startswith(f"usage: python {tool}"), proc.stdout[:300]
    assert proc.stderr.strip() == "" or "Traceback" not in proc.stderr


def _one_error_line(proc, key: str) -> str:
    assert proc.returncode == 2, (proc.returncode, proc.stdout[-1000:], proc.stderr[-2000:])
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert lines[0].startswith(f"error: {key}: "), lines[0]
    return lines[0]


@pytest.mark.parametrize(
    "tool, args, key",
    [
        ("train.py", ["env=cartpole", "algo.gamma=1.5"], "algo.gamma"),  # range, at validate
        ("train.py", ["env=cartpole", "algo.name=sarsa"], "algo.name"),  # a choice, at compose
        ("train.py", ["resume=/nonexistent/run"], "resume"),  # reading a checkpoint
        ("train.py", ["env=pong", "protocol=dopamine"], "protocol"),  # an unknown protocol
        ("train.py", ["env=cartpole", "trust_checkpoint=maybe"], "trust_checkpoint"),  # a type
        ("evaluate.py", ["protocol=dopamine", "run=/nonexistent"], "protocol"),  # unknown
        ("evaluate.py", ["trust_checkpoint=yes", "run=/x"], "trust_checkpoint"),  # true|false
        ("evaluate.py", ["run"], "run"),  # parsing
        ("evaluate.py", ["run=/nonexistent/run"], "run"),  # finding the checkpoint
        ("evaluate.py", ["episodes=0", "run=/nonexistent"], "episodes"),  # a number
        ("sweep.py", ["sweep=no_such_sweep"], "sweep"),  # loading the spec
        ("sweep.py", ["sweep=frozenlake_tabular", "n_trials=0"], "n_trials"),  # checking it
        ("compare.py", ["group"], "group"),  # parsing
        ("compare.py", ["runs=/nonexistent"], "runs"),  # finding runs
        ("compare.py", ["normalize=atari"], "normalize"),  # an option's value
        ("export.py", ["out=x"], "run"),  # a missing option
        ("export.py", ["run=/nonexistent", "out=x"], "run"),  # finding the checkpoint
        ("export.py", ["run=r", "out=x", "video=maybe"], "video"),  # true|false
    ],
)
def test_bad_input_is_one_line_naming_the_key_in_every_tool(tool, args, key, tmp_path):
    _one_error_line(run_cli(tool, *args, cwd=tmp_path, timeout=300), key)


def test_evaluate_refuses_a_bad_logger_only_after_loading_and_still_one_line(tmp_path):
    """A refusal from late in evaluate.py (after the checkpoint is read) obeys the contract."""
    train = run_train(
        "algo=tabular", "env=frozenlake", "total_steps=2000", "logger=none", cwd=tmp_path
    )
    assert train.returncode == 0, train.stderr[-2000:]
    run_dir = next((tmp_path / "outputs").iterdir())
    proc = run_cli("evaluate.py", f"run={run_dir}", "logger=csv", cwd=tmp_path)
    _one_error_line(proc, "logger")
    assert not list(run_dir.glob("eval-*.json"))  # nothing was written for a refused call


def test_target_sync_lives_with_the_algorithm(compose_config):
    """Choosing an epsilon schedule changes exploration only (it used to move the sync too)."""
    base = compose_config("env=cartpole", "run_name=x")
    for schedule in ("exponential", "fast", "atari", "classic"):
        cfg = compose_config("env=cartpole", f"schedule={schedule}", "run_name=x")
        assert cfg.algo.target_sync == base.algo.target_sync == 500
        assert "target_sync" not in cfg.schedule
    # env=pong syncs every 2,000 agent steps: 1,000 of its updates, one per 2 agent steps
    assert compose_config("env=pong", "run_name=x").algo.target_sync == 2000


def test_old_target_sync_key_and_checkpoints_name_the_new_key(tmp_path):
    """schedule.target_sync is refused naming algo.target_sync, on the command line and in a
    checkpoint written before the move; that checkpoint's best.pt still scores."""
    proc = run_train("env=cartpole", "schedule.target_sync=100", cwd=tmp_path)
    assert "algo.target_sync" in _one_error_line(proc, "schedule.target_sync")

    train = run_train(
        "algo=tabular", "env=frozenlake", "total_steps=2000", "logger=none", cwd=tmp_path
    )
    assert train.returncode == 0, train.stderr[-2000:]
    run_dir = next((tmp_path / "outputs").iterdir())
    for name in ("state.pt", "best.pt"):  # as the harness wrote them before the move
        path = run_dir / "checkpoints" / name
        data = torch.load(path, weights_only=True)
        data["config"]["schedule"]["target_sync"] = data["config"]["algo"].pop("target_sync")
        torch.save(data, path)
    proc = run_train(f"resume={run_dir}", cwd=tmp_path)
    assert "algo.target_sync" in _one_error_line(proc, "schedule.target_sync")
    proc = run_cli("evaluate.py", f"run={run_dir}", "episodes=5", "logger=none", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(next(run_dir.glob("eval-best-*.json")).read_text())
    assert len(result["returns"]) == 5


def _sources() -> list[Path]:
    return sorted((ROOT / "src" / "dqn_harness").rglob("*.py"))


def test_no_source_file_over_350_lines_and_no_function_over_60():
    """The layout's own limits (issue 23): a file or function past them has more than one job."""
    long_files = {}
    long_functions = {}
    for path in _sources():
        text = path.read_text()
        name = str(path.relative_to(ROOT))
        if len(text.splitlines()) > 350:
            long_files[name] = len(text.splitlines())
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1  # type: ignore[operator]
                if length > 60:
                    long_functions[f"{name}:{node.name}"] = length
    assert not long_files and not long_functions, (long_files, long_functions)


def test_no_two_module_functions_share_a_name():
    """One name, one meaning: two module-level functions of one name in src/ (as run_config,
    _get, parse_args and plot once were) make a reader guess which one is meant."""
    seen: dict[str, list[str]] = {}
    for path in _sources():
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.FunctionDef):
                seen.setdefault(node.name, []).append(str(path.relative_to(ROOT)))
    shared = {name: where for name, where in seen.items() if len(where) > 1}
    assert not shared, shared
