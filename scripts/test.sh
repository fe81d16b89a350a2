#!/usr/bin/env bash
# Everything a fresh machine needs, then every test: the Python side and the models
# (scripts/setup.sh), formatting, clippy with warnings denied, a check with the
# optional features off, the Rust workspace's tests (unit, integration, doc, and each
# benchmark run once), then each area's own suite (scripts/test-<area>.sh) where the
# area exists.
#
# The workspace is built once, in the dev profile (dependencies optimised, see
# Cargo.toml); the area suites reuse that build. flownet-py is a Python extension: its
# tests run against the installed wheel in scripts/test-python.sh.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"

step() { printf '\n==> %s\n' "$*" >&2; }

step "toolchain"
if command -v rustup >/dev/null 2>&1; then
  rustup component add rustfmt clippy >/dev/null 2>&1 || true
fi
cargo --version >&2

step "python venv and models (scripts/setup.sh)"
eval "$(scripts/setup.sh)"
export ORT_DYLIB_PATH FLOWNET_MODELS

step "the web page (scripts/build-web.sh), embedded by the flownet build"
scripts/build-web.sh

step "cargo fmt --check"
cargo fmt --all --check

step "cargo clippy (warnings denied)"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "cargo check with the optional features off (clippy above has them on)"
# Libraries and binaries only: a cheap check build, so a cfg'd-out feature that
# another module still calls fails CI. flownet-py always turns the Flow client on.
cargo check --workspace --exclude flownet-py --no-default-features --lib --bins --locked

step "Flow conformance partners (scripts/test-cadence.sh --prepare)"
scripts/test-cadence.sh --prepare

step "kubo for the IPFS tests (scripts/build-kubo.sh)"
FLOWNET_KUBO="$(scripts/build-kubo.sh)"
export FLOWNET_KUBO FLOWNET_REQUIRE_KUBO=1

step "cargo test (unit, integration, benches once; the Flow client included)"
cargo test --workspace --exclude flownet-py --all-targets --locked
export FLOWNET_WORKSPACE_TESTED=1

step "doc tests"
cargo test --workspace --exclude flownet-py --doc --locked

for area in python web cadence; do
  if [ -x "scripts/test-$area.sh" ]; then
    step "area suite: scripts/test-$area.sh"
    "scripts/test-$area.sh"
  fi
done

step "all tests passed"
