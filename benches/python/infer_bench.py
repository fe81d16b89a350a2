#!/usr/bin/env python3
"""Time Python ONNX Runtime on FlowNet's models, as the baseline for the Rust side.

Each model in the models directory (one sub-directory with a manifest.json
each) is run at batch 1 on the CPU with intra_op_num_threads=N,
inter_op_num_threads=1 and sequential execution, so that the numbers compare
directly with a Rust `ort` session built with the same settings. One JSON
object per model goes to stdout, one per line:

    {"model": "mobilenet-v2", "threads": 2, "iters": 50, "batch": 1,
     "ms_per_item_p50": 4.2, "ms_per_item_mean": 4.3}

Usage (from the repo root, after scripts/setup.sh):
    .venv/bin/python benches/python/infer_bench.py --threads 2 --iters 50
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort

REPO = Path(__file__).resolve().parents[2]
# make_models.py holds the one copy of the torchvision preprocessing, so the
# benchmark feeds exactly what the model check feeds.
sys.path.insert(0, str(REPO / "scripts"))
from make_models import preprocess_imagenet  # noqa: E402

# Fixed inputs, so every run (and the Rust side) times the same work.
TERRAIN_SEED = 0
TERRAIN_SIGMA = 80.0
TERRAIN_DIFFICULTY = 0.5  # the model's label for difficulty 50.5 on its 1..100 scale


def inputs_for(model_id: str, models: Path) -> dict[str, np.ndarray] | None:
    if model_id == "terrain-diffusion-128":
        rng = np.random.default_rng(TERRAIN_SEED)
        return {
            "noisy": rng.standard_normal((1, 1, 128, 128), dtype=np.float32) * np.float32(TERRAIN_SIGMA),
            "sigma": np.full(1, TERRAIN_SIGMA, dtype=np.float32),
            "difficulty": np.full(1, TERRAIN_DIFFICULTY, dtype=np.float32),
        }
    if model_id == "mobilenet-v2":
        return {"input": preprocess_imagenet(models / "testdata" / "chelsea.png")}
    return None


def bench(path: Path, feeds: dict[str, np.ndarray], threads: int, iters: int, warmup: int) -> list[float]:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    sess = ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])
    # Warm-up runs let ONNX Runtime allocate its buffers and the thread pool
    # start, which the first runs would otherwise pay for.
    for _ in range(warmup):
        sess.run(None, feeds)
    times = []
    for _ in range(iters):
        start = time.perf_counter()
        sess.run(None, feeds)
        times.append((time.perf_counter() - start) * 1000.0)
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=1, help="intra-op threads (default 1)")
    parser.add_argument("--iters", type=int, default=50, help="timed runs per model (default 50)")
    parser.add_argument("--warmup", type=int, default=5, help="untimed runs first (default 5)")
    parser.add_argument(
        "--models",
        type=Path,
        default=Path(os.environ.get("FLOWNET_MODELS", REPO / "models")),
        help="models directory (default: $FLOWNET_MODELS or the repo's models/)",
    )
    parser.add_argument("--model", action="append", help="only this model id (repeatable)")
    args = parser.parse_args()
    if args.threads < 1 or args.iters < 1 or args.warmup < 0:
        parser.error("--threads and --iters must be at least 1, --warmup at least 0")

    manifests = sorted(args.models.glob("*/manifest.json"))
    if not manifests:
        print(f"no models in {args.models}; run scripts/setup.sh", file=sys.stderr)
        return 1
    for manifest_path in manifests:
        manifest = json.loads(manifest_path.read_text())
        model_id = manifest["id"]
        if args.model and model_id not in args.model:
            continue
        feeds = inputs_for(model_id, args.models)
        if feeds is None:
            print(f"skipping {model_id}: no benchmark input defined for it", file=sys.stderr)
            continue
        times = bench(manifest_path.parent / manifest["weights"], feeds, args.threads, args.iters, args.warmup)
        result = {
            "model": model_id,
            "threads": args.threads,
            "iters": args.iters,
            "batch": 1,
            "ms_per_item_p50": round(statistics.median(times), 3),
            "ms_per_item_mean": round(statistics.fmean(times), 3),
        }
        print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
