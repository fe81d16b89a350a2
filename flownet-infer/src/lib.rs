//! FlowNet's inference engine: [`OnnxEngine`] implements core's `Engine` port by running
//! the models of a models directory (`models/<id>/manifest.json` + `model.onnx`) with ONNX
//! Runtime. It checks each model's weights against the SHA-256 in its manifest, builds one
//! session per model once, and turns requests into model inputs and model outputs into
//! PNG or JSON bytes through a pipeline chosen by the manifest's kind: terrain generation
//! for `text-to-image`, an ImageNet classifier for `image-classification`.
//!
//! This is the only crate that knows ONNX Runtime. The runtime is a shared library loaded
//! at run time, from the path given to [`init_runtime`] or from `ORT_DYLIB_PATH`
//! (`scripts/setup.sh` prints it); a missing library is an error, never a panic.
//! Generation is deterministic: the same prompt and params give the same bytes with the
//! same runtime on the same CPU.
//!
//! ## Feature Flags
//! - `cuda`: lets [`ExecutionProvider::Cuda`] register ONNX Runtime's CUDA execution
//!   provider (it needs a GPU build of the runtime, `onnxruntime-gpu`). Without the
//!   feature, or when CUDA fails to start, sessions run on the CPU with a warning.
//!
//! ## Example
//! ```no_run
//! use flownet_core::InferenceRequest;
//! use flownet_infer::{EngineOptions, OnnxEngine, default_models_dir};
//!
//! # fn main() -> flownet_infer::Result<()> {
//! // Loads ONNX Runtime from ORT_DYLIB_PATH and the models from FLOWNET_MODELS or ./models.
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
//! # Ok(())
//! # }
//! ```

mod classify;
mod engine;
mod error;
pub mod manifest;
mod params;
pub mod rng;
mod runtime;
pub mod terrain;

pub use classify::{DEFAULT_TOP_K, Prediction};
pub use engine::{
    EngineOptions, ExecutionProvider, FLOWNET_MODELS, OnnxEngine, RawTensor, default_models_dir,
};
pub use error::{Error, Result};
pub use manifest::{ModelManifest, TensorSpec};
pub use runtime::{ORT_DYLIB_PATH, init_runtime, runtime_path};
