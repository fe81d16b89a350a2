"""The Python API on Flow: `Ledger.open("emulator")`, accounts made by the sponsor, a
Python handler node and a user on a live Flow emulator (`FLOW_EMULATOR=/path/to/
flow-emulator`, started here as the Rust suites start it); without one those tests are
skipped. What needs no emulator (a network that does not answer) always runs."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from decimal import Decimal
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List

import pytest
from support import REPO, VENV_BIN, Proc, assert_listens_only_on_loopback, free_port, free_ports, wait_until, write_module

import flownet

#: The emulator's service account and the fixed key it is started with, so that the
#: tests can deploy FlowNet and sponsor accounts as the Rust suites do.
SERVICE_ADDRESS = "0xf8d6e0586b0a20c7"
SERVICE_KEY_HEX = "6e1a5c6fc6b8bd2f1b2e5b7c0f7a9d1e3c5b7a9f1e3d5c7b9a1f3e5d7c9b1a3f"
EMULATOR = os.environ.get("FLOW_EMULATOR", "")

needs_emulator = pytest.mark.skipif(
    not EMULATOR,
    reason="SKIPPED: no Flow emulator (set FLOW_EMULATOR=/path/to/flow-emulator to run the Python API on Flow)",
)


def flow_env(access_api: str) -> Dict[str, str]:
    """The environment the `flownet` command and `Ledger.open` read on Flow."""
    return {
        "FLOWNET_FLOW_ACCESS": access_api,
        "FLOWNET_FLOW_CONTRACTS": SERVICE_ADDRESS,
        "FLOWNET_FLOW_SPONSOR": f"{SERVICE_ADDRESS}:{SERVICE_KEY_HEX}",
    }


@pytest.fixture
def no_flow_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("FLOWNET_FLOW_ACCESS", "FLOWNET_FLOW_CONTRACTS", "FLOWNET_FLOW_SPONSOR", "FLOWNET_FLOW_SPONSOR_URL"):
        monkeypatch.delenv(var, raising=False)


def test_an_emulator_that_does_not_answer_is_a_network_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_flow_env: None
) -> None:
    port = free_port()  # nothing listens on it
    monkeypatch.setenv("FLOWNET_FLOW_ACCESS", f"http://127.0.0.1:{port}")
    started = time.monotonic()
    with pytest.raises(flownet.Network) as info:
        flownet.Ledger.open("emulator", data_dir=tmp_path)
    # A refused connection fails at once, well inside the client's 10 s connect timeout.
    assert time.monotonic() - started < 9
    message = str(info.value)
    assert "connecting to Flow emulator" in message and f"cannot connect to http://127.0.0.1:{port}" in message
    assert isinstance(info.value, ConnectionError) and info.value.kind == "network"
    with pytest.raises(flownet.InvalidInput, match="flow deploy"):
        flownet.Ledger.open("emulator", create=True)


def test_a_bad_flow_configuration_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_flow_env: None) -> None:
    monkeypatch.setenv("FLOWNET_FLOW_ACCESS", f"http://127.0.0.1:{free_port()}")
    monkeypatch.setenv("FLOWNET_FLOW_CONTRACTS", "0x12")
    with pytest.raises(flownet.InvalidInput, match="FLOWNET_FLOW_CONTRACTS must be an address"):
        flownet.Ledger.open("emulator", data_dir=tmp_path)
    monkeypatch.delenv("FLOWNET_FLOW_CONTRACTS")
    monkeypatch.setenv("FLOWNET_FLOW_SPONSOR", "not a key")
    with pytest.raises(flownet.FlowNetError, match="FLOWNET_FLOW_SPONSOR must be"):
        flownet.Ledger.open("emulator", data_dir=tmp_path)
    # A directory named like a network is still reachable by path.
    (tmp_path / "emulator").mkdir()
    monkeypatch.chdir(tmp_path)
    local = flownet.Ledger.open("./emulator", create=True)
    assert local.network == "embedded" and local.path is not None
    assert local.path.resolve() == (tmp_path / "emulator" / "ledger.db").resolve()


class Emulator:
    """A Flow emulator in a network namespace of its own, its gRPC, REST and admin ports
    forwarded from 127.0.0.1 (scripts/flow-emulator-netns.py: its debugger listens on
    every interface otherwise), the known service key and transaction fees on."""

    def __init__(self, binary: str, directory: Path) -> None:
        self.port, self.rest_port, admin_port, debugger_port = free_ports(4)
        self.access_api = f"http://127.0.0.1:{self.port}"
        self.log = directory / "emulator.log"
        # In a network namespace of its own, its ports forwarded from 127.0.0.1: the
        # emulator's debugger binds every interface whatever --host says.
        args = [sys.executable, str(REPO / "scripts" / "flow-emulator-netns.py"), binary]
        args += ["emulator"] if Path(binary).name == "flow" else []
        args += ["--host", "127.0.0.1", "--port", str(self.port), "--rest-port", str(self.rest_port)]
        args += ["--admin-port", str(admin_port), "--debugger-port", str(debugger_port)]
        args += ["--service-priv-key", SERVICE_KEY_HEX, "--service-sig-algo", "ECDSA_P256"]
        args += ["--service-hash-algo", "SHA3_256", "--transaction-fees", "--transaction-expiry", "1000"]
        self._log_file = open(self.log, "wb")
        self.popen = subprocess.Popen(
            args, cwd=directory, stdin=subprocess.DEVNULL, stdout=self._log_file, stderr=subprocess.STDOUT
        )
        self._wait_ready()

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + 120
        url = f"http://127.0.0.1:{self.rest_port}/v1/blocks?height=sealed"
        while True:
            if self.popen.poll() is not None:
                raise AssertionError(f"the emulator exited {self.popen.returncode}:\n{self.log.read_text()}")
            try:
                with urllib.request.urlopen(url, timeout=2) as r:
                    if r.status == 200:
                        # gRPC, REST and admin at least; every one of them on loopback.
                        assert_listens_only_on_loopback(self.popen.pid, "the Flow emulator", 3)
                        return
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"the emulator did not answer within 120 s:\n{self.log.read_text()}")
            time.sleep(0.25)

    def close(self) -> None:
        if self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()
        self._log_file.close()


@pytest.fixture(scope="module")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Emulator]:
    """An emulator with FlowNet deployed by the console script, as a user would."""
    directory = tmp_path_factory.mktemp("emulator")
    emu = Emulator(EMULATOR, directory)
    try:
        with pytest.MonkeyPatch.context() as mp:
            for var, value in flow_env(emu.access_api).items():
                mp.setenv(var, value)
            mp.delenv("FLOWNET_FLOW_SPONSOR_URL", raising=False)
            # Before the deploy, opening says what is missing.
            with pytest.raises(flownet.FlowNetError, match="flow deploy"):
                flownet.Ledger.open("emulator", data_dir=directory / "early")
        deploy = subprocess.run(
            [str(VENV_BIN / "flownet"), "--json", "--data-dir", str(directory / "deployer")]
            + ["--network", "emulator", "flow", "deploy", "--claim-window", "120", "--fulfil-window", "120"],
            env={**os.environ, **flow_env(emu.access_api)},
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert deploy.returncode == 0, deploy.stderr
        assert json.loads(deploy.stdout)["contracts"] == SERVICE_ADDRESS
        yield emu
    finally:
        emu.close()


@pytest.fixture
def on_flow(emulator: Emulator, monkeypatch: pytest.MonkeyPatch, no_flow_env: None) -> Emulator:
    for var, value in flow_env(emulator.access_api).items():
        monkeypatch.setenv(var, value)
    return emulator


@needs_emulator
def test_a_python_handler_node_serves_a_paid_task_on_flow(tmp_path: Path, on_flow: Emulator) -> None:
    # The node and the user are on different machines: separate data dirs (keys and
    # blobs) and separate clients of the network.
    node_ledger = flownet.Ledger.open("emulator", data_dir=tmp_path / "node-home")
    user_ledger = flownet.Ledger.open("emulator", data_dir=tmp_path / "user-home")
    assert node_ledger.network == "emulator" and node_ledger.path is None
    assert node_ledger.access_api == on_flow.access_api and node_ledger.data_dir == tmp_path / "node-home"
    assert node_ledger.id == user_ledger.id and "emulator" in repr(node_ledger)
    info = user_ledger.info()
    assert info["network"] == "emulator" and info["config"]["claim_window_s"] == 120
    faucet = Decimal(info["config"]["faucet_amount"]) / 10**8  # in units of 10⁻⁸
    assert faucet > 0

    node_account = flownet.Account.create(node_ledger, "node")
    alice = flownet.Account.create(user_ledger, "alice")
    assert node_account.address != alice.address
    assert node_account.balance() == alice.balance() == faucet
    # The account's Flow address is recorded in the key file, as the command does.
    key_file = json.loads(alice.key_path.read_text())
    assert key_file["flow_addresses"] == {"emulator": alice.address}
    assert flownet.Account.load(user_ledger, "alice").address == alice.address
    with pytest.raises(flownet.AlreadyExists, match="has account"):
        flownet.Account.create(user_ledger, "alice")
    with pytest.raises(flownet.Faucet):
        alice.faucet()

    endpoint = f"http://127.0.0.1:{free_port()}"
    node = flownet.Node(node_ledger, node_account, name="python on flow", endpoint=endpoint)
    calls: List[str] = []

    @node.model("shout", price="0.5", kind="text-generation")
    def shout(prompt: str, params: Dict[str, Any]) -> str:
        calls.append(prompt)
        return (prompt.upper() + "!") * int(params.get("times", 1))

    served: List[BaseException] = []

    def serve() -> None:
        try:
            node.serve(interval_ms=200)
        except BaseException as e:  # the assertion below reports it
            served.append(e)

    server = threading.Thread(target=serve)
    server.start()
    try:
        client = flownet.Client(user_ledger, alice)
        wait_until(lambda: bool(client.nodes(model="shout")) or bool(served), timeout=60, what="the node to register")
        assert not served, served
        (listed,) = client.nodes(model="shout")
        assert listed["owner"] == node_account.address and listed["endpoint"] == endpoint
        assert [(m["model_id"], m["price"]) for m in listed["models"]] == [("shout", "0.5")]

        task = client.submit("hello flow", "shout", params={"times": 2})
        out = task.wait(timeout=120)  # read every 0.5 s on Flow
        assert out.text() == "HELLO FLOW!HELLO FLOW!" and calls == ["hello flow"]
        record = task.info()
        assert record["status"] == "fulfilled" and record["node"] == node_account.address
        assert out.sha256 == hashlib.sha256(out.bytes).hexdigest() == record["result"]["sha256"]
        # Fetched over HTTP from the node: the user's data dir does not hold it.
        assert out.uri == f"{endpoint}/blobs/{out.sha256}"
        assert out.metadata["model_id"] == "shout" and out.metadata["requester"] == alice.address

        bounty = client.rate(task, 5)
        assert isinstance(bounty, Decimal) and bounty >= 0
        assert [(r["rater"], r["stars"]) for r in task.info()["ratings"]] == [(alice.address, 5)]
        # The contracts' refusals arrive as the same typed exceptions as on the
        # embedded ledger.
        with pytest.raises(flownet.AlreadyRated):
            client.rate(task, 4)
        with pytest.raises(flownet.InsufficientFunds):
            alice.transfer(node_account.address, "1000000")
        with pytest.raises(flownet.PriceAboveMax):
            client.submit("too cheap", "shout", node=node_account.address, max_price="0.1")

        (nft,) = client.nfts()
        assert nft["task"] == task.id and nft["output"]["sha256"] == out.sha256
        assert nft["model_id"] == "shout" and nft["node"] == node_account.address
        # 0.5 paid: 90 % to the node.
        assert node_account.balance() == faucet + Decimal("0.45")
        assert alice.balance() == faucet - Decimal("0.5") + bounty
    finally:
        node.stop()
        server.join(timeout=60)
    assert not server.is_alive() and not served, served


HANDLER_MODULE = """
import os

