"""Language models from Python: a generator handler streamed by the Rust node runtime,
the real SmolLM2 served by a Python node, paid per token, followed with Task.stream."""

from __future__ import annotations

import json
import threading
from decimal import Decimal
from typing import Any, Dict, Iterator, List

import pytest
from support import models_dir, wait_until

import flownet


def serving(node: flownet.Node) -> threading.Thread:
    server = threading.Thread(target=node.serve, kwargs={"interval_ms": 20})
    server.start()
    return server


def test_a_generator_handler_streams_and_is_paid_per_piece(ledger: flownet.Ledger, endpoint: str) -> None:
    node_account = flownet.Account.create(ledger, "node")
    alice = flownet.Account.create(ledger, "alice")
    node = flownet.Node(ledger, node_account, name="words", endpoint=endpoint)
    gate = threading.Event()

    @node.model("words", price="1", kind="text-generation", unit="thousand_tokens")
    def words(prompt: str, params: Dict[str, Any]) -> Iterator[str]:
        for i, word in enumerate(prompt.split()):
            if i == 1:
                # The first piece is out before the rest is written.
                gate.wait(10)
            yield word + " "

    server = serving(node)
    try:
        client = flownet.Client(ledger, alice)
        wait_until(lambda: bool(client.nodes(model="words")), what="the node to register")
        (listed,) = client.nodes(model="words")
        assert listed["models"][0]["unit"] == "thousand_tokens"
        task = client.submit("one two three four five six", "words", max_tokens=4)
        pieces: List[str] = []
        for piece in task.stream(timeout=30):
            pieces.append(piece)
            gate.set()
        out = task.wait(timeout=30)
        answer = out.json()
        assert "".join(pieces) == answer["text"] == "one two three four "
        assert answer["finish_reason"] == "length"
        assert answer["usage"]["completion_tokens"] == 4
        info = task.info()
        assert info["units"] == 4 and info["max_units"] == 4
        # 4 tokens at 1 per 1,000: nothing refunded; the node got 90 %.
        assert alice.balance() == Decimal("1000") - Decimal("0.004")
        assert node_account.balance() == Decimal("1000") + Decimal("0.0036")

        short = client.submit("hi there", "words", max_tokens=10)
        gate.set()
        # A stream is a preview: a task already done when followed streams nothing.
        heard = "".join(short.stream(timeout=30))
        assert short.wait(timeout=30).json() == {
            "text": "hi there ",
            "finish_reason": "stop",
            "usage": {"prompt_tokens": 0, "completion_tokens": 2},
        }
        assert "hi there ".startswith(heard)
        record = short.info()
        assert record["units"] == 2
        assert Decimal(str(record["refunded"])) > 0
    finally:
        gate.set()
        node.stop()
        server.join(timeout=10)


def test_a_conversation_goes_to_the_real_chat_model_and_streams(ledger: flownet.Ledger, endpoint: str) -> None:
    node_account = flownet.Account.create(ledger, "node")
    alice = flownet.Account.create(ledger, "alice")
    node = flownet.Node(ledger, node_account, name="llm", endpoint=endpoint)
    node.onnx("smollm2-135m-instruct", price="0.2", models_dir=models_dir())
    server = serving(node)
    try:
        client = flownet.Client(ledger, alice)
        wait_until(lambda: bool(client.nodes(model="smollm2-135m-instruct")), what="the node to register")
        conversation = [{"role": "user", "content": "What is the capital of France?"}]
        task = client.submit(conversation, "smollm2-135m-instruct", params={"temperature": 0}, max_tokens=16)
        streamed = "".join(task.stream(timeout=120))
        answer = task.wait(timeout=120).json()
        assert answer["text"] and streamed == answer["text"]
        info = task.info()
        assert 0 < info["units"] == answer["usage"]["completion_tokens"] <= 16
        assert json.loads(info["prompt"]) == {"messages": conversation}
        with pytest.raises(flownet.FlowNetError):
            client.submit("hello", "smollm2-135m-instruct", max_tokens=0)
    finally:
        node.stop()
        server.join(timeout=10)


def test_a_long_conversation_rides_as_an_input_blob_between_two_data_dirs(
    ledger: flownet.Ledger, endpoint: str, tmp_path: Any
) -> None:
    node_account = flownet.Account.create(ledger, "node")
    # The requester keeps its blobs elsewhere: the node can only fetch the input over HTTP.
    alice = flownet.Account.create(ledger, "alice", data_dir=tmp_path / "alice")
    node = flownet.Node(ledger, node_account, name="llm", endpoint=endpoint)
    node.onnx("smollm2-135m-instruct", price="0.2", models_dir=models_dir())
    server = serving(node)
    try:
        client = flownet.Client(ledger, alice)
        wait_until(lambda: bool(client.nodes(model="smollm2-135m-instruct")), what="the node to register")
        history = "The sky is blue because air scatters blue light more than red light. " * 60
        conversation = [
            {"role": "user", "content": history},
            {"role": "assistant", "content": "I see."},
            {"role": "user", "content": "What is the capital of France?"},
        ]
        as_json = json.dumps({"messages": conversation}, separators=(",", ":"))
        assert len(as_json.encode()) > 4096
        task = client.submit(conversation, "smollm2-135m-instruct", params={"temperature": 0}, max_tokens=12)
        info = task.info()
        # The ledger names the conversation by hash; the bytes never rode in it.
        assert info["prompt"].startswith("sha256:")
        assert info["input"]["size"] > 4096 and info["input"]["uri"].startswith("http://127.0.0.1:")
        assert info["prompt"] == "sha256:" + info["input"]["sha256"]
        out = task.wait(timeout=120)
        answer = out.json()
        assert answer["text"] and 0 < answer["usage"]["prompt_tokens"]
        # The tokens paid for, recounted with the model's tokenizer on this side.
        meta = out.metadata
        assert meta["units"] == answer["usage"]["completion_tokens"]
        assert meta["units_check"]["result"] == "matches", meta["units_check"]
        assert Decimal(meta["cost"]) + Decimal(meta["refunded"]) == Decimal(meta["price"]) > 0
    finally:
        node.stop()
        server.join(timeout=10)
