"""Process-level settings that make CPU training faster without changing any result (the
allocator, subnormal floats), and the CPU named in one line for every timing kept beside it."""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import platform
import sys
from typing import Any

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 32 * 2**20  # glibc's ceiling for this setting on 64-bit
TRIM_THRESHOLD = 256 * 2**20


def tune_allocator() -> bool:
    """Keep freed activation buffers in the heap instead of handing them back to the kernel.

    Every Nature-CNN update allocates a few MB of float activations, and each replay batch a
    ~1 MB uint8 array. glibc serves blocks that large with fresh ``mmap`` pages and returns them
    on free, so every update pays ~1,000 page faults for memory it just released (400k faults
    in 400 updates, measured). Raising the mmap and trim thresholds lets those blocks be reused:
    ~5x fewer page faults and 5-10% faster updates on CPU. Returns whether it took effect
    (glibc only; elsewhere it is a no-op).
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return bool(
            libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)
            and libc.mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD)
        )
    except (OSError, AttributeError):
        return False


def flush_denormals(on: bool = True) -> bool | None:
    """Treat subnormal floats as zero on this process's CPU threads (x86 FTZ/DAZ), or stop.
    Returns what the threads then do: True (every intra-op thread flushes), False (none
    does), None (some do: the pool started before the mode was set).

    Why: Adam's first moment of a unit whose gradient is exactly zero (a dead ReLU) decays by
    0.9 per update and the second by 0.999, so over a long run many of them pass through the
    subnormal range (below 1.2e-38), where x86 arithmetic takes microcode assists ~100x slower
    than normal floats. Measured on a Pong run's Adam state after 10k agent steps (9% of the
    dense layer's first moments subnormal): the fused Adam step took 5.9 ms of CPU time with
    them, 1.45 ms flushed. The values flushed are far below anything that moves a weight: an
    Adam step of 1e-38 / (sqrt(v) + eps) leaves any fp32 weight above ~1e-31 unchanged.

    The mode is per thread and a new thread inherits its creator's, so it must be set before
    torch starts its OpenMP pool; the probe (a large multiply whose results are all
    subnormal, split across the threads) tells whether that held. GPUs are unaffected.
    """
    import torch

    torch.set_flush_denormal(on)  # False where the CPU has no such mode; the probe then says
    tiny = torch.finfo(torch.float32).tiny
    probe = torch.full((1 << 20,), tiny) * 0.5  # 1M elements: every thread takes a share
    flushed = int((probe == 0).sum())
    return True if flushed == probe.numel() else False if flushed == 0 else None


def read_cpuinfo() -> str:
    """/proc/cpuinfo's text ('' where it cannot be read)."""
    try:
        with open("/proc/cpuinfo") as f:
            return f.read()
    except OSError:
        return ""


def cpu_flags(cpuinfo: str | None = None) -> set[str]:
    """The CPU's feature flags from /proc/cpuinfo's ``flags`` lines (read when not given)."""
    flags: set[str] = set()
    for line in (read_cpuinfo() if cpuinfo is None else cpuinfo).splitlines():
        if line.startswith("flags"):
            flags.update(line.split(":", 1)[1].split())
    return flags


def native_bf16(cpuinfo: str | None = None) -> bool:
    """Whether this CPU computes bf16 matrix products natively (AVX512-BF16 or AMX-BF16).

    Elsewhere PyTorch emulates bf16 through fp32 conversions, which is slower than fp32 itself,
    so ``bf16-mixed`` only pays where this is True. ``cpuinfo``: /proc/cpuinfo's text (read
    when not given; False where it cannot be read).
    """
    return bool(cpu_flags(cpuinfo) & {"avx512_bf16", "amx_bf16"})


def cpu_description(cpuinfo: str | None = None, cores: int | None = None) -> str:
    """The CPU in one line, e.g. "AMD EPYC, 2 cores, avx512_bf16, no AMX".

    Timings on this project's machines differ by CPU kind (the same update ran 16 ms on an AMD
    EPYC with AVX512-BF16 and 17-31 ms on a Xeon with AMX), so every timing is printed and kept
    beside this line. ``cpuinfo``: /proc/cpuinfo's text (read when not given).
    """
    cpuinfo = read_cpuinfo() if cpuinfo is None else cpuinfo
    lines = (line.partition(":") for line in cpuinfo.splitlines())
    model = next((v.strip() for k, _, v in lines if k.strip() == "model name"), "")
    flags = cpu_flags(cpuinfo)
    model = model or platform.processor() or platform.machine() or "unknown CPU"
    if cores is None:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    bf16 = "avx512_bf16" if "avx512_bf16" in flags else "no avx512_bf16"
    amx = "AMX" if "amx_bf16" in flags else "no AMX"
    return f"{model}, {cores} cores, {bf16}, {amx}"


def cpu_threads(cfg: Any) -> int:
    """One thread for small MLPs: their matrices are too small to split, and idle intra-op
    threads spin against every other process on the machine (CartPole measured 587 agent
    steps/s on 1 thread against 18 on 2 while another training shared the 2 cores)."""
    if cfg.trainer.threads is not None:
        return int(cfg.trainer.threads)
    if cfg.algo.name == "tabular" or cfg.model.name == "mlp":
        return 1
    import torch

    return max(1, torch.get_num_threads())


def training_precision(accelerator: str, precision: str) -> tuple[str, str | None]:
    """The precision to train in, and a warning when the requested one falls back."""
    if precision == "bf16-mixed" and accelerator == "cpu" and not native_bf16():
        return "32-true", (
            "warning: trainer.precision=bf16-mixed: this CPU has no native bf16 (avx512_bf16 or "
            "amx_bf16), where it is slower than fp32; training in 32-true"
        )
    return precision, None


def check_trainer(trainer: Any) -> None:
    """``trainer.*``: only what is offered and tested; a GPU that is not there is named before
    Lightning fails on it with a traceback."""
    from dqn_harness.errors import UsageError

    if trainer.devices != 1:
        raise UsageError(
            "trainer.devices",
            f"must be 1, got {trainer.devices} (replay and envs live in the training process)",
        )
    if trainer.accelerator == "gpu":
        import torch

        if not torch.cuda.is_available():
            raise UsageError(
                "trainer.accelerator",
                f"no CUDA device is available to this torch ({torch.__version__}); use trainer=cpu",
            )
