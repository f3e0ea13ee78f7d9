"""What `make setup` asks pip for: the CPU wheel index when it answers, an honest note when not,
and pip's default (CUDA on Linux) for TORCH=cuda. A real HTTP server stands in for the index."""

from __future__ import annotations

import http.server
import shutil
import subprocess
import threading
from functools import partial

import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.skipif(not shutil.which("make"), reason="needs make")


def pip_args(*variables: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["make", "-s", "pip-args", *variables], cwd=ROOT, capture_output=True, text=True, timeout=60
    )


@pytest.fixture
def index_url(tmp_path):
    (tmp_path / "torch").mkdir()
    (tmp_path / "torch" / "index.html").write_text("<a href='torch-2.13.0+cpu.whl'>torch</a>")
    handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


@pytest.mark.skipif(not shutil.which("curl"), reason="the probe uses curl")
def test_cpu_install_uses_the_cpu_index_when_it_answers(index_url):
    proc = pip_args(f"TORCH_CPU_INDEX={index_url}")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == [
        "-c",
        "constraints/cpu.txt",
        "--extra-index-url",
        index_url,
        "-e",
        ".[dev]",
    ]
    assert f"torch: CPU build from {index_url}" in proc.stderr


def test_cpu_install_says_what_it_gets_without_the_index():
    proc = pip_args("TORCH_CPU_INDEX=http://127.0.0.1:9")  # nothing listens on port 9
    assert proc.stdout.split() == ["-c", "constraints/cpu.txt", "-e", ".[dev]"]
    assert "does not answer" in proc.stderr and "CUDA build, several GB" in proc.stderr


def test_gpu_install_takes_pips_default():
    proc = pip_args("TORCH=cuda")
    assert proc.stdout.split() == ["-e", ".[dev]"] and proc.stderr == ""
