"""Helpers shared by the tests (pytest puts this directory on sys.path)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Callable, List, Optional

REPO = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def models_dir() -> Path:
    """The models and ONNX Runtime that scripts/setup.sh prepares (CI runs it first)."""
    models = Path(os.environ.get("FLOWNET_MODELS", REPO / "models"))
    assert (models / "terrain-diffusion-128" / "model.onnx").exists() and os.environ.get("ORT_DYLIB_PATH"), (
        "the models or ONNX Runtime are missing: run `eval \"$(scripts/setup.sh)\"` first"
    )
    return models


class Proc:
    """A Python or flownet child process whose stderr is kept for assertions."""

    def __init__(self, args: List[str], cwd: Path, env: Optional[dict] = None) -> None:
        self.log = cwd / f"proc-{time.monotonic_ns()}.log"
        self._log_file = open(self.log, "wb")
        self.popen = subprocess.Popen(
            args, cwd=cwd, stdout=subprocess.PIPE, stderr=self._log_file, env={**os.environ, **(env or {})}
        )

    def stderr(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_for_log(self, text: str, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.stderr():
            if self.popen.poll() is not None:
                raise AssertionError(f"process exited {self.popen.returncode} before logging {text!r}:\n{self.stderr()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"no {text!r} in the log after {timeout} s:\n{self.stderr()}")
            time.sleep(0.05)

    def close(self) -> None:
        if self.popen.poll() is None:
            self.popen.kill()
        self.popen.wait()
        if self.popen.stdout:
            self.popen.stdout.close()
        self._log_file.close()


def write_module(directory: Path, name: str, source: str) -> Path:
    path = directory / f"{name}.py"
    path.write_text(textwrap.dedent(source))
    return path


def wait_until(predicate: Callable[[], bool], timeout: float = 30.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)
