#!/usr/bin/env bash
# Inference per item, Rust (ort) vs Python (onnxruntime), same models, same runtime
# library, same thread count, in one go. Usage: benches/compare_python.sh [THREADS] [ITERS]
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
THREADS="${1:-1}"
ITERS="${2:-50}"
eval "$(scripts/setup.sh)"
cargo build --release -q -p flownet-benches --bin infer-compare
PAGES="$(mktemp -d)"
trap 'rm -rf "$PAGES"' EXIT
.venv/bin/python benches/python/ocr_ref.py --bench-pages "$PAGES"
rust="$("${CARGO_TARGET_DIR:-target}"/release/infer-compare --threads "$THREADS" --iters "$ITERS" --ocr-pages "$PAGES")"
python="$(.venv/bin/python benches/python/infer_bench.py --threads "$THREADS" --iters "$ITERS")"
python="$python
$(.venv/bin/python benches/python/embed_ref.py --bench --threads "$THREADS" --iters "$(( ITERS < 20 ? ITERS : 20 ))")
$(.venv/bin/python benches/python/ocr_ref.py --bench --threads "$THREADS" --iters "$(( ITERS < 10 ? ITERS : 10 ))")
$(.venv/bin/python benches/python/tts_ref.py --bench --threads "$THREADS" --iters "$(( ITERS < 5 ? ITERS : 5 ))")"
RUST="$rust" PY="$python" .venv/bin/python - <<'PY'
import json, os
rust = {r["model"]: r for r in map(json.loads, os.environ["RUST"].splitlines())}
py = {r["model"]: r for r in map(json.loads, os.environ["PY"].splitlines())}
print(f"{'model':<24}{'threads':>8}{'rust ms':>10}{'python ms':>11}{'rust/python':>13}{'rust request ms':>17}")
for model in sorted(rust.keys() & py.keys()):
    r, p = rust[model], py[model]
    if "sentences_per_s" in r or "images_per_s" in r or "real_time_factor" in r:
        continue
    ratio = r["ms_per_item_p50"] / p["ms_per_item_p50"]
    print(f"{model:<24}{r['threads']:>8}{r['ms_per_item_p50']:>10.2f}{p['ms_per_item_p50']:>11.2f}{ratio:>13.2f}{r['request_ms_p50']:>17.2f}")
for model in sorted(rust.keys() & py.keys()):
    r, p = rust[model], py[model]
    if "sentences_per_s" in r:
        ratio = r["sentences_per_s"] / p["sentences_per_s"]
        print(f"\n{model}: {r['sentences']} sentences per request, {r['threads']} threads, whole pipeline "
              f"(tokenize, run, pool): rust {r['sentences_per_s']:.1f} sentences/s, "
              f"python {p['sentences_per_s']:.1f} sentences/s, rust/python {ratio:.2f}x")
    if "images_per_s" in r:
        ratio = r["images_per_s"] / p["images_per_s"]
        print(f"\n{model}: {r['images']} rendered pages, {r['threads']} threads, whole pipeline "
              f"(decode, detect, classify, recognise): rust {r['images_per_s']:.2f} images/s, "
              f"python {p['images_per_s']:.2f} images/s, rust/python {ratio:.2f}x")
    if "real_time_factor" in r:
        ratio = p["real_time_factor"] / r["real_time_factor"]
        print(f"\n{model}: {r['audio_s']:.2f} s of speech (python's {p['audio_s']:.2f} s; VITS samples noise), {r['threads']} threads, "
              f"whole pipeline (phonemize, run, encode): rust real-time factor {r['real_time_factor']:.4f}, "
              f"python {p['real_time_factor']:.4f} (lower is faster), python/rust {ratio:.2f}x")
PY
