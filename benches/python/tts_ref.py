#!/usr/bin/env python3
"""The reference pipeline for FlowNet's text-to-speech voices (Piper), in Python.

onnxruntime + numpy, with phonemes from the espeak-ng binary, step for step what the
Rust pipeline (flownet-infer/src/speech.rs) does: whitespace collapsed; clauses
ending at , ; : . ! ? before a space or the end, each phonemized by its own
`espeak-ng -q --ipa -v <voice>` run with its punctuation kept; sentences (ending at
. ! ?) become `^ _ (id _)* $` and one model run each; samples scaled so the loudest
is 32767; 0.2 s of silence between sentences.

    # speak a text to a WAV file (--pcm for raw 16-bit samples)
    .venv/bin/python benches/python/tts_ref.py --say "Hello there." --out hello.wav
    # the real-time factor (seconds of compute per second of audio), one JSON line
    .venv/bin/python benches/python/tts_ref.py --bench --threads 1 --iters 5
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
import wave
from pathlib import Path

import numpy as np
import onnxruntime as ort

REPO = Path(__file__).resolve().parents[2]
MODEL = "piper-joe-medium"
SILENCE_S = 0.2

# The benchmark's text: three sentences of everyday speech, spoken by both sides.
BENCH_TEXT = (
    "FlowNet lets anyone pay a node to run a model, and get the answer back in seconds. "
    "The node is paid from escrow when it delivers; if it does not, the money comes back. "
    "Ratings build each node's reputation over time."
)


def clauses(text: str) -> list[tuple[str, str | None]]:
    out, start = [], 0
    for i, c in enumerate(text):
        if c in ",;:.!?" and (i + 1 == len(text) or text[i + 1].isspace()):
            out.append((text[start:i].strip(), c))
            start = i + 1
    if text[start:].strip():
        out.append((text[start:].strip(), None))
    return out


def espeak(clause: str, voice: str) -> str:
    if not clause.strip():
        return ""
    binary = os.environ.get("FLOWNET_ESPEAK") or "espeak-ng"
    out = subprocess.run([binary, "-q", "--ipa", "-v", voice], input=clause.encode(), capture_output=True, check=True)
    return " ".join(out.stdout.decode().split())


def phonemize(text: str, voice: str) -> list[str]:
    sentences, current = [], ""
    for clause, end in clauses(text):
        ipa = espeak(clause, voice)
        if current and ipa:
            current += " "
        current += ipa
        if end:
            current += end
            if end in ".!?":
                sentences.append(current)
                current = ""
    if current.strip():
        sentences.append(current)
    return [s for s in sentences if s.strip()]


class Reference:
    def __init__(self, model_dir: Path, threads: int = 1):
        manifest = json.loads((model_dir / "manifest.json").read_text())
        self.config = json.loads((model_dir / manifest["files"]["voice"]).read_text(encoding="utf-8"))
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.session = ort.InferenceSession(
            str(model_dir / manifest["weights"]), sess_options=opts, providers=["CPUExecutionProvider"]
        )
        self.rate = self.config["audio"]["sample_rate"]
        self.map = {k: v for k, v in self.config["phoneme_id_map"].items() if len(k) == 1}

    def ids(self, phonemes: str) -> list[int]:
        out = self.map["^"] + self.map["_"]
        for c in phonemes:
            if c in self.map:
                out += self.map[c] + self.map["_"]
        return out + self.map["$"]

    def speak(self, text: str, speed: float = 1.0, noise_scale: float | None = None, noise_w: float | None = None) -> np.ndarray:
        text = " ".join(text.split())
        inf = self.config["inference"]
        scales = np.array(
            [
                inf["noise_scale"] if noise_scale is None else noise_scale,
                inf["length_scale"] / speed,
                inf["noise_w"] if noise_w is None else noise_w,
            ],
            dtype=np.float32,
        )
        pieces = []
        for n, sentence in enumerate(phonemize(text, self.config["espeak"]["voice"])):
            ids = np.array([self.ids(sentence)], dtype=np.int64)
            audio = self.session.run(None, {"input": ids, "input_lengths": np.array([ids.shape[1]], dtype=np.int64), "scales": scales})[0]
            audio = audio.reshape(-1)
            peak = max(0.01, float(np.abs(audio).max()))
            if n > 0:
                pieces.append(np.zeros(int(SILENCE_S * self.rate), dtype=np.int16))
            pieces.append(np.clip(audio * (32767.0 / peak), -32768, 32767).astype(np.int16))
        return np.concatenate(pieces)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--say", help="the text to speak")
    parser.add_argument("--out", type=Path, help="where to write the audio")
    parser.add_argument("--pcm", action="store_true", help="raw 16-bit little-endian samples instead of WAV")
    parser.add_argument("--noise-scale", type=float)
    parser.add_argument("--noise-w", type=float)
    parser.add_argument("--phonemes", action="store_true", help="print each sentence's phoneme ids as JSON")
    parser.add_argument("--bench", action="store_true")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--iters", type=int, default=5)
    parser.add_argument("--models", type=Path, default=Path(os.environ.get("FLOWNET_MODELS", REPO / "models")))
    args = parser.parse_args()
    ref = Reference(args.models / MODEL, threads=args.threads)
    if args.phonemes and args.say:
        sentences = phonemize(" ".join(args.say.split()), ref.config["espeak"]["voice"])
        print(json.dumps([ref.ids(s) for s in sentences]))
        return 0
    if args.say is not None:
        pcm = ref.speak(args.say, noise_scale=args.noise_scale, noise_w=args.noise_w)
        if args.out is None:
            parser.error("--say needs --out")
        if args.pcm:
            args.out.write_bytes(pcm.astype("<i2").tobytes())
        else:
            with wave.open(str(args.out), "wb") as w:
                w.setnchannels(1)
                w.setsampwidth(2)
                w.setframerate(ref.rate)
                w.writeframes(pcm.astype("<i2").tobytes())
        return 0
    if args.bench:
        ref.speak(BENCH_TEXT)
        times, seconds = [], 0.0
        for _ in range(args.iters):
            start = time.perf_counter()
            pcm = ref.speak(BENCH_TEXT)
            times.append(time.perf_counter() - start)
            seconds = len(pcm) / ref.rate
        p50 = statistics.median(times)
        print(json.dumps({"model": MODEL, "threads": args.threads, "iters": args.iters, "audio_s": round(seconds, 2), "real_time_factor": round(p50 / seconds, 4)}))
        return 0
    parser.error("give --say TEXT --out FILE, --say TEXT --phonemes, or --bench")
    return 2


if __name__ == "__main__":
    sys.exit(main())
