"""Where a Nature-CNN update's time goes on CPU, how much of the machine it uses, and what helps.

    .venv/bin/python experiments/bench/update_cost.py [--updates 200] [--repeats 3] [--compile]

One *update cycle* is what DQN does per gradient step: one update (target forward on next_obs,
online forward and backward on obs, Adam step; uint8 4x84x84 frames) and the ``train_freq``
batch-1 acting forwards of the agent steps between two updates. Each variant runs in a fresh
subprocess (the allocator setting is process-wide), variants interleaved over ``--repeats``
rounds, medians reported, ratios against the harness's fp32 update from the same command.

The first line names the CPU (model, cores, AVX512-BF16, AMX): the same update differs by 2x
between this project's machines. Where the CPU has no native bf16 (an AVX2-only EPYC, seen
2026-12-02), bf16 is emulated at ~1 GFLOP/s and the harness trains in fp32: the bf16 variants
are skipped and a line says why. For each variant it prints the FLOPs of one update
(``torch.utils.flop_counter.FlopCounterMode``: matrix multiplies and convolutions, forward and
backward), the achieved GFLOP/s, and that as a fraction of the machine's peak, measured in the
same process tree with a 2048x2048 matrix multiply in fp32 and in bf16 (256x256 where bf16 is
emulated) on the same threads. The
cost that matters for training is per *agent step*: (update + train_freq acting forwards) /
train_freq.

Variants:
- default: per-tensor Adam, NCHW, glibc's allocator thresholds, torch's ``clip_grad_norm_``
  (a single-file DQN's settings);
- harness fp32: fused Adam, NHWC, ``tune_allocator``, the update's own gradient clip
  (``dqn_harness.dqn.clip``: no rescale when under the limit) (``trainer.precision=32-true``);
- bf16 update (74f65d5): the update under ``torch.autocast("cpu", torch.bfloat16)`` with fp32
  master weights, TD target and loss (``trainer.precision=bf16-mixed``) as it was until
  2026-12-01: frames uint8 -> fp32 -> /255 -> NHWC -> bf16, the fp32 target net cast per update;
- bf16 + half input path: frames uint8 -> bf16 NHWC in one copy, 1/255 folded into conv1;
- bf16 + bf16 target copy: the target net kept in bf16 (``DQN.frozen_target``);
- bf16 update: both, as the harness runs it now; acting stays fp32;
- bf16 update + acting: acting forwards under autocast too;
- batch 64 every 8: the same samples per agent step in half the updates (fp32 and bf16);
- nips_cnn bf16 update: +experiment=pong_nips's network, one update per agent step;
- ``--compile``: the update's networks through ``torch.compile`` (slow to start; off by default);
- ``--python PATH``: the harness fp32 and bf16 updates again under another interpreter, e.g. a
  scratch venv with another torch release (pytorch/pytorch#183815 reports a CPU bf16
  convolution regression in 2.13), labelled with its torch version; it needs torch, numpy and
  gymnasium (``dqn_harness.nets`` imports it) and runs this checkout's ``src``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "src"))

from dqn_harness.perf import cpu_description, native_bf16  # noqa: E402

HARNESS = dict(fused=True, channels_last=True, allocator=True, harness_clip=True)
VARIANTS: dict[str, dict] = {
    "default": dict(fused=False, channels_last=False, allocator=False),
    "harness fp32": dict(HARNESS),
    "bf16 update (74f65d5)": dict(HARNESS, bf16=True, legacy_input=True),
    "bf16 + half input path": dict(HARNESS, bf16=True),
    "bf16 + bf16 target copy": dict(HARNESS, bf16=True, legacy_input=True, half_target=True),
    "bf16 update": dict(HARNESS, bf16=True, half_target=True),
    "bf16 update + acting": dict(HARNESS, bf16=True, bf16_act=True),
    "fp32 batch 64 / 8 steps": dict(HARNESS, batch=64, train_freq=8),
    "bf16 batch 64 / 8 steps": dict(HARNESS, bf16=True, batch=64, train_freq=8),
    # +experiment=pong_nips's network: the NIPS-2013 one (two convolutions, 256 dense units)
    "nips_cnn bf16 update": dict(
        HARNESS, bf16=True, half_target=True, model="nips_cnn", hidden=[256], train_freq=1
    ),
}
BASELINE = "harness fp32"

CHILD = r"""
import contextlib, copy, json, sys, time
sys.path.insert(0, {src!r})
opts = json.loads({opts!r})
if opts["allocator"]:
    from dqn_harness.perf import tune_allocator
    assert tune_allocator()
import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode
from dqn_harness.nets import CONVS, NatureCNN
from dqn_harness.dqn.clip import clip_grad_norm
torch.manual_seed(0)
B, K = opts.get("batch", 32), opts.get("train_freq", 4)
obs = torch.randint(0, 256, (B, 4, 84, 84), dtype=torch.uint8)
nxt = torch.randint(0, 256, (B, 4, 84, 84), dtype=torch.uint8)
act = torch.randint(0, 6, (B,))
rew = torch.randn(B)
if opts.get("legacy_input"):  # the forward before the 16-bit input path (commit 74f65d5)
    def legacy(self, obs):
        x = (obs.float() / 255.0).contiguous(memory_format=self.memory_format)
        return self.head(self.trunk(x))
    NatureCNN.forward = legacy
