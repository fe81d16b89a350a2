"""The whole marketplace from Python: a node serving Python functions (in a thread of
this process), users paying for prompts, outputs checked, rated and owned as NFTs."""

from __future__ import annotations

import base64
import hashlib
import io
import math
import threading
from decimal import Decimal
from pathlib import Path
from typing import Any, Dict, List, Tuple

import numpy as np
import pytest
from PIL import Image
from support import wait_until

import flownet


def test_a_python_handler_node_serves_paid_tasks_end_to_end(tmp_path: Path, ledger: flownet.Ledger, endpoint: str) -> None:
    node_account = flownet.Account.create(ledger, "node")
    alice = flownet.Account.create(ledger, "alice")
    bob = flownet.Account.create(ledger, "bob")
    node = flownet.Node(ledger, node_account, name="python node", endpoint=endpoint)
    calls: List[Tuple[str, Dict[str, Any]]] = []

    @node.model("gradient", price="0.5", kind="text-to-image")
    def gradient(prompt: str, params: Dict[str, Any]) -> Image.Image:
        """A horizontal gradient whose colour comes from the prompt's length."""
        calls.append((prompt, params))
        size = int(params.get("size", 8))
        image = Image.new("RGB", (size, size))
        for x in range(size):
            for y in range(size):
                image.putpixel((x, y), (x * 255 // (size - 1), len(prompt) % 256, 0))
        return image

    @node.model("noise", price="0.25", kind="text-to-image")
    def noise(prompt: str, params: Dict[str, Any]) -> np.ndarray:
        seed = int.from_bytes(hashlib.sha256(prompt.encode()).digest()[:8], "big")
        return np.random.default_rng(seed).integers(0, 256, size=(6, 4, 3), dtype=np.uint8)

    @node.model("describe", price="0.1", kind="image-classification")
    def describe(image: bytes, params: Dict[str, Any]) -> Dict[str, Any]:
        with Image.open(io.BytesIO(image)) as im:
            return {"size": list(im.size), "sha256": hashlib.sha256(image).hexdigest()}

    assert [m["id"] for m in node.models] == ["gradient", "noise", "describe"]
    server = threading.Thread(target=node.serve, kwargs={"interval_ms": 20})
    server.start()
    try:
        client = flownet.Client(ledger, alice)
        wait_until(lambda: bool(client.nodes(model="gradient")), what="the node to register")
        (listed,) = client.nodes(model="gradient")
        assert listed["name"] == "python node" and listed["endpoint"] == endpoint
        assert {m["model_id"]: m["price"] for m in listed["models"]} == {"gradient": "0.5", "noise": "0.25", "describe": "0.1"}

        task = client.submit("a quiet valley", "gradient", params={"size": 16})
        out = task.wait(timeout=30)
        assert out.mime == "image/png"
        assert hashlib.sha256(out.bytes).hexdigest() == out.sha256 == task.info()["result"]["sha256"]
        # Its IPFS CID: a raw block whose multihash is that SHA-256 (base32 of 01 55 12 20 <sha256>).
        cid = task.info()["result"]["cid"]
        raw = base64.b32decode(cid[1:].upper() + "=" * (-len(cid[1:]) % 8))
        assert cid.startswith("bafkrei") and raw == bytes.fromhex("01551220" + out.sha256)
        assert out.cid == cid
        with Image.open(io.BytesIO(out.bytes)) as image:
            assert image.size == (16, 16)
            assert image.convert("RGB").getpixel((15, 3)) == (255, len("a quiet valley"), 0)
        assert calls == [("a quiet valley", {"size": 16})]
        assert out.metadata["task"] == task.id and out.metadata["model_id"] == "gradient"
        assert out.metadata["weights_sha256"] == node.models[0]["weights_sha256"]
        assert out.uri == f"{endpoint}/blobs/{out.sha256}"
        saved = out.save(tmp_path / "out" / "valley.png")
        assert saved.read_bytes() == out.bytes == bytes(out)

        arrays = client.submit("seed 7", "noise").wait(timeout=30)
        expected = np.random.default_rng(int.from_bytes(hashlib.sha256(b"seed 7").digest()[:8], "big")).integers(
            0, 256, size=(6, 4, 3), dtype=np.uint8
        )
        with Image.open(io.BytesIO(arrays.bytes)) as image:
            assert np.array_equal(np.asarray(image), expected)

        photo = io.BytesIO()
        Image.new("RGB", (5, 3), (1, 2, 3)).save(photo, format="PNG")
        described = client.submit(photo.getvalue(), "describe").wait(timeout=30)
        assert described.mime == "application/json"
        assert described.json() == {"size": [5, 3], "sha256": hashlib.sha256(photo.getvalue()).hexdigest()}

        # The node was paid 90% of each price; alice paid the prices.
        assert node_account.balance() == Decimal("1000") + Decimal("0.9") * Decimal("0.85")
        bounty = client.rate(task, 5)
        assert bounty > 0
        with pytest.raises(flownet.AlreadyRated):
            client.rate(task, 4)
        assert flownet.Client(ledger, bob).rate(task.id, 4) > 0
        assert alice.balance() == Decimal("1000") - Decimal("0.85") + bounty

        nfts = client.nfts()
        assert [n["task"] for n in nfts] == [task.id, task.id + 1, task.id + 2]
        assert nfts[0]["output"]["sha256"] == out.sha256 and nfts[0]["prompt"] == "a quiet valley"
        record = ledger.node(node_account.address)
        assert record is not None and record["fulfilled"] == 3 and record["score"] > 3.0
    finally:
        node.stop()
        server.join(timeout=10)
    assert not server.is_alive(), "serve() returns after stop()"


def test_nodes_are_ranked_by_score_then_price_and_submit_picks_within_max_price(
    tmp_path: Path, ledger: flownet.Ledger
) -> None:
    def node_with_price(name: str, price: str) -> flownet.Node:
        account = flownet.Account.create(ledger, name)
        node = flownet.Node(ledger, account, name=name, endpoint=f"http://127.0.0.1:1/{name}")

        @node.model("echo", price=price, kind="text-generation")
        def echo(prompt: str, params: Dict[str, Any]) -> str:
            return prompt

        node.register()
        return node

    dear = node_with_price("dear", "0.5")
    cheap = node_with_price("cheap", "0.2")
    client = flownet.Client(ledger, flownet.Account.create(ledger, "alice"))
    assert [n["name"] for n in client.nodes(model="echo")] == ["cheap", "dear"], "equal scores: cheaper first"

    # Without a node, the best-ranked node within the price is paid.
    task = client.submit("hello", "echo")
    assert task.info()["node"] == cheap.address
    assert client.cancel(task) == Decimal("0.2")
    task = client.submit("hello", "echo", node=dear.address)
    assert task.info()["node"] == dear.address and task.info()["price"] == 50_000_000

    # A 5-star rating from a payer lifts the dear node above the cheap one.
    assert dear.serve(once=True, listen="127.0.0.1:0") == 1
    assert task.status == "fulfilled"
    client.rate(task, 5)
    assert [n["name"] for n in client.nodes(model="echo")] == ["dear", "cheap"]
    assert client.submit("again", "echo").info()["node"] == dear.address
    assert client.submit("again", "echo", max_price="0.3").info()["node"] == cheap.address
    with pytest.raises(flownet.FlowNetError, match="no node offers echo at or under your max price"):
        client.submit("again", "echo", max_price="0.1")
    assert client.nodes(model="nothing") == []


def test_a_handler_that_says_the_input_is_bad_declines_and_the_escrow_comes_back_at_once(ledger: flownet.Ledger, endpoint: str) -> None:
    node_account = flownet.Account.create(ledger, "node")
    alice = flownet.Account.create(ledger, "alice")
    node = flownet.Node(ledger, node_account, name="picky node", endpoint=endpoint)

    @node.model("picky", price="2", kind="text-generation")
    def picky(prompt: str, params: Dict[str, Any]) -> str:
        if prompt != "please":
            raise ValueError("only 'please' is understood")
        return "thank you"

    node.register()
    client = flownet.Client(ledger, alice)
    before = alice.balance()
    task = client.submit("now", "picky")
    assert alice.balance() == before - Decimal("2")
    assert node.serve(once=True) == 0
    with pytest.raises(flownet.InvalidState, match=r"declined by its node \(.*only 'please' is understood\).*escrow of 2 FLOWNET came back"):
        task.wait(timeout=10)
    assert alice.balance() == before
    assert client.task(task.id).status == "declined"
    (listed,) = client.nodes(model="picky")
    assert listed["stats"]["declined"] == 1 if "stats" in listed else listed["declined"] == 1


def test_a_python_embedding_handler_is_paid_for_the_tokens_it_says_it_read(ledger: flownet.Ledger, endpoint: str) -> None:
    node_account = flownet.Account.create(ledger, "embed-node")
    alice = flownet.Account.create(ledger, "embed-alice")
    node = flownet.Node(ledger, node_account, name="python embedder", endpoint=endpoint)
    seen: List[List[str]] = []

    @node.model("letters", price="1", kind="embedding", unit="thousand_tokens")
    def letters(texts: List[str], params: Dict[str, Any]) -> Dict[str, Any]:
        """A toy embedding: how often each of 'a', 'e', 'i' occurs; one token per word."""
        seen.append(texts)
        vectors = [[t.count(c) / max(1, len(t)) for c in "aei"] for t in texts]
        return {"embeddings": vectors, "tokens": [len(t.split()) for t in texts]}

    @node.model("untold", price="1", kind="embedding", unit="thousand_tokens")
    def untold(texts: List[str], params: Dict[str, Any]) -> List[List[float]]:
        return [[1.0] for _ in texts]

    server = threading.Thread(target=node.serve, kwargs={"interval_ms": 20})
    server.start()
    try:
        client = flownet.Client(ledger, alice)
        wait_until(lambda: bool(client.nodes(model="letters")), what="the node to register")
        (listed,) = client.nodes(model="letters")
        assert {m["model_id"]: m["unit"] for m in listed["models"]} == {"letters": "thousand_tokens", "untold": "thousand_tokens"}
        task = client.submit('{"input": ["a banana", "three green trees here"]}', "letters")
        out = task.wait(timeout=30)
        assert seen == [["a banana", "three green trees here"]]
        body = out.json()
        assert body["tokens"] == [2, 4] and body["usage"]["prompt_tokens"] == 6
        assert body["dimensions"] == 3 and len(body["embeddings"]) == 2
        info = task.info()
        assert info["units"] == 6
        # 1 FLOWNET per 1,000 tokens: 6 tokens cost 0.006; the rest of the escrow came back.
        assert alice.balance() == Decimal("1000") - Decimal("0.006")
        # A metered handler that does not say its tokens is declined, and refunded.
        before = alice.balance()
        declined = client.submit("hello", "untold")
        with pytest.raises(flownet.FlowNetError) as e:
            declined.wait(timeout=30)
        assert "tokens" in str(e.value)
        assert alice.balance() == before
    finally:
        node.stop()
        server.join(timeout=10)


def test_a_python_ocr_handler_gets_the_image_and_its_lines_become_the_reading(ledger: flownet.Ledger, endpoint: str) -> None:
    node_account = flownet.Account.create(ledger, "ocr-node")
    alice = flownet.Account.create(ledger, "ocr-alice")
    node = flownet.Node(ledger, node_account, name="python reader", endpoint=endpoint)
    sizes: List[Any] = []

    @node.model("sizer", price="0.2", kind="ocr")
    def sizer(image: bytes, params: Dict[str, Any]) -> List[Any]:
        """Reads nothing: says the image's size, as a line in its top half."""
        with Image.open(io.BytesIO(image)) as im:
            sizes.append(im.size)
            w, h = im.size
        return [{"text": f"{w} by {h}", "score": 0.75, "box": [[0, 0], [w, 0], [w, h // 2], [0, h // 2]]}, "second line"]

    @node.model("blind", price="0.2", kind="ocr")
    def blind(image: bytes, params: Dict[str, Any]) -> str:
        return "  \n "

    server = threading.Thread(target=node.serve, kwargs={"interval_ms": 20})
    server.start()
    try:
        client = flownet.Client(ledger, alice)
        wait_until(lambda: bool(client.nodes(model="sizer")), what="the node to register")
        (listed,) = client.nodes(model="sizer")
        assert {m["model_id"]: m["unit"] for m in listed["models"]} == {"sizer": "task", "blind": "task"}
        photo = io.BytesIO()
        Image.new("RGB", (40, 30), (9, 9, 9)).save(photo, format="PNG")
        out = client.submit(photo.getvalue(), "sizer").wait(timeout=30)
        assert sizes == [(40, 30)]
        body = out.json()
        assert body["text"] == "40 by 30\nsecond line"
        assert (body["width"], body["height"]) == (40, 30)
        assert body["lines"][0] == {"text": "40 by 30", "score": 0.75, "box": [[0, 0], [40, 0], [40, 15], [0, 15]]}
        assert body["lines"][1]["box"] == [[0, 0], [40, 0], [40, 30], [0, 30]]
        # A handler that finds no text is declined, and the requester refunded.
        before = alice.balance()
        with pytest.raises(flownet.FlowNetError) as e:
            client.submit(photo.getvalue(), "blind").wait(timeout=30)
        assert "no text" in str(e.value)
        assert alice.balance() == before
    finally:
        node.stop()
        server.join(timeout=10)


def test_a_python_speech_handler_returns_a_wav(ledger: flownet.Ledger, endpoint: str) -> None:
    import wave

    node_account = flownet.Account.create(ledger, "tts-node")
    alice = flownet.Account.create(ledger, "tts-alice")
    node = flownet.Node(ledger, node_account, name="python speaker", endpoint=endpoint)

    @node.model("beeper", price="0.1", kind="text-to-speech")
    def beeper(text: str, params: Dict[str, Any]) -> bytes:
        """One 440 Hz beep of 10 ms per character."""
        rate = 8000
        samples = [int(10000 * math.sin(2 * math.pi * 440 * i / rate)) for i in range(len(text) * rate // 100)]
        buf = io.BytesIO()
        with wave.open(buf, "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(rate)
            w.writeframes(b"".join(s.to_bytes(2, "little", signed=True) for s in samples))
        return buf.getvalue()

    server = threading.Thread(target=node.serve, kwargs={"interval_ms": 20})
    server.start()
    try:
        client = flownet.Client(ledger, alice)
        wait_until(lambda: bool(client.nodes(model="beeper")), what="the node to register")
        out = client.submit("ten chars!", "beeper").wait(timeout=30)
        assert out.mime == "audio/wav"
        with wave.open(io.BytesIO(out.bytes)) as w:
            assert (w.getframerate(), w.getnframes()) == (8000, 800)
    finally:
        node.stop()
        server.join(timeout=10)
