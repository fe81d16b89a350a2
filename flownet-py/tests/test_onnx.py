"""ONNX models by manifest, as the Rust command serves them, next to Python models."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict

import pytest
from support import models_dir

import flownet


def test_onnx_models_run_on_the_rust_engine_beside_python_models(ledger: flownet.Ledger, endpoint: str) -> None:
    models = models_dir()
    node = flownet.Node(ledger, flownet.Account.create(ledger, "node"), name="mixed", endpoint=endpoint)
    node.onnx("mobilenet-v2", price="0.1", models_dir=models)

    @node.model("label-length", price="0.05", kind="text-generation")
    def label_length(prompt: str, params: Dict[str, Any]) -> str:
        return str(len(prompt))

    with pytest.raises(flownet.AlreadyExists):
        node.onnx("mobilenet-v2", price="0.2", models_dir=models)
    with pytest.raises(flownet.FlowNetError, match="no-such-model"):
        node.onnx("no-such-model", price="0.2", models_dir=models)

    photo = (models / "testdata" / "chelsea.png").read_bytes()
    local = node.infer("mobilenet-v2", photo, {"top_k": 2}, threads=1)
    assert local.mime == "application/json"
    assert local.json()["labels"][0]["label"] == "Egyptian Mau"

    registered = node.register()
    assert [m["model_id"] for m in registered["models"]] == ["mobilenet-v2", "label-length"]
    client = flownet.Client(ledger, flownet.Account.create(ledger, "alice"))
    # On the embedded ledger the node reads the image from the data dir both share.
    classified = client.submit(photo, "mobilenet-v2", params={"top_k": 3})
    counted = client.submit("tabby", "label-length")
    assert node.serve(once=True, threads=1) == 2
    labels = classified.wait(timeout=10).json()["labels"]
    assert len(labels) == 3 and labels[0]["label"] == "Egyptian Mau"
    assert labels[0]["score"] == pytest.approx(local.json()["labels"][0]["score"], abs=1e-4)
    assert counted.wait(timeout=10).text() == "5"
    (offer,) = [m for m in client.nodes()[0]["models"] if m["model_id"] == "mobilenet-v2"]
    manifest_sha = json.loads((models / "mobilenet-v2" / "manifest.json").read_text())["sha256"]
    assert offer["weights_sha256"] == manifest_sha


def test_a_handler_returning_the_wrong_type_is_an_inference_error(ledger: flownet.Ledger, tmp_path: Path) -> None:
    node = flownet.Node(name="local")

    @node.model("bad", price="0.1", kind="text-generation")
    def bad(prompt: str, params: Dict[str, Any]) -> object:
        return object()

    with pytest.raises(flownet.Inference, match="must return bytes, str"):
        node.infer("bad", "x")
    with pytest.raises(flownet.InvalidInput, match="no ledger and account"):
        node.serve(once=True)
