"""examples/python: a node running the terrain model with onnxruntime in Python, and a
user script paying for a prompt and saving the image."""

from __future__ import annotations

import hashlib
import io
import json
import subprocess
import sys
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image
from support import REPO, Proc, free_port, models_dir

EXAMPLES = REPO / "examples" / "python"


def test_the_python_terrain_node_serves_the_submit_script(tmp_path: Path, spawn: Callable[..., Proc]) -> None:
    models = models_dir()
    home = tmp_path / "home"
    endpoint = f"http://127.0.0.1:{free_port()}"
    env = {"FLOWNET_MODELS": str(models), "FLOWNET_THREADS": "1"}
    node = spawn(
        [sys.executable, str(EXAMPLES / "terrain_node.py"), "--data-dir", str(home), "--endpoint", endpoint,
         "--interval-ms", "50"],
        env=env,
    )  # fmt: skip
    node.wait_for_log("serving terrain-py")

    def submit(out: Path) -> dict:
        done = subprocess.run(
            [sys.executable, str(EXAMPLES / "submit.py"), "--data-dir", str(home), "--params", '{"difficulty": 80}',
             "--out", str(out), "--stars", "5", "jagged peaks"],
            capture_output=True, text=True, timeout=120, env={**env, "PATH": str(Path(sys.executable).parent)},
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        return dict(json.loads(done.stdout))

    first = submit(tmp_path / "first.png")
    image_bytes = (tmp_path / "first.png").read_bytes()
    assert hashlib.sha256(image_bytes).hexdigest() == first["sha256"] and first["mime"] == "image/png"
    with Image.open(io.BytesIO(image_bytes)) as image:
        assert image.size == (128, 128) and image.mode == "RGB"
        pixels = np.asarray(image).reshape(-1, 3)
        assert len(np.unique(pixels, axis=0)) > 100, "a terrain, not a flat colour"
    manifest = json.loads((models / "terrain-diffusion-128" / "manifest.json").read_text())
    assert first["weights_sha256"] == manifest["sha256"], "the offer names the weights that ran"
    assert first["bounty"] is not None and first["nft"] == 1

    # Same prompt and params, same weights: the same image.
    second = submit(tmp_path / "second.png")
    assert second["sha256"] == first["sha256"] and second["task"] == first["task"] + 1