net = NatureCNN(4, 6, hidden=opts.get("hidden", [512]), channels_last=opts["channels_last"],
                convs=CONVS[opts.get("model", "nature_cnn")])
target = copy.deepcopy(net)
if opts.get("half_target"):  # what DQN.frozen_target hands the update under bf16 autocast
    target = target.to(torch.bfloat16)
opt = torch.optim.Adam(net.parameters(), lr=1e-4, eps=1e-8, fused=opts["fused"])
params = list(net.parameters())
one = obs[:1].clone()
bf16 = lambda on: torch.autocast("cpu", dtype=torch.bfloat16) if on else contextlib.nullcontext()
online, frozen = net, target
if opts.get("compile"):
    online, frozen = torch.compile(net), torch.compile(target)

def update():
    with bf16(opts.get("bf16")):
        with torch.no_grad():
            y = rew + 0.99 * frozen(nxt).float().max(1).values
        q = online(obs).float().gather(1, act[:, None]).squeeze(1)
        loss = F.smooth_l1_loss(q, y)
    opt.zero_grad()
    loss.backward()
    if opts.get("harness_clip"):  # the update's own clip (no rescale when under the limit)
        clip_grad_norm(params, 10.0)
    else:
        torch.nn.utils.clip_grad_norm_(params, 10.0)
    opt.step()

def acting():
    with torch.no_grad(), bf16(opts.get("bf16_act")):
        net(one).argmax(1)

for _ in range(5):
    update()
with FlopCounterMode(display=False) as fc:
    update()
update_flops = fc.get_total_flops()
with FlopCounterMode(display=False) as fc:
    acting()
act_flops = fc.get_total_flops()
updates, acts = [], []
for i in range({updates}):
    t = time.perf_counter()
    update()
    updates.append(time.perf_counter() - t)
    for _ in range(K):
        t = time.perf_counter()
        acting()
        acts.append(time.perf_counter() - t)
