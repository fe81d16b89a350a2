#!/usr/bin/env bash
# Builds kubo (the Go IPFS implementation) for the IPFS tests and prints its path on
# stdout; everything else goes to stderr. The binary is kept in target/kubo and a
# second run only prints its path.
#
# kubo's go.mod has exclude directives, so `go install …@version` refuses it; its
# module source is downloaded through the Go module proxy instead and built in a
# writable copy (about 2 minutes once the modules are cached).
# Usage: KUBO="$(scripts/build-kubo.sh)"
set -euo pipefail
exec 3>&1 1>&2

VERSION=v0.42.0
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT="${CARGO_TARGET_DIR:-$REPO/target}/kubo"
BIN="$OUT/ipfs-$VERSION"
log() { echo "[build-kubo] $*" >&2; }

if [[ -x "$BIN" ]] && "$BIN" version --all >/dev/null 2>&1; then
  echo "$BIN" >&3
  exit 0
fi
command -v go >/dev/null || { log "needs Go (https://go.dev) on PATH"; exit 1; }
mkdir -p "$OUT"
log "downloading kubo $VERSION's module source"
DIR="$(cd "$OUT" && GOFLAGS=-mod=mod go mod download -json "github.com/ipfs/kubo@$VERSION" |
  python3 -c 'import json, sys; print(json.load(sys.stdin)["Dir"])')"
SRC="$OUT/src-$VERSION"
rm -rf "$SRC"
cp -r "$DIR" "$SRC"
chmod -R u+w "$SRC"
log "building ipfs (go build ./cmd/ipfs)"
(cd "$SRC" && CGO_ENABLED=0 go build -trimpath -o "$BIN.tmp" ./cmd/ipfs)
mv "$BIN.tmp" "$BIN"
rm -rf "$SRC"
"$BIN" version >&2
echo "$BIN" >&3
