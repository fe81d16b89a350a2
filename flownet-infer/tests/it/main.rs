//! Integration tests against the real models in `models/`, the real ONNX Runtime and
//! llama.cpp. The models and the runtime come from `scripts/setup.sh`; run
//! `eval "$(scripts/setup.sh)"` first.

mod classify;
mod common;
mod embed;
mod engine;
mod llm;
mod manifest;
mod ocr;
mod runtime;
mod speech;
mod terrain;
