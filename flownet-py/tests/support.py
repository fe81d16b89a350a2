"""Helpers shared by the tests (pytest puts this directory on sys.path)."""

from __future__ import annotations

import ipaddress
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Callable, List, Optional, Set, Tuple, Union

REPO = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent


_HANDED_OUT: Set[int] = set()


def free_ports(n: int) -> List[int]:
    """`n` distinct free loopback ports: every socket stays bound until all are chosen,
    and no port this process handed out before is handed out again."""
    held: List[socket.socket] = []
    ports: List[int] = []
    try:
        while len(ports) < n:
            s = socket.socket()
            held.append(s)
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
            if port not in _HANDED_OUT:
                _HANDED_OUT.add(port)
                ports.append(port)
    finally:
        for s in held:
            s.close()
    return ports


def free_port() -> int:
    return free_ports(1)[0]


def _proc_addr(hexaddr: str) -> Union[ipaddress.IPv4Address, ipaddress.IPv6Address]:
    raw = b"".join(int(hexaddr[i : i + 8], 16).to_bytes(4, "little") for i in range(0, len(hexaddr), 8))
    addr = ipaddress.ip_address(raw)
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped:
        return addr.ipv4_mapped
    return addr


def listeners(pid: int) -> List[Tuple[Union[ipaddress.IPv4Address, ipaddress.IPv6Address], int]]:
    """The TCP sockets process `pid` listens on, as (address, port)."""
    inodes = set()
    fd_dir = Path(f"/proc/{pid}/fd")
    for fd in fd_dir.iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[len("socket:[") : -1])
    out: List[Tuple[Union[ipaddress.IPv4Address, ipaddress.IPv6Address], int]] = []
    for table in ("tcp", "tcp6"):
        # This process's namespace: the sockets reachable from here, wherever `pid` is now.
        path = Path(f"/proc/self/net/{table}")
        if not path.exists():
            continue
        for line in path.read_text().splitlines()[1:]:
            f = line.split()
            if len(f) < 10 or f[3] != "0A" or f[9] not in inodes:
                continue
            addr, port = f[1].split(":")
            out.append((_proc_addr(addr), int(port, 16)))
    return out


def process_tree(pid: int) -> List[int]:
    """`pid` and every process below it."""
    parents: List[Tuple[int, int]] = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        parents.append((int(entry.name), int(stat.rsplit(")", 1)[1].split()[1])))
    tree = [pid]
    for at in tree:
        tree.extend(p for p, pp in parents if pp == at)
    return tree


def in_isolated_netns(pid: int) -> bool:
    """Whether `pid` lives in another network namespace that has only its own loopback."""
    try:
        if os.readlink(f"/proc/{pid}/ns/net") == os.readlink("/proc/self/ns/net"):
            return False
        lines = Path(f"/proc/{pid}/net/dev").read_text().splitlines()[2:]
    except OSError:
        return False
    return all(line.split(":")[0].strip() == "lo" for line in lines)


def assert_listens_only_on_loopback(pid: int, what: str, at_least: int) -> None:
    """Every socket `pid` or a process below it listens on is on loopback, or in an
    isolated network namespace; at least `at_least` loopback sockets are reachable."""
    reachable: List[Tuple[Union[ipaddress.IPv4Address, ipaddress.IPv6Address], int]] = []
    ours = os.readlink("/proc/self/ns/net")
    for p in process_tree(pid):
        try:
            theirs = os.readlink(f"/proc/{p}/ns/net")
        except OSError:
            continue
        assert theirs == ours or in_isolated_netns(p), f"{what} (pid {p}) runs in a namespace with more than loopback"
        found = listeners(p)
        beyond = [(str(a), port) for a, port in found if not a.is_loopback]
        assert not beyond, f"{what} (pid {p}) listens beyond loopback on {beyond}"
        reachable += found
    assert len(reachable) >= at_least, f"{what} (pid {pid}) listens on {reachable}, expected at least {at_least}"


def models_dir() -> Path:
    """The models and ONNX Runtime that scripts/setup.sh prepares (CI runs it first)."""
    models = Path(os.environ.get("FLOWNET_MODELS", REPO / "models"))
    assert (models / "terrain-diffusion-128" / "model.onnx").exists() and os.environ.get("ORT_DYLIB_PATH"), (
        "the models or ONNX Runtime are missing: run `eval \"$(scripts/setup.sh)\"` first"
    )
    return models


def _default_sigint() -> None:
    # A shell without job control starts background commands (CI's, for one) with
    # SIGINT ignored, and children inherit that: Python then installs no
    # KeyboardInterrupt handler and Ctrl-C would do nothing. A child gets Ctrl-C as a
    # terminal would give it.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


class Proc:
    """A Python or flownet child process whose stderr is kept for assertions."""

    def __init__(self, args: List[str], cwd: Path, env: Optional[dict] = None) -> None:
        self.log = cwd / f"proc-{time.monotonic_ns()}.log"
        self._log_file = open(self.log, "wb")
        self.popen = subprocess.Popen(
            args,
            cwd=cwd,
            stdout=subprocess.PIPE,
            stderr=self._log_file,
            env={**os.environ, **(env or {})},
            preexec_fn=_default_sigint,
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
