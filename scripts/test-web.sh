#!/usr/bin/env bash
# The web area's tests, beyond `cargo test` (which runs the gateway's API tests in
# flownet-gateway/tests/it/web.rs):
#   1. the page's encoder against the core's test vectors (web/test, Node's WebCrypto),
#   2. the page end to end in Debian's chromium driven by playwright-core
#      (tests/e2e; screenshots in target/e2e/),
#   3. the `openai` Python client against the gateway (tests/openai).
# With FLOW_EMULATOR=/path/to/flow-emulator, tests/e2e/flow.test.mjs also runs the page
# on a live Flow emulator (else it prints SKIPPED: no Flow emulator).
# Installs what it needs, idempotently: chromium (apt), the npm packages (npm ci), the
# openai client (pip, in target/web-venv). Needs the models and ONNX Runtime of
# scripts/setup.sh; the flownet binary is (re)built in the dev profile so that it
# embeds the page.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
log() { echo "[test-web] $*" >&2; }
cd "$REPO"

# ---- what the tests need ------------------------------------------------------------
if [[ ! -x /usr/bin/chromium ]]; then
  log "installing Debian's chromium"
  SUDO=""
  [[ "$(id -u)" -eq 0 ]] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >&2
fi

if [[ -z "${ORT_DYLIB_PATH:-}" || -z "${FLOWNET_MODELS:-}" ]]; then
  log "reading the model environment from scripts/setup.sh"
  eval "$("$REPO/scripts/setup.sh")"
fi

"$REPO/scripts/build-web.sh"

# The same command as scripts/test.sh's test build, so the same features are unified
# and only flownet-gateway and the crates above it are rebuilt when the page changed
# (a `-p flownet-cli` build would unify features differently and rebuild dependencies).
log "building flownet (dev profile) with the page embedded"
cargo test --workspace --exclude flownet-py --all-targets --locked --no-run --quiet
# FLOWNET_BIN, where set, names the binary to test instead (e.g. a copy of it, where
# several checkouts share one CARGO_TARGET_DIR).
export FLOWNET_BIN="${FLOWNET_BIN:-${CARGO_TARGET_DIR:-$REPO/target}/debug/flownet}"

E2E="$REPO/tests/e2e"
LOCK_SUM="$(sha256sum "$E2E/package-lock.json" | cut -c1-64)"
if [[ ! -f "$E2E/node_modules/.flownet-lock" ]] || [[ "$(cat "$E2E/node_modules/.flownet-lock")" != "$LOCK_SUM" ]]; then
  log "installing playwright-core (npm ci)"
  (cd "$E2E" && npm ci --no-audit --no-fund --loglevel=error >&2)
  echo "$LOCK_SUM" > "$E2E/node_modules/.flownet-lock"
fi

VENV="$REPO/target/web-venv"
REQS="$REPO/tests/openai/requirements.txt"
if [[ ! -x "$VENV/bin/python" ]] || ! "$VENV/bin/python" -c 'import sys' 2>/dev/null; then
  log "creating $VENV"
  rm -rf "$VENV"
  "${PYTHON:-python3}" -m venv "$VENV"
fi
STAMP="$VENV/.flownet-$(sha256sum "$REQS" | cut -c1-16)"
if [[ ! -f "$STAMP" ]]; then
  log "installing the openai client (pip)"
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r "$REQS" >&2
  rm -f "$VENV"/.flownet-*
  touch "$STAMP"
fi

# ---- the tests ----------------------------------------------------------------------
log "page unit tests (encoder vs the core's vectors)"
(cd "$REPO/web" && npm test --silent)

log "browser end to end (screenshots in target/e2e/)"
(cd "$E2E" && npm test --silent)

log "openai client against the gateway"
"$VENV/bin/python" -m pytest -q -p no:cacheprovider "$REPO/tests/openai"

log "all web tests passed"
