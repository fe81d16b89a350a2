#!/usr/bin/env python3
"""The reference pipeline for FlowNet's embedding models, in Python.

onnxruntime + numpy + Hugging Face `tokenizers`, from the model's manifest:
the model's tokenizer.json with truncation at the manifest's context_length
(tokens per text, special tokens included) and no padding, a batch padded to
its longest text, the encoder's last hidden state averaged over the attention
mask (float64, as numpy promotes it) and L2-normalised. This is what
sentence-transformers computes for all-MiniLM-L6-v2; the Rust pipeline
(flownet-infer/src/embed.rs) must agree with it to 1e-4.

    # embeddings of texts, as JSON: {"embeddings": [[...], ...], "tokens": [...]}
    .venv/bin/python benches/python/embed_ref.py --texts '["a", "b"]'
    # sentences per second over the benchmark sentences, one JSON line
    .venv/bin/python benches/python/embed_ref.py --bench --threads 1 --iters 20
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
from tokenizers import Tokenizer

REPO = Path(__file__).resolve().parents[2]
MODEL = "all-minilm-l6-v2"

# The benchmark's texts: 32 sentences of everyday lengths (8 to 30 words),
# the same on the Rust side (flownet_benches::EMBED_SENTENCES reads this file's
# list through benches/python/embed_sentences.json).
SENTENCES_FILE = Path(__file__).resolve().parent / "embed_sentences.json"


class Reference:
    def __init__(self, model_dir: Path, threads: int = 1):
        manifest = json.loads((model_dir / "manifest.json").read_text())
        self.max_tokens = int(manifest.get("context_length") or 512)
        self.tokenizer = Tokenizer.from_file(str(model_dir / manifest["files"]["tokenizer"]))
        self.tokenizer.enable_truncation(self.max_tokens)
        self.tokenizer.no_padding()
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.session = ort.InferenceSession(
            str(model_dir / manifest["weights"]), sess_options=opts, providers=["CPUExecutionProvider"]
        )
        self.inputs = {i.name for i in self.session.get_inputs()}

    def tokens(self, texts: list[str]) -> list[int]:
        return [len(e.ids) for e in self.tokenizer.encode_batch(texts)]

    def embed(self, texts: list[str]) -> np.ndarray:
        encodings = self.tokenizer.encode_batch(texts)
        length = max(len(e.ids) for e in encodings)
        ids = np.zeros((len(texts), length), dtype=np.int64)
        types = np.zeros_like(ids)
        mask = np.zeros_like(ids)
        for row, e in enumerate(encodings):
            ids[row, : len(e.ids)] = e.ids
            types[row, : len(e.ids)] = e.type_ids
            mask[row, : len(e.ids)] = 1
        feeds = {"input_ids": ids, "attention_mask": mask}
        if "token_type_ids" in self.inputs:
            feeds["token_type_ids"] = types
        hidden = self.session.run(None, feeds)[0]
        summed = (hidden * mask[..., None]).sum(axis=1)
        mean = summed / mask.sum(axis=1, keepdims=True)
        norm = np.maximum(np.linalg.norm(mean, axis=1, keepdims=True), 1e-12)
        return mean / norm


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--texts", help="a JSON list of texts to embed")
    parser.add_argument("--bench", action="store_true", help="time the benchmark sentences")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--iters", type=int, default=20)
    parser.add_argument(
        "--models", type=Path, default=Path(os.environ.get("FLOWNET_MODELS", REPO / "models"))
    )
    args = parser.parse_args()
    ref = Reference(args.models / MODEL, threads=args.threads)
    if args.texts is not None:
        texts = json.loads(args.texts)
        vectors = ref.embed(texts)
        print(json.dumps({"embeddings": vectors.tolist(), "tokens": ref.tokens(texts)}))
        return 0
    if args.bench:
        sentences = json.loads(SENTENCES_FILE.read_text())
        for _ in range(3):
            ref.embed(sentences)
        times = []
        for _ in range(args.iters):
            start = time.perf_counter()
            ref.embed(sentences)
            times.append(time.perf_counter() - start)
        p50 = statistics.median(times)
        print(
            json.dumps(
                {
                    "model": MODEL,
                    "threads": args.threads,
                    "iters": args.iters,
                    "sentences": len(sentences),
                    "sentences_per_s": round(len(sentences) / p50, 1),
                }
            )
        )
        return 0
    parser.error("give --texts JSON or --bench")
    return 2


if __name__ == "__main__":
    sys.exit(main())
