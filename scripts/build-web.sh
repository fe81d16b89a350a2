#!/usr/bin/env bash
# Builds the web page (web/, Vite + TypeScript) into web/dist, which flownet-gateway's
# build script embeds in the `flownet` binary. Run it before building the workspace
# so the first cargo build embeds the page; a binary built without it serves a page
# that says to run this. Idempotent and quick on a second run:
#   - `npm ci` runs only when web/package-lock.json changed since the last install,
#   - files in web/dist are replaced only when their bytes change, so cargo does not
#     rebuild flownet-gateway for an identical page.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
WEB="$REPO/web"
log() { echo "[build-web] $*" >&2; }

command -v npm >/dev/null || { log "error: npm is needed (Node.js >= 20.19)"; exit 1; }

cd "$WEB"
LOCK_SUM="$(sha256sum package-lock.json | cut -c1-64)"
if [[ ! -f node_modules/.flownet-lock ]] || [[ "$(cat node_modules/.flownet-lock)" != "$LOCK_SUM" ]]; then
  log "installing the page's packages (npm ci)"
  npm ci --no-audit --no-fund --loglevel=error >&2
  echo "$LOCK_SUM" > node_modules/.flownet-lock
fi

log "type-checking and building the page"
npx --no-install tsc --noEmit >&2
STAGE="$WEB/.dist-build"
npx --no-install vite build --outDir "$STAGE" --emptyOutDir --logLevel warn >&2

# Copy what changed into dist/ and drop what is gone (dist/.gitkeep stays).
mkdir -p dist
( cd "$STAGE" && find . -type f ) | while read -r f; do
  if ! cmp -s "$STAGE/$f" "dist/$f"; then
    mkdir -p "dist/$(dirname "$f")"
    cp "$STAGE/$f" "dist/$f"
  fi
done
( cd dist && find . -type f ! -name .gitkeep ) | while read -r f; do
  [[ -f "$STAGE/$f" ]] || rm -f "dist/$f"
done
rm -rf "$STAGE"
log "page built in web/dist ($(du -sh dist | cut -f1))"
