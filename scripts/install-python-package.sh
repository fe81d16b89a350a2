#!/usr/bin/env bash
# `pip install ./flownet-py` into the project venv: pinned build and test tools
# first (skipped while their stamp exists), then maturin builds the wheel in the dev
# profile, reusing target/ (no second profile). Needs scripts/setup.sh first.
# Called by scripts/demo.sh and scripts/test-python.sh.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$REPO/.venv"
PY="$VENV/bin/python"
log() { echo "[install-python] $*" >&2; }

if [[ ! -x "$PY" ]]; then
  log "error: no venv in $VENV: run scripts/setup.sh first"
  exit 1
fi
# maturin's build backend runs the `maturin` executable it finds on PATH.
export PATH="$VENV/bin:$PATH"

TOOLS=(
  maturin==1.16.0
  pytest==9.2.0
  mypy==2.4.1
  # transitive dependencies, pinned for the same reasons as in setup.sh
  iniconfig==2.3.1
  pluggy==1.7.0
  pygments==2.21.0
  mypy_extensions==1.2.0
  pathspec==1.1.1
  librt==0.17.0
  ast-serialize==0.13.1
)
STAMP="$VENV/.flownet-pytools-$(printf '%s\n' "${TOOLS[@]}" "$("$PY" -VV)" | sha256sum | cut -c1-16)"
if [[ -f "$STAMP" ]]; then
  log "build and test tools already installed (stamp ${STAMP##*/})"
else
  log "installing pinned build and test tools"
  "$PY" -m pip install --quiet --disable-pip-version-check "${TOOLS[@]}"
  rm -f "$VENV"/.flownet-pytools-*
  touch "$STAMP"
fi

if [[ -z "${ORT_DYLIB_PATH:-}" || -z "${FLOWNET_MODELS:-}" ]]; then
  shopt -s nullglob
  DYLIBS=("$VENV"/lib/python3*/site-packages/onnxruntime/capi/libonnxruntime.so.*)
  shopt -u nullglob
  export ORT_DYLIB_PATH="${ORT_DYLIB_PATH:-${DYLIBS[0]:-}}"
  export FLOWNET_MODELS="${FLOWNET_MODELS:-$REPO/models}"
fi

log "building and installing the wheel (dev profile, target/ reused)"
start=$SECONDS
# --strip: the dev profile's debug info would make a ~50 MB wheel.
MATURIN_PEP517_ARGS="--profile dev --strip" \
  "$PY" -m pip install --quiet --disable-pip-version-check --no-build-isolation \
  --force-reinstall --no-deps "$REPO/flownet-py"
log "wheel built and installed in $((SECONDS - start)) s"

