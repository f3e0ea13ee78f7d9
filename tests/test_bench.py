"""The benchmarks run and print their figures (checked for content, not timing)."""

from __future__ import annotations

import json
import subprocess
import sys

from .conftest import ROOT


def run_bench(script: str, *args: str) -> subprocess.CompletedProcess:
    """One benchmark script of experiments/bench/, as a user runs it; it must succeed."""
    proc = subprocess.run(
        [sys.executable, str(ROOT / "experiments/bench" / script), *args],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc


def test_update_cost_prints_flops_peak_and_ratios():
    import torch

    # --python: the same updates under another interpreter (here this one, to check the wiring)
    proc = run_bench(
        "update_cost.py", "--updates", "3", "--repeats", "1", "--python", sys.executable
    )
    lines = proc.stdout.splitlines()
    from dqn_harness.perf import cpu_description, native_bf16

    assert lines[0].startswith(cpu_description() + ": ")  # the CPU named first (model, AMX)
    assert f"torch {torch.__version__}," in lines[0]
    assert "matmul peak fp32" in lines[0] and "bf16" in lines[0]
    header = lines[1] if native_bf16() else lines[2]
    assert "GFLOP/s" in header and "% peak" in header and "range" in header
    data = json.loads(lines[-1])
    assert data["cpu"] == cpu_description()
    assert data["peak_gflops"]["fp32"] > 0 and data["peak_gflops"]["bf16"] > 0
    variants = data["variants"]
    version = torch.__version__
    bf16 = {"bf16 update", "bf16 batch 64 / 8 steps", "bf16 update (74f65d5)"}
    bf16 |= {"bf16 + half input path", "bf16 + bf16 target copy", f"bf16 update [torch {version}]"}
    assert {"harness fp32", "fp32 batch 64 / 8 steps", f"harness fp32 [torch {version}]"} <= set(
        variants
    )
    if native_bf16():
        assert bf16 <= set(variants)
    else:  # emulated bf16 (~1 GFLOP/s) would take minutes per variant; a line says so
        assert not bf16 & set(variants), variants
        assert lines[1].startswith("  bf16 variants skipped: no native bf16 here"), lines[1]
    # which oneDNN kernels the bf16 convolutions ran (pytorch/pytorch#183815's slow paths)
    prefix = f"torch {version} bf16 convolution kernels (oneDNN): forward_training: "
    if native_bf16():  # elsewhere torch skips oneDNN for bf16 entirely
        assert sum(prefix in x for x in lines) == 1, lines  # once per torch release
        assert data["bf16_conv_kernels"][version].get("forward_training"), data
    else:
        assert not any(prefix in x for x in lines) and data["bf16_conv_kernels"] == {}
    # a batch-32 Nature-CNN update is 2.18 GFLOP (forward of target and online nets, backward)
    assert abs(variants["harness fp32"]["update_gflop"] - 2.18) < 0.01
    assert abs(variants["fp32 batch 64 / 8 steps"]["update_gflop"] - 4.37) < 0.01
    assert all(v["update_ms"] > 0 and v["act_ms"] > 0 for v in variants.values())
    # each median sits inside the spread printed beside it (one process per variant here)
    spread = data["update_ms_range"]
    assert set(spread) == set(variants)
    assert all(lo <= variants[n]["update_ms"] <= hi for n, (lo, hi) in spread.items()), spread


def test_switch_cost_runs_every_variant_through_the_harness_and_prints_ratios():
    proc = run_bench("switch_cost.py", "--steps", "60", "--warmup", "100", "--repeats", "1")
    data = json.loads(proc.stdout.splitlines()[-1])
    med = data["median_sps"]
    assert set(med) == {
        "base (1-step DQN)",
        "+ double",
        "+ dueling",
        "+ 3-step",
        "+ prioritized",
        "env=pong (4-step)",
        "rainbow_lite (all four)",
    }
    assert all(v > 0 for v in med.values())
    assert "| rainbow_lite (all four) |" in proc.stdout and "| 1.00x |" in proc.stdout


def test_train_throughput_times_env_pong_against_its_isolated_update_cycle():
    """Issue 24: the full harness within 1.2x of its isolated update cycle, measured in one
    command; checked here for what it prints (the CPU first, both sides, the ratio, the
    profile of the real loop), not for the timing."""
    proc = run_bench(
        "train_throughput.py",
        *("--preset", "pong", "--steps", "500", "--warmup", "500", "--repeats", "1", "--profile"),
    )
    from dqn_harness.perf import cpu_description

    lines = proc.stdout.splitlines()
    assert lines[0].startswith(cpu_description() + ": env=pong through the harness")
    assert any(x.startswith("median: harness ") and "harness / isolated" in x for x in lines)
    assert any(x.startswith("profile of one harness run") for x in lines)
    data = json.loads(lines[-1])
    assert len(data["harness_ms"]) == len(data["isolated_ms"]) == 1
    assert data["ratio"] == data["harness_ms"][0] / data["isolated_ms"][0] > 0


def test_denormals_times_a_real_checkpoints_update_with_and_without_flushing(tmp_path):
    """bench/denormals.py from a real env=pong checkpoint (100 updates): the CPU first, the
    checkpoint's subnormal counts, both modes' parts and their ratios, and the flushed
    processes' probe finding every thread flushing; a missing checkpoint is one line, exit 2."""
    from .conftest import run_train

    run_dir = tmp_path / "run"
    proc = run_train(
        "env=pong",
        "total_steps=600",
        "learning_starts=500",
        "eval.every=100000",
        "eval.episodes=1",
        "logger=none",
        "progress=false",
        f"hydra.run.dir={run_dir}",
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    checkpoint = str(run_dir / "checkpoints" / "last.pt")
    proc = run_bench("denormals.py", "--checkpoint", checkpoint, "--updates", "2", "--repeats", "1")
    from dqn_harness.perf import cpu_description

    lines = proc.stdout.splitlines()
    assert lines[0].startswith(cpu_description() + ": nips_cnn update from ")  # env=pong's net
    assert "(agent step 600)" in lines[0]
    assert [x.split(":")[0].strip() for x in lines[1:4]] == [
        "subnormal weights",
        "subnormal exp_avg",
        "subnormal exp_avg_sq",
    ]
    assert any(x.strip().startswith("off / flushed:") for x in lines)
    assert not any("warning" in x for x in lines), lines
    data = json.loads(lines[-1])
    assert data["cpu"] == cpu_description()
    import torch

    weights = torch.load(run_dir / "checkpoints" / "last.pt", weights_only=True)["q_net"]
    n_weights = sum(t.numel() for t in weights.values())  # the checkpoint's own network
    assert data["subnormals"]["weights"][1] == data["subnormals"]["exp_avg"][1] == n_weights
    for mode in ("false", "true"):
        parts = data["median_ms"][mode]
        assert all(parts[p] > 0 for p in ("forward", "backward", "clip", "adam"))
        total = sum(parts[p] for p in ("forward", "backward", "clip", "adam"))
        assert abs(parts["update"] - total) < 1e-6
    missing = subprocess.run(
        [sys.executable, str(ROOT / "experiments/bench/denormals.py")]
        + ["--checkpoint", str(tmp_path / "nope.pt")],
        capture_output=True,
        text=True,
    )
    assert missing.returncode == 2 and missing.stdout == ""
    assert missing.stderr.strip() == f"error: --checkpoint: no such file: {tmp_path / 'nope.pt'}"


def test_priority_cost_names_the_cpu_and_checks_both_write_paths_agree():
    from dqn_harness.perf import cpu_description

    proc = run_bench("priority_cost.py", "--capacity", "5000", "--repeats", "1", "--writes", "500")
    lines = proc.stdout.splitlines()
    assert lines[0] == f"{cpu_description()}: prioritized replay, 5,000-slot ring"
    assert "leaf by leaf" in lines[1] and "level by level" in lines[1]
    assert lines[1].endswith("the trees are equal")
    data = json.loads(lines[-1])
    assert data["cpu"] == cpu_description()
    assert data["write_leaf_us"][0] > 0 and data["write_level_us"][0] > 0
    assert data["update_us"][0] > 0
