#!/usr/bin/env python3
"""A FlowNet node whose model runs in Python.

The model is the project's terrain generator (the `terrain-diffusion-128` ONNX weights
that scripts/setup.sh prepares from the PyPI package adaptive-terrain-diffusion), run
here with the `onnxruntime` Python package and numpy. The Rust node runtime does the
rest: publishing the offer, claiming paid tasks, storing and serving the PNG,
fulfilling, getting paid, resuming after a restart.

Serve it with the `flownet` command (its data dir, key and ledger):

    flownet init --key node
    flownet --key node node serve --handler terrain_node:node     # from this directory

or as a script, which opens (or creates) the ledger in --data-dir itself:

    python examples/python/terrain_node.py --data-dir /tmp/flownet-py

Then pay for a prompt with examples/python/submit.py.
"""

from __future__ import annotations

import argparse
import hashlib
import os
from pathlib import Path
from typing import Any, Dict, Optional

import numpy as np
import onnxruntime as ort

import flownet

MODEL_ID = "terrain-py"
MODELS = Path(os.environ.get("FLOWNET_MODELS", Path(__file__).resolve().parents[2] / "models"))
WEIGHTS = MODELS / "terrain-diffusion-128" / "model.onnx"
SIGMA = 80.0
MAX_RELIEF_M = 22.16864

PROMPT_MAPPING = (
    "The prompt is not understood as language: the first 8 bytes of its SHA-256 (big-endian) "
    "seed numpy's default generator, whose standard normal samples times 80 are the 128x128 "
    "noise; params.difficulty (1..100, default 50) conditions the model. The denoised map "
    "becomes heights as the package does (sinh scaling up to 22.17 m) and is coloured from "
    "blue low ground through green and sand to brown and white peaks, as a 128x128 PNG."
)


def load_session(threads: int) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    return ort.InferenceSession(str(WEIGHTS), sess_options=options, providers=["CPUExecutionProvider"])


SESSION = load_session(int(os.environ.get("FLOWNET_THREADS", "2")))
# The offer on the ledger names the weights that run: the same file as the Rust node's
# terrain-diffusion-128, so anyone can check which model made an output.
WEIGHTS_SHA256 = hashlib.sha256(WEIGHTS.read_bytes()).hexdigest()

# Stops of the colour map: height in [0, 1] -> RGB.
STOPS = np.array([0.0, 0.15, 0.4, 0.6, 0.8, 1.0])
COLOURS = np.array(
    [[40, 80, 160], [70, 150, 90], [120, 170, 80], [210, 190, 130], [140, 100, 70], [250, 250, 250]], dtype=np.float64
)


def terrain(prompt: str, params: Dict[str, Any]) -> np.ndarray:
    """Generates a 128x128 terrain image from the prompt's hash and params.difficulty."""
    difficulty = float(params.get("difficulty", 50))
    if not 1 <= difficulty <= 100:
        raise ValueError(f"difficulty must be 1..100, got {difficulty}")
    seed = int.from_bytes(hashlib.sha256(prompt.encode()).digest()[:8], "big")
    noisy = np.random.default_rng(seed).standard_normal((1, 1, 128, 128), dtype=np.float32) * np.float32(SIGMA)
    (denoised,) = SESSION.run(
        None,
        {
            "noisy": noisy,
            "sigma": np.full(1, SIGMA, dtype=np.float32),
            "difficulty": np.full(1, (difficulty - 1) / 99, dtype=np.float32),
        },
    )
    u = np.clip((denoised[0, 0].astype(np.float64) + 1) / 2, 0, 1)
    heights = np.clip(0.1 * np.sinh(u * np.arcsinh(MAX_RELIEF_M / 0.1)), 0, MAX_RELIEF_M)
    span = np.ptp(heights)
    t = (heights - heights.min()) / span if span > 0 else np.zeros_like(heights)
    rgb = np.stack([np.interp(t, STOPS, COLOURS[:, c]) for c in range(3)], axis=-1)
    return rgb.round().astype(np.uint8)


def build_node(
    ledger: Optional[flownet.Ledger] = None, account: Optional[flownet.Account] = None, endpoint: Optional[str] = None
) -> flownet.Node:
    node = flownet.Node(ledger, account, name="python terrain", endpoint=endpoint)
    node.model(
        MODEL_ID,
        price="0.4",
        kind="text-to-image",
        name="Adaptive Terrain Diffusion (onnxruntime in Python)",
        weights_sha256=WEIGHTS_SHA256,
        prompt_mapping=PROMPT_MAPPING,
        defaults={"difficulty": 50},
    )(terrain)
    return node


# For `flownet node serve --handler terrain_node:node`.
node = build_node()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", type=Path, default=Path.home() / ".flownet", help="ledger, keys and blobs")
    parser.add_argument("--key", default="node", help="the key the node is paid to")
    parser.add_argument("--endpoint", default="http://127.0.0.1:7070", help="where outputs are served")
    parser.add_argument("--interval-ms", type=int, default=250, help="how often to look for tasks")
    args = parser.parse_args()
    ledger = flownet.Ledger.open(args.data_dir, create=True)
    try:
        account = flownet.Account.load(ledger, args.key)
    except flownet.NotFound:
        account = flownet.Account.create(ledger, args.key)
    served = build_node(ledger, account, args.endpoint)
    print(f"node {account.address} serving {MODEL_ID} at {args.endpoint}; Ctrl-C stops", flush=True)
    served.serve(interval_ms=args.interval_ms)


if __name__ == "__main__":
    main()
