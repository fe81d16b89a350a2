//! FlowNet's inference engine: [`OnnxEngine`] implements core's `Engine` port by running
//! the models of a models directory (`models/<id>/manifest.json` + the weights file). It
//! checks each model's weights against the SHA-256 in its manifest, loads each model
//! once, and turns requests into model inputs and model outputs into bytes through a
//! pipeline chosen by the manifest: terrain generation for `text-to-image`, an
//! ImageNet classifier for `image-classification`, mean-pooled sentence embeddings for
//! `embedding` and PP-OCR's detect-classify-recognise for `ocr` (ONNX models, run by
//! ONNX Runtime), and chat for `text-generation` (GGUF language models, run by
//! llama.cpp).
//!
//! This is the only crate that knows an inference runtime. ONNX Runtime is a shared
//! library loaded at run time, from the path given to [`init_runtime`] or from
//! `ORT_DYLIB_PATH` (`scripts/setup.sh` prints it), and only when an ONNX model is
//! loaded; a missing library is an error, never a panic. llama.cpp is compiled in
//! (`llama-cpp-2` builds its vendored copy with cmake; bindgen needs libclang, whose
//! path `scripts/setup.sh` prints as `LIBCLANG_PATH`).
//!
//! Generation is deterministic: the same prompt and params give the same bytes with the
//! same runtime, thread count and CPU. A text-generation model streams its answer as
//! `flownet_core::StreamChunk`s ([`OnnxEngine::infer_stream_blocking`], or the port's
//! `infer_stream`) and its output is the `flownet_core::GenerationFold` of those very
//! chunks, so a streamed and a stored answer cannot differ. How a prompt becomes a
//! conversation and params become sampling settings is in [`chat`].
//!
//! Any GGUF chat model of the llama family runs the same way: put the file in
//! `models/<id>/` with a manifest of kind `text-generation` whose `weights` ends in
//! `.gguf` (or with `"format": "gguf"`), its SHA-256, an optional `context_length` and
//! `chat_template` (absent: the template in the file's metadata) and its `defaults`.
//!
//! ## Feature Flags
//! - `cuda`: lets [`ExecutionProvider::Cuda`] register ONNX Runtime's CUDA execution
//!   provider (it needs a GPU build of the runtime, `onnxruntime-gpu`) and builds
//!   llama.cpp with CUDA (it needs the CUDA toolkit at build time), which then offloads
//!   every layer of a GGUF model. Without the feature, or when CUDA fails to start,
//!   ONNX sessions run on the CPU with a warning.
//!
//! ## Example
//! ```no_run
//! use flownet_core::{Generation, InferenceRequest};
//! use flownet_infer::{EngineOptions, OnnxEngine, default_models_dir};
//!
//! # fn main() -> flownet_infer::Result<()> {
//! // Loads the models from FLOWNET_MODELS or ./models (and ONNX Runtime from
//! // ORT_DYLIB_PATH for the ONNX ones).
//! let engine = OnnxEngine::load(default_models_dir(), &EngineOptions::default().with_threads(2))?;
//! let request = InferenceRequest {
//!     model_id: "terrain-diffusion-128".into(),
//!     prompt: "jagged alpine peaks".into(),
//!     params: serde_json::Map::new(),
//!     input: None,
//! };
//! let output = engine.infer_blocking(&request)?;
//! assert_eq!(output.mime, "image/png");
//! println!("seed {} difficulty {}", output.metadata["seed"], output.metadata["difficulty"]);
//!
//! // A chat answer, printed as it is generated.
//! let chat = InferenceRequest {
//!     model_id: "smollm2-135m-instruct".into(),
//!     prompt: r#"{"messages": [{"role": "user", "content": "What is the capital of France?"}]}"#.into(),
//!     ..request
//! };
//! let output = engine.infer_stream_blocking(&chat, &mut |chunk| {
//!     if let flownet_core::StreamChunk::Text { text } = chunk {
//!         print!("{text}");
//!     }
//!     true
//! })?;
//! let answer = Generation::from_bytes(&output.bytes).unwrap();
//! println!("\n{} tokens, {}", answer.usage.completion_tokens, answer.finish_reason.as_str());
//! # Ok(())
//! # }
//! ```

pub mod chat;
mod classify;
pub mod embed;
mod engine;
mod error;
mod gguf;
pub mod manifest;
pub mod ocr;
mod params;
pub mod rng;
mod runtime;
pub mod speech;
pub mod terrain;

pub use classify::{DEFAULT_TOP_K, Prediction, check_image};
pub use engine::{
    EngineOptions, ExecutionProvider, FLOWNET_MODELS, OnnxEngine, RawTensor, default_models_dir,
};
pub use error::{Error, Result};
pub use gguf::count_tokens;
pub use manifest::{ModelFormat, ModelManifest, TensorSpec};
pub use runtime::{ORT_DYLIB_PATH, init_runtime, runtime_path};
