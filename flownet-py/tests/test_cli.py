"""The `flownet` console script and `python -m flownet` are the Rust `flownet` command:
the same parser, verbs and output, plus `node serve --handler` for Python models."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Callable, List

import pytest
from support import VENV_BIN, Proc, write_module

import flownet

RUST_BIN = Path(os.environ.get("FLOWNET_RUST_BIN", Path(__file__).resolve().parents[2] / "target/debug/flownet"))


def run(args: List[str], cwd: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("FLOWNET_HOME", "FLOWNET_KEY")}
    return subprocess.run(args, cwd=cwd, capture_output=True, text=True, env=env, timeout=120)


def script() -> List[str]:
    return [str(VENV_BIN / "flownet")]


def module() -> List[str]:
    return [sys.executable, "-m", "flownet"]


@pytest.mark.parametrize("program", [script, module], ids=["console-script", "python-m"])
def test_version_says_it_is_the_python_package(program: Callable[[], List[str]], tmp_path: Path) -> None:
    out = run([*program(), "--version"], tmp_path)
    assert out.returncode == 0
    assert out.stdout.startswith(f"flownet {flownet.__version__} (Python package, ")


def rust_binary() -> Path:
    assert RUST_BIN.exists(), f"the Rust binary {RUST_BIN} is missing: build it with `cargo build -p flownet-cli`"
    return RUST_BIN


def test_the_console_script_is_the_rust_command(tmp_path: Path) -> None:
    rust = [str(rust_binary())]
    assert run([*rust, "--version"], tmp_path).stdout.startswith("flownet 0.1.0 (Rust binary)")
    for args in (["--help"], ["node", "serve", "--help"], ["task", "submit", "--help"], ["init", "--help"]):
        assert run([*script(), *args], tmp_path).stdout == run([*rust, *args], tmp_path).stdout, args

    home = tmp_path / "home"
    first = run([*script(), "--data-dir", str(home), "--json", "init"], tmp_path)
    assert first.returncode == 0, first.stderr
    created = json.loads(first.stdout)
    assert created["key_created"] and created["config_created"]
    # The two programs read and write the same files.
    for args in (["account", "balance"], ["ledger", "info"], ["node", "list"]):
        py_out = run([*script(), "--data-dir", str(home), "--json", *args], tmp_path)
        rust_out = run([*rust, "--data-dir", str(home), "--json", *args], tmp_path)
        assert py_out.returncode == rust_out.returncode == 0
        assert json.loads(py_out.stdout) == json.loads(rust_out.stdout), args
    # Errors too: the same exit code and the same JSON error.
    py_err = run([*script(), "--data-dir", str(home), "--json", "task", "show", "7"], tmp_path)
    rust_err = run([*rust, "--data-dir", str(home), "--json", "task", "show", "7"], tmp_path)
    assert py_err.returncode == rust_err.returncode == 1
    assert json.loads(py_err.stdout) == json.loads(rust_err.stdout) == {
        "error": {"kind": "not_found", "message": "not found: task 7"}
    }
    assert run([*script(), "rate", "1", "9"], tmp_path).returncode == 2
    # The Python API reads the keys the command made.
    ledger = flownet.Ledger.open(home)
    assert flownet.Account.load(ledger).address == created["address"]

    refused = run([*rust, "--data-dir", str(home), "node", "serve", "--handler", "x:node"], tmp_path)
    assert refused.returncode == 1 and "Python package" in refused.stderr


HANDLER_MODULE = """
import flownet

node = flownet.Node(name="cli python node")

@node.model("reverse", price="0.3", kind="text-generation")
def reverse(prompt, params):
    return prompt[::-1] * int(params.get("times", 1))
"""


def test_node_serve_handler_serves_a_python_module(tmp_path: Path, spawn: Callable[..., Proc]) -> None:
    home = tmp_path / "home"
    assert run([*script(), "--data-dir", str(home), "--key", "node", "init"], tmp_path).returncode == 0
    ledger = flownet.Ledger.open(home)
    client = flownet.Client(ledger, flownet.Account.create(ledger, "alice"))
    write_module(tmp_path, "my_models", HANDLER_MODULE)

    # --once: publish the handler's offers, process what is waiting, exit.
    once = run(
        [*script(), "--data-dir", str(home), "--key", "node", "--json", "node", "serve",
         "--handler", "my_models:node", "--listen", "127.0.0.1:0", "--once"],
        tmp_path,
    )  # fmt: skip
    assert once.returncode == 0, once.stderr
    assert json.loads(once.stdout) == {"delivered": 0}
    (listed,) = client.nodes(model="reverse")
    assert listed["name"] == "cli python node" and listed["models"][0]["price"] == "0.3"

    node = spawn([*script(), "--data-dir", str(home), "--key", "node", "node", "serve", "--handler", "my_models:node",
                  "--interval-ms", "50"])  # fmt: skip
    node.wait_for_log("serving reverse")
    output = client.submit("flow", "reverse", params={"times": 2}).wait(timeout=30)
    assert output.text() == "wolfwolf"
    # Ctrl-C is handled by the Rust runtime, exactly as in the binary.
    node.popen.send_signal(signal.SIGINT)
    assert node.popen.wait(timeout=30) == 0, node.stderr()
    assert "claimed tasks resume on the next start" in node.stderr()

    bad = run([*script(), "--data-dir", str(home), "--key", "node", "node", "serve", "--handler", "my_models:nope"], tmp_path)
    assert bad.returncode == 1 and "has no nope" in bad.stderr
    bad = run([*script(), "--data-dir", str(home), "--key", "node", "node", "serve", "--handler", "my_models"], tmp_path)
    assert bad.returncode == 1 and "expected MODULE:OBJECT" in bad.stderr