med = lambda xs: sorted(xs)[len(xs) // 2]
print(json.dumps({{"update_ms": 1e3 * med(updates), "act_ms": 1e3 * med(acts), "train_freq": K,
                   "batch": B, "update_gflop": update_flops / 1e9, "act_gflop": act_flops / 1e9}}))
"""

PEAK = r"""
import json, time, torch
out = {{}}
# bf16 on a CPU without native bf16 is emulated (~1 GFLOP/s on an AVX2-only EPYC): a smaller
# matrix there, so the peak line still says what bf16 would cost without taking minutes
for name, dtype, n in (("fp32", torch.float32, 2048), ("bf16", torch.bfloat16, {bf16_n})):
    a = torch.randn(n, n).to(dtype)
    b = torch.randn(n, n).to(dtype)
    for _ in range(3):
        a @ b
    times = []
    for _ in range(10):
        t = time.perf_counter()
        a @ b
        times.append(time.perf_counter() - t)
    out[name] = 2 * n**3 / sorted(times)[len(times) // 2] / 1e9
out["threads"] = torch.get_num_threads()
print(json.dumps(out))
"""


KERNELS = r"""
import sys
sys.path.insert(0, {src!r})
import torch
from dqn_harness.nets import NatureCNN
net = NatureCNN(4, 6, channels_last=True)
obs = torch.randint(0, 256, (32, 4, 84, 84), dtype=torch.uint8)
for _ in range(2):
    with torch.autocast("cpu", dtype=torch.bfloat16):
        net(obs).float().square().mean().backward()
"""


def run_code(code: str, python: str = sys.executable, env: dict | None = None) -> str:
    """Run ``code`` in a fresh ``python`` process and return what it printed."""
    out = subprocess.run([python, "-c", code], capture_output=True, text=True, check=True, env=env)
    return out.stdout


def child(code: str, python: str = sys.executable) -> dict:
    return json.loads(run_code(code, python).strip().splitlines()[-1])


def torch_version(python: str = sys.executable) -> str:
    """The torch release an interpreter imports (variants are labelled with it)."""
    return run_code("import torch; print(torch.__version__)", python).strip()


def conv_kernels(python: str = sys.executable) -> dict[str, list[str]]:
    """oneDNN's implementation for each bf16 convolution pass of the Nature CNN
    (``ONEDNN_VERBOSE=1``). pytorch/pytorch#183815 reports bf16 convolutions in torch 2.13 that
    fall to slow reference kernels (``ref:any``, or no oneDNN call at all) on some shapes and
    CPUs: if these shapes were hit, a pass would show ``ref`` or be missing here."""
    import os

    env = dict(os.environ, ONEDNN_VERBOSE="1")
    code = KERNELS.format(src=str(ROOT / "src"))
    found: dict[str, set[str]] = {}
    for line in run_code(code, python, env).splitlines():
        cols = line.split(",")
        if len(cols) > 7 and cols[3] == "exec" and cols[5] == "convolution":
            found.setdefault(cols[7], set()).add(cols[6])
    return {k: sorted(v) for k, v in found.items()}


def per_agent_step_ms(m: dict[str, float]) -> float:
    """ms per agent step of a measured cycle: one update shared by its ``train_freq`` agent
    steps, plus an acting forward at each of them (what a training run pays per agent step)."""
    return (m["update_ms"] + m["train_freq"] * m["act_ms"]) / m["train_freq"]


def measure(opts: dict, updates: int) -> dict[str, float]:
    code = CHILD.format(src=str(ROOT / "src"), opts=json.dumps(opts), updates=updates)
    return child(code, python=opts.get("python", sys.executable))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--updates", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--compile", action="store_true", help="add torch.compile variants")
    parser.add_argument(
        "--python",
        action="append",
        default=[],
        help="another interpreter (another torch release): the harness updates run under it too",
    )
    a = parser.parse_args()
    variants = dict(VARIANTS)
    if a.compile:
        variants["fp32 compiled"] = dict(HARNESS, compile=True)
        variants["bf16 compiled"] = dict(HARNESS, bf16=True, compile=True)
    own_version = torch_version()
    pythons = {own_version: sys.executable}  # one interpreter per torch release
    for python in a.python:
        version = torch_version(python)
        pythons.setdefault(version, python)
        variants[f"harness fp32 [torch {version}]"] = dict(HARNESS, python=python)
        variants[f"bf16 update [torch {version}]"] = dict(VARIANTS["bf16 update"], python=python)
    native = native_bf16()
    if not native:  # emulated bf16 takes ~2 s per update: minutes per variant, nothing learnt
        variants = {n: v for n, v in variants.items() if not v.get("bf16")}
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in variants}
    peaks = []
    names = list(variants)
    for r in range(a.repeats):
        peaks.append(child(PEAK.format(bf16_n=2048 if native else 256)))
        for name in names if r % 2 == 0 else names[::-1]:
            runs[name].append(measure(variants[name], a.updates))
    peak = {k: statistics.median(p[k] for p in peaks) for k in ("fp32", "bf16")}
    med = {name: {k: statistics.median(m[k] for m in v) for k in v[0]} for name, v in runs.items()}
    per_step = {n: per_agent_step_ms(m) for n, m in med.items()}
    base = per_step[BASELINE]
    print(
        f"{cpu_description()}: Nature-CNN update cycle, torch {own_version}, "
        f"{peaks[0]['threads']} threads (median of "
        f"{a.repeats} processes x {a.updates} updates); matmul peak fp32 {peak['fp32']:.0f} "
        f"GFLOP/s, bf16 {peak['bf16']:.0f} GFLOP/s"
    )
    if not native:
        print(
            f"  bf16 variants skipped: no native bf16 here (bf16 matmul emulated at "
            f"{peak['bf16']:.1f} GFLOP/s, {peak['fp32'] / peak['bf16']:.0f}x slower than fp32); "
            "the harness trains in fp32 on such a CPU"
        )
    # the spread across processes, beside the median: this project's machines drift by more
    # than some of the differences between variants, and one figure would hide that
    spread = {
        name: (min(m["update_ms"] for m in v), max(m["update_ms"] for m in v))
        for name, v in runs.items()
    }
    print(
        f"  {'variant':<30}{'update ms':>10}{'range':>14}{'GFLOP':>7}{'GFLOP/s':>9}{'% peak':>8}"
        f"{'act ms':>8}{'ms/agent step':>15}{'vs harness':>12}"
    )
    for name, m in med.items():
        gflops = m["update_gflop"] / (m["update_ms"] / 1e3)
        dtype = "bf16" if variants[name].get("bf16") else "fp32"
        low, high = spread[name]
        print(
            f"  {name:<30}{m['update_ms']:10.2f}{f'{low:.1f}-{high:.1f}':>14}"
            f"{m['update_gflop']:7.2f}{gflops:9.0f}"
            f"{100 * gflops / peak[dtype]:7.0f}%{m['act_ms']:8.3f}{per_step[name]:15.2f}"
            f"{base / per_step[name]:11.2f}x"
        )
    passes = ("forward_training", "backward_data", "backward_weights")
    all_kernels = {}
    # without native bf16, torch does not give bf16 convolutions to oneDNN at all: nothing to see
    for version, python in pythons.items() if native else ():
        all_kernels[version] = kernels = conv_kernels(python)
        slow = [p for p in passes if p not in kernels or any("ref" in k for k in kernels[p])]
        print(
            f"  torch {version} bf16 convolution kernels (oneDNN): "
            + "; ".join(f"{p}: {', '.join(kernels.get(p, ['none']))}" for p in passes)
            + (f"  <- SLOW PATH on {', '.join(slow)}" if slow else "  (no reference fallback)")
        )
    print(
        json.dumps(
            {
                "cpu": cpu_description(),
                "peak_gflops": peak,
                "variants": med,
                "update_ms_range": spread,
                "bf16_conv_kernels": all_kernels,
            }
        )
    )


if __name__ == "__main__":
    main()
