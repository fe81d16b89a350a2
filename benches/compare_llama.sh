#!/usr/bin/env bash
# Tokens per second of FlowNet's GGUF engine (benches/benches/llm.rs) beside llama.cpp's
# own llama-bench on the same GGUF file and thread counts, in one go.
#
# llama-bench is not part of the repository: it is built outside it (default
# $LLAMA_BUILD=/work/refbench) from the llama.cpp inside the PyPI sdist of
# llama-cpp-python 0.3.36, fetched with pip. Nothing of it is committed.
# Usage: benches/compare_llama.sh [THREADS, e.g. 1,2]
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
THREADS="${1:-1,2}"
LLAMA_BUILD="${LLAMA_BUILD:-/work/refbench}"
eval "$(scripts/setup.sh)"
GGUF="$FLOWNET_MODELS/smollm2-135m-instruct/model.gguf"

BENCH="$LLAMA_BUILD/llama.cpp/build/bin/llama-bench"
if [[ ! -x "$BENCH" ]]; then
  echo "building llama-bench in $LLAMA_BUILD (about 5 minutes on 2 cores)" >&2
  mkdir -p "$LLAMA_BUILD"
  .venv/bin/python -m pip download --quiet --no-deps --no-binary :all: \
    llama-cpp-python==0.3.36 -d "$LLAMA_BUILD"
  tar -xzf "$LLAMA_BUILD"/llama_cpp_python-0.3.36.tar.gz -C "$LLAMA_BUILD"
  rm -rf "$LLAMA_BUILD/llama.cpp"
  mv "$LLAMA_BUILD/llama_cpp_python-0.3.36/vendor/llama.cpp" "$LLAMA_BUILD/llama.cpp"
  cmake -S "$LLAMA_BUILD/llama.cpp" -B "$LLAMA_BUILD/llama.cpp/build" -DCMAKE_BUILD_TYPE=Release \
    -DLLAMA_CURL=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF >&2
  cmake --build "$LLAMA_BUILD/llama.cpp/build" --target llama-bench -j2 >&2
fi

reference="$("$BENCH" -m "$GGUF" -t "$THREADS" -p 512 -n 128 -r 5 -o jsonl 2>/dev/null)"
ours="$(FLOWNET_BENCH_THREADS="$THREADS" cargo bench -q -p flownet-benches --bench llm 2>/dev/null)"
REF="$reference" OURS="$ours" .venv/bin/python - <<'PY'
import json, os
ref = {}
for r in map(json.loads, os.environ["REF"].splitlines()):
    kind = "prefill" if r["n_prompt"] > 0 else "decode"
    ref[(kind, r["n_threads"])] = r["avg_ts"]
print(f"{'threads':>7} {'what':<8}{'flownet tok/s':>15}{'llama-bench tok/s':>19}{'ratio':>8}")
for o in map(json.loads, os.environ["OURS"].splitlines()):
    t = o["threads"]
    for kind in ("prefill", "decode"):
        ours, theirs = o[kind]["tokens_per_s"], ref.get((kind, t), float("nan"))
        print(f"{t:>7} {kind:<8}{ours:>15.1f}{theirs:>19.1f}{ours / theirs:>8.2f}")
PY
