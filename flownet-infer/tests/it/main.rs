//! Integration tests against the real models in `models/` and the real ONNX Runtime.
//! Both come from `scripts/setup.sh`; run `eval "$(scripts/setup.sh)"` first.

mod classify;
mod common;
mod engine;
mod manifest;
mod runtime;
mod terrain;