import flownet

node = flownet.Node(name="cli python node on flow", endpoint=os.environ["HANDLER_ENDPOINT"])

@node.model("reverse", price="0.3", kind="text-generation")
def reverse(prompt, params):
    return prompt[::-1] * int(params.get("times", 1))
"""


@needs_emulator
def test_the_console_script_serves_a_python_handler_for_a_python_made_account_on_flow(
    tmp_path: Path, on_flow: Emulator, spawn: Callable[..., Proc]
) -> None:
    node_home = tmp_path / "node-home"
    node_account = flownet.Account.create(flownet.Ledger.open("emulator", data_dir=node_home), "node")
    flownet_cmd = [str(VENV_BIN / "flownet"), "--data-dir", str(node_home), "--key", "node", "--network", "emulator"]
    # The key file Python wrote is the command's: same account on Flow.
    shown = subprocess.run([*flownet_cmd, "--json", "account", "show"], capture_output=True, text=True, timeout=120)
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["address"] == node_account.address

    write_module(tmp_path, "flow_models", HANDLER_MODULE)
    endpoint = f"http://127.0.0.1:{free_port()}"
    node = spawn([*flownet_cmd, "node", "serve", "--handler", "flow_models:node", "--interval-ms", "200"],
                 env={"HANDLER_ENDPOINT": endpoint})  # fmt: skip
    node.wait_for_log("serving reverse", timeout=120)

    user_ledger = flownet.Ledger.open("emulator", data_dir=tmp_path / "user-home")
    client = flownet.Client(user_ledger, flownet.Account.create(user_ledger, "bob"))
    (listed,) = client.nodes(model="reverse")
    assert listed["owner"] == node_account.address and listed["endpoint"] == endpoint
    task = client.submit("flow", "reverse", params={"times": 2})
    out = task.wait(timeout=120)
    assert out.text() == "wolfwolf" and out.sha256 == hashlib.sha256(b"wolfwolf").hexdigest()
    assert client.rate(task, 4) >= 0
    assert client.task(task.id).status == "fulfilled"
    node.popen.send_signal(signal.SIGINT)
    assert node.popen.wait(timeout=60) == 0, node.stderr()
