#!/usr/bin/env bash
# Everything a fresh machine needs, then `flownet demo`: a fresh embedded ledger, a
# node serving the real ONNX models, a user paying for a prompt, the image delivered
# (hash on the ledger), paid for and rated. Extra arguments go to `flownet demo`,
# e.g. scripts/demo.sh --prompt "rolling hills by the sea".
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
eval "$(scripts/setup.sh)"
export ORT_DYLIB_PATH FLOWNET_MODELS
# The web page, embedded in the binary (`flownet web`).
scripts/build-web.sh
cargo build --locked -q -p flownet-cli
# The Python package too (`import flownet`, .venv/bin/flownet), on the same build.
scripts/install-python-package.sh
exec target/debug/flownet --data-dir "${FLOWNET_HOME:-$REPO/.flownet}" demo "$@"
