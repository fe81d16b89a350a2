"""Every exception class, raised by a real refusal of the real ledger, node or network."""

from __future__ import annotations

import http.server
import json
import threading
import time
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, Type

import pytest
from support import free_port

import flownet
from flownet.exceptions import BY_KIND


@pytest.fixture
def cheating_server() -> Iterator[str]:
    """An HTTP server that answers every GET with bytes no ledger hash will match."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (the stdlib's name)
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.end_headers()
            self.wfile.write(b"not what was paid for")

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_every_error_kind_arrives_as_its_own_exception_class(tmp_path: Path, cheating_server: str) -> None:
    raised: Dict[Type[flownet.FlowNetError], str] = {}

    def expect(cls: Type[flownet.FlowNetError], call: Callable[[], Any]) -> None:
        with pytest.raises(flownet.FlowNetError) as info:
            call()
        assert type(info.value) is cls, f"expected {cls.__name__}, got {type(info.value).__name__}: {info.value}"
        assert info.value.kind == cls.kind and str(info.value)
        raised[cls] = str(info.value)

    ledger = flownet.Ledger.create(tmp_path / "ledger.db", claim_window_s=1, fulfil_window_s=600, bounty_window_s=3600)
    # The node keeps its blobs in its own data dir, so users must fetch outputs over HTTP.
    node_account = flownet.Account.create(ledger, "node", data_dir=tmp_path / "node-home")
    alice = flownet.Account.create(ledger, "alice")
    bob = flownet.Account.create(ledger, "bob")
    node = flownet.Node(ledger, node_account, name="n", endpoint=f"http://127.0.0.1:{free_port()}")

    @node.model("echo", price="1", kind="text-generation")
    def echo(prompt: str, params: Dict[str, Any]) -> str:
        return prompt

    @node.model("boom", price="1", kind="text-generation")
    def boom(prompt: str, params: Dict[str, Any]) -> str:
        raise RuntimeError("this model is broken")

    node.register()
    client = flownet.Client(ledger, alice)
    bobs = flownet.Client(ledger, bob)

    expect(flownet.InsufficientFunds, lambda: alice.transfer(bob.address, "5000"))
    expect(flownet.PriceAboveMax, lambda: client.submit("x", "echo", node=node.address, max_price="0.5"))
    expect(flownet.ModelNotOffered, lambda: client.submit("x", "nope", node=node.address))
    expect(flownet.PromptTooLarge, lambda: client.submit("x" * 5000, "echo"))
    expect(flownet.ParamsTooLarge, lambda: client.submit("x", "echo", params={"a": "y" * 5000}))
    expect(flownet.Faucet, lambda: alice.faucet())
    expect(flownet.AlreadyExists, lambda: flownet.Account.create(ledger, "alice"))
    expect(flownet.NotFound, lambda: client.task(999))
    expect(flownet.InvalidInput, lambda: client.rate(1, 9))

    task = client.submit("x", "echo")
    expect(flownet.Unauthorized, lambda: bobs.cancel(task))
    expect(flownet.WrongNode, lambda: bob.send({"type": "claim", "task": task.id}))
    expect(flownet.DeadlineNotPassed, lambda: client.expire(task))
    expect(flownet.InvalidState, lambda: client.rate(task, 5))

    # Envelopes signed here and sent as they would arrive from elsewhere.
    envelope = alice.sign({"type": "transfer", "to": bob.address, "amount": 1})
    assert ledger.send(envelope)["outcome"] is not None
    expect(flownet.BadSequence, lambda: ledger.send(envelope))
    tampered = json.loads(envelope.to_json())
    tampered["action"]["amount"] = 2
    expect(flownet.BadSignature, lambda: ledger.send(flownet.SignedEnvelope.from_json(json.dumps(tampered))))

    node_account.send({"type": "set_node_active", "active": False})
    expect(flownet.NodeInactive, lambda: client.submit("x", "echo", node=node.address))
    node_account.send({"type": "set_node_active", "active": True})

    late = client.submit("late", "echo")
    time.sleep(2.2)  # the claim window is 1 s and the ledger's clock counts seconds
    expect(flownet.DeadlinePassed, lambda: node_account.send({"type": "claim", "task": late.id}))
    client.expire(late)
    client.expire(task)

    # A delivered output whose node is gone cannot be fetched; it can still be rated.
    done = client.submit("done", "echo")
    assert node.serve(once=True) == 1
    expect(flownet.Network, lambda: done.wait(timeout=10))
    client.rate(done, 5)
    expect(flownet.AlreadyRated, lambda: client.rate(done, 4))

    # A node that publishes bytes other than those it put on the ledger is caught.
    cheated = client.submit("cheat", "echo")
    node_account.send({"type": "claim", "task": cheated.id})
    node_account.send(
        {
            "type": "fulfil",
            "task": cheated.id,
            "result": {"sha256": "ab" * 32, "uri": f"{cheating_server}/blobs/{'ab' * 32}", "mime": "text/plain", "size": 21},
        }
    )
    expect(flownet.Blob, lambda: cheated.wait(timeout=10))

    expect(flownet.Inference, lambda: node.infer("boom", "x"))

    # A faucet so large that the second grant would overflow the token supply.
    big = flownet.Ledger.create(tmp_path / "big.db", faucet="100000000000")
    flownet.Account.create(big, "first")
    second = flownet.Account.create(big, "second", faucet=False)
    expect(flownet.Overflow, lambda: second.faucet())

    corrupt = tmp_path / "corrupt.db"
    corrupt.write_bytes(b"this is not a SQLite database, whatever its name says" * 100)
    expect(flownet.Storage, lambda: flownet.Ledger.open(corrupt))

    assert set(raised) == set(BY_KIND.values()), f"never raised: {set(BY_KIND.values()) - set(raised)}"


def test_exception_classes_are_flownet_errors_with_builtin_bases_where_they_fit() -> None:
    for kind, cls in BY_KIND.items():
        assert issubclass(cls, flownet.FlowNetError) and cls.kind == kind
        assert getattr(flownet, cls.__name__) is cls
    assert issubclass(flownet.NotFound, LookupError)
    assert issubclass(flownet.InvalidInput, ValueError)
    assert issubclass(flownet.Network, ConnectionError)


def test_errors_of_no_core_kind_are_the_base_class(ledger: flownet.Ledger) -> None:
    client = flownet.Client(ledger, flownet.Account.create(ledger, "alice"))
    with pytest.raises(flownet.FlowNetError) as info:
        client.submit("x", "no-such-model")
    assert type(info.value) is flownet.FlowNetError and info.value.kind is None
    assert "no active node offers model" in str(info.value)
    with pytest.raises(TypeError, match="amounts are exact"):
        flownet.Account.load(ledger, "alice").transfer(client.account.address, 0.5)  # type: ignore[arg-type]
    with pytest.raises(flownet.InvalidInput, match="invalid address"):
        ledger.balance("0x12")
    with pytest.raises(flownet.NotFound, match="no key named"):
        flownet.Account.load(ledger, "nobody")
    with pytest.raises(flownet.InvalidInput, match="flow deploy"):
        flownet.Ledger.open("testnet", create=True)
    with pytest.raises(flownet.InvalidInput, match="key name"):
        flownet.Account.create(ledger, "../outside")
    assert ledger.path is not None and ledger.data_dir == ledger.path.parent
    with pytest.raises(flownet.NotFound, match="no ledger at"):
        flownet.Ledger.open(ledger.data_dir / "missing.db")
    with pytest.raises(flownet.AlreadyExists):
        flownet.Ledger.create(ledger.path)


def test_paths_expand_the_home_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    ledger = flownet.Ledger.open("~/market", create=True)
    assert ledger.path == tmp_path / "market"
    (tmp_path / "home").mkdir()
    ledger = flownet.Ledger.open("~/home", create=True)
    assert ledger.path == tmp_path / "home" / "ledger.db"
    account = flownet.Account.create(ledger, "carol", data_dir="~/keys-elsewhere")
    assert account.key_path == tmp_path / "keys-elsewhere" / "keys" / "carol.json"
    assert flownet.Account.load(ledger, "carol", data_dir=tmp_path / "keys-elsewhere").address == account.address
