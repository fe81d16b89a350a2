#!/usr/bin/env bash
# FlowNet on Flow: checks the Cadence and the Rust Flow client.
#   1. installs the conformance partners, two independent SDKs (@onflow/sdk
#      from npm, flow-py-sdk from PyPI); `--prepare` stops here;
#   2. parses every .cdc under cadence/ with @onflow/cadence-parser (the
#      official Cadence 1.0 parser, WebAssembly), failing with file:line:col;
#   3. tests the Rust Flow client (RLP, signing, JSON-Cadence, the Access API
#      client, conformance with the partners), unless scripts/test.sh already
#      has (FLOWNET_WORKSPACE_TESTED);
#   4. runs the scenario suite on a live Flow emulator when one is given
#      (FLOW_EMULATOR=/path/to/flow-emulator, or `flow` on PATH); without one
#      the suite prints "SKIPPED: no Flow emulator" and passes.
# Everything it installs goes into project-local, gitignored folders:
# cadence/node_modules, flownet-chain/tests/conformance/{node_modules,.venv}.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CONF="$REPO/flownet-chain/tests/conformance"
PYTHON="${PYTHON:-python3}"

log() { echo "[test-cadence] $*" >&2; }

need() {
  command -v "$1" >/dev/null 2>&1 || { log "missing $1: $2"; exit 1; }
}
need node "install Node.js 18 or newer (apt-get install nodejs npm)"
need npm "install npm (apt-get install npm)"
need "$PYTHON" "install Python 3.9 or newer"

# npm ci is skipped while node_modules matches the lock file.
npm_install() {
  local dir="$1"
  if [[ ! -f "$dir/node_modules/.package-lock.json" ]] \
    || ! cmp -s "$dir/package-lock.json" "$dir/node_modules/.flownet-stamp" 2>/dev/null; then
    log "npm ci in ${dir#"$REPO"/}"
    (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error)
    cp "$dir/package-lock.json" "$dir/node_modules/.flownet-stamp"
  fi
}

# --- 1. the conformance partners (all that `--prepare` does) ---------------------
npm_install "$CONF"
# flow-py-sdk pulls grpcio and friends: keep it in its own venv, not the
# project's .venv. The stamp skips pip while the pinned list is unchanged.
PY_PINS="flow-py-sdk==2.0.2"
if [[ ! -x "$CONF/.venv/bin/python" ]] || [[ "$(cat "$CONF/.venv/.flownet-stamp" 2>/dev/null)" != "$PY_PINS" ]]; then
  log "installing $PY_PINS into ${CONF#"$REPO"/}/.venv"
  rm -rf "$CONF/.venv"
  "$PYTHON" -m venv "$CONF/.venv"
  "$CONF/.venv/bin/pip" install --quiet --disable-pip-version-check $PY_PINS
  echo "$PY_PINS" > "$CONF/.venv/.flownet-stamp"
fi
if [[ "${1:-}" == "--prepare" ]]; then
  log "conformance partners installed"
  exit 0
fi

# --- 2. Cadence parser ---------------------------------------------------------
npm_install "$REPO/cadence"
log "parsing every .cdc with @onflow/cadence-parser"
node "$REPO/cadence/check.cjs" "$REPO/cadence"

# --- 3. the scenario suite on a live emulator, when one is given ----------------
# The same cargo test runs it: on the embedded ledger always, on Flow when
# FLOW_EMULATOR points at an emulator binary (or the Flow CLI is on PATH).
if [[ -n "${FLOW_EMULATOR:-}" ]]; then
  [[ -x "$FLOW_EMULATOR" ]] || { log "FLOW_EMULATOR=$FLOW_EMULATOR is not an executable"; exit 1; }
  log "Flow emulator: $FLOW_EMULATOR (the scenario suite and the client test run on it)"
elif command -v flow >/dev/null 2>&1; then
  log "Flow emulator: $(command -v flow) emulator (the scenario suite and the client test run on it)"
else
  log "SKIPPED: no Flow emulator: the scenario suite runs on the embedded ledger only"
  log "         (set FLOW_EMULATOR=/path/to/flow-emulator to run it on Flow too)"
fi

# scripts/test.sh has already run these tests in its one workspace build (the
# flownet binary turns the `flow` feature on); run standalone, this builds the
# same workspace selection, so the build is shared either way.
if [[ -z "${FLOWNET_WORKSPACE_TESTED:-}" ]]; then
  log "cargo test (the workspace: the Flow client, conformance, scenarios)"
  (cd "$REPO" && cargo test --workspace --exclude flownet-py --all-targets --locked)
fi
