#!/usr/bin/env bash
# Builds the Python package (flownet-py) into the project venv and tests it:
#   1. scripts/install-python-package.sh: pinned tools, then `pip install ./flownet-py`
#      (maturin, dev profile, target/ reused),
#   2. mypy's stubtest checks _flownet.pyi against the native module, and mypy
#      checks the examples (strict) and the tests against the stubs,
#   3. pytest runs flownet-py/tests against the installed wheel, warnings as errors.
#      With FLOW_EMULATOR=/path/to/flow-emulator, test_flow.py also runs the Python
#      API on a live Flow emulator it starts (skipped, with the reason, otherwise).
# Needs scripts/setup.sh first (the venv, the models, ONNX Runtime).
# Usage: scripts/test-python.sh [extra pytest args]
#        FLOW_EMULATOR=/path/to/flow-emulator scripts/test-python.sh -k flow
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$REPO/.venv"
PY="$VENV/bin/python"
log() { echo "[test-python] $*" >&2; }

"$REPO/scripts/install-python-package.sh"
if [[ -z "${ORT_DYLIB_PATH:-}" || -z "${FLOWNET_MODELS:-}" ]]; then
  shopt -s nullglob
  DYLIBS=("$VENV"/lib/python3*/site-packages/onnxruntime/capi/libonnxruntime.so.*)
  shopt -u nullglob
  export ORT_DYLIB_PATH="${ORT_DYLIB_PATH:-${DYLIBS[0]:-}}"
  export FLOWNET_MODELS="${FLOWNET_MODELS:-$REPO/models}"
fi

# Run from outside the source tree so that `import flownet` can only find the wheel.
cd "$REPO/flownet-py/tests"
log "stubtest and mypy"
"$PY" -m mypy.stubtest flownet._flownet
MYPY=("$PY" -m mypy --cache-dir "$REPO/target/mypy-cache" --ignore-missing-imports)
"${MYPY[@]}" --strict "$REPO/examples/python" "$REPO/benches/python/handler_overhead.py"
"${MYPY[@]}" "$REPO/flownet-py/tests"
log "pytest"
# The tests compare the console script with the Rust binary that `cargo test
# --workspace` built, when it is there.
export FLOWNET_RUST_BIN="${FLOWNET_RUST_BIN:-${CARGO_TARGET_DIR:-$REPO/target}/debug/flownet}"
"$PY" -m pytest -c "$REPO/flownet-py/pyproject.toml" --rootdir "$REPO/flownet-py" "$@" "$REPO/flownet-py/tests"
