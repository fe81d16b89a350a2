#!/usr/bin/env bash
# The same streamed chat request through FlowNet's gateway (`flownet web --node`:
# embedded ledger, the node in the gateway's process, API key, escrow, settlement) and
# through llama.cpp's own `llama-server`, one after the other on the same GGUF and
# thread count: time to first token (p50, p99) and tokens per second at the client
# (benches/python/stream_client.py, the same client for both).
#
# llama-server is not part of the repository: it is built outside it (default
# $LLAMA_BUILD=/work/refbench) from the llama.cpp inside the PyPI sdist of
# llama-cpp-python 0.3.36, fetched with pip. Nothing of it is committed.
# llama-server reuses the common prefix of consecutive prompts (its prompt cache);
# FlowNet runs each task from scratch. Both modes of llama-server are measured.
# Usage: benches/compare_server.sh [THREADS, default 2] [REQUESTS, default 30]
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
THREADS="${1:-2}"
N="${2:-30}"
LLAMA_BUILD="${LLAMA_BUILD:-/work/refbench}"
eval "$(scripts/setup.sh)"
MODEL=smollm2-135m-instruct
GGUF="$FLOWNET_MODELS/$MODEL/model.gguf"
PY="$REPO/.venv/bin/python"
CLIENT="$REPO/benches/python/stream_client.py"

SERVER="$LLAMA_BUILD/llama.cpp/build/bin/llama-server"
if [[ ! -x "$SERVER" ]]; then
  echo "building llama-server in $LLAMA_BUILD (about 5 minutes on 2 cores)" >&2
  mkdir -p "$LLAMA_BUILD"
  if [[ ! -d "$LLAMA_BUILD/llama.cpp" ]]; then
    "$PY" -m pip download --quiet --no-deps --no-binary :all: \
      llama-cpp-python==0.3.36 -d "$LLAMA_BUILD"
    tar -xzf "$LLAMA_BUILD"/llama_cpp_python-0.3.36.tar.gz -C "$LLAMA_BUILD"
    mv "$LLAMA_BUILD/llama_cpp_python-0.3.36/vendor/llama.cpp" "$LLAMA_BUILD/llama.cpp"
  fi
  cmake -S "$LLAMA_BUILD/llama.cpp" -B "$LLAMA_BUILD/llama.cpp/build" -DCMAKE_BUILD_TYPE=Release \
    -DLLAMA_CURL=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF >&2
  cmake --build "$LLAMA_BUILD/llama.cpp/build" --target llama-server -j2 >&2
fi

echo "building flownet (release)" >&2
cargo build -q --release -p flownet-cli --bin flownet
BIN="${CARGO_TARGET_DIR:-$REPO/target}/release/flownet"

free_port() { "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_http() {
  for _ in $(seq 600); do
    curl -sf "$1" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  echo "$1 did not come up" >&2
  return 1
}
PIDS=()
DATA="$(mktemp -d)"
trap 'kill "${PIDS[@]}" 2>/dev/null || true; rm -rf "$DATA"' EXIT

# llama-server: one slot, the context FlowNet's manifest allows.
port="$(free_port)"
"$SERVER" -m "$GGUF" -t "$THREADS" -tb "$THREADS" --host 127.0.0.1 --port "$port" -np 1 \
  -c 2048 --no-webui >"$DATA/llama-server.log" 2>&1 &
PIDS+=($!)
wait_http "http://127.0.0.1:$port/health"
llama_cached="$("$PY" "$CLIENT" "http://127.0.0.1:$port" "$MODEL" "$N")"
llama_fresh="$("$PY" "$CLIENT" "http://127.0.0.1:$port" "$MODEL" "$N" "" '{"cache_prompt": false}')"
kill "${PIDS[0]}"; wait "${PIDS[0]}" 2>/dev/null || true

# FlowNet: a data dir with a node offering the model, a funded API key, the gateway
# with the node in its process.
fn() { "$BIN" --data-dir "$DATA/flownet" --key node --models-dir "$FLOWNET_MODELS" --json "$@"; }
node_port="$(free_port)"; web_port="$(free_port)"
fn init >/dev/null
fn node register --name bench --endpoint "http://127.0.0.1:$node_port" --model "$MODEL=0.2" >/dev/null
key="$(fn web keys create --label bench --max-price 1 --faucet --rate 100000/1000 | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["key"])')"
"$BIN" --data-dir "$DATA/flownet" --key node --models-dir "$FLOWNET_MODELS" web \
  --listen "127.0.0.1:$web_port" --node --threads "$THREADS" >"$DATA/flownet.log" 2>&1 &
PIDS+=($!)
wait_http "http://127.0.0.1:$web_port/healthz"
ours="$("$PY" "$CLIENT" "http://127.0.0.1:$web_port" "$MODEL" "$N" "$key")"

OURS="$ours" CACHED="$llama_cached" FRESH="$llama_fresh" T="$THREADS" "$PY" - <<'PY'
import json, os
ours, cached, fresh = (json.loads(os.environ[k]) for k in ("OURS", "CACHED", "FRESH"))
print(f"{os.environ['T']} threads, {ours['n']} streamed requests each, {ours['tokens_p50']:.0f} tokens per answer")
print(f"{'':<34}{'TTFT p50 ms':>12}{'TTFT p99 ms':>12}{'tok/s p50':>11}")
for name, r in (("flownet gateway (node in process)", ours), ("llama-server, prompt cache on", cached), ("llama-server, cache_prompt false", fresh)):
    print(f"{name:<34}{r['ttft_p50_ms']:>12.1f}{r['ttft_p99_ms']:>12.1f}{r['tok_s_p50']:>11.1f}")
for name, r in (("prompt cache on", cached), ("cache_prompt false", fresh)):
    print(f"vs llama-server ({name}): TTFT p50 {ours['ttft_p50_ms'] - r['ttft_p50_ms']:+.1f} ms, "
          f"p99 {ours['ttft_p99_ms'] - r['ttft_p99_ms']:+.1f} ms, tok/s {ours['tok_s_p50'] / r['tok_s_p50']:.2f}x")
PY
