//! The shared engine and request helpers.

use std::{path::PathBuf, sync::OnceLock};

use flownet_core::InferenceRequest;
use flownet_infer::{EngineOptions, FLOWNET_MODELS, ORT_DYLIB_PATH, OnnxEngine};

pub const TERRAIN: &str = "terrain-diffusion-128";
pub const MOBILENET: &str = "mobilenet-v2";
pub const SMOLLM2: &str = "smollm2-135m-instruct";
pub const MINILM: &str = "all-minilm-l6-v2";
pub const PPOCR: &str = "pp-ocrv4";
pub const PIPER: &str = "piper-joe-medium";

const SETUP_HINT: &str = "the integration tests need the models and ONNX Runtime: run `eval \"$(scripts/setup.sh)\"` from the workspace root first";

/// `FLOWNET_MODELS`, else the workspace's `models/`.
pub fn models_dir() -> PathBuf {
    std::env::var_os(FLOWNET_MODELS)
        .filter(|v| !v.is_empty())
        .map_or_else(
            || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../models"),
            PathBuf::from,
        )
}

/// The runtime library named by `ORT_DYLIB_PATH`; fails the test with the setup hint if
/// it is unset.
pub fn runtime_path() -> PathBuf {
    match std::env::var_os(ORT_DYLIB_PATH).filter(|v| !v.is_empty()) {
        Some(path) => PathBuf::from(path),
        None => panic!("{ORT_DYLIB_PATH} is not set; {SETUP_HINT}"),
    }
}

/// Engine options for the tests: two threads, as on the CI machines.
pub fn options() -> EngineOptions {
    EngineOptions::default()
        .with_threads(2)
        .with_runtime_path(runtime_path())
}

/// Whether setup has made SmolLM2's GGUF file. Its manifest is checked in, so without
/// the file the language-model tests skip (loudly) and the others still run.
pub fn smollm2_present() -> bool {
    models_dir().join(SMOLLM2).join("model.gguf").is_file()
}

/// One engine with every model, loaded once for the whole test binary (every model but
/// SmolLM2 when its GGUF file is missing).
pub fn engine() -> &'static OnnxEngine {
    static ENGINE: OnceLock<OnnxEngine> = OnceLock::new();
    ENGINE.get_or_init(|| {
        let dir = models_dir();
        let options = if smollm2_present() {
            options()
        } else {
            options().with_models([TERRAIN, MOBILENET, MINILM, PPOCR, PIPER])
        };
        let engine = OnnxEngine::load(&dir, &options).unwrap_or_else(|e| {
            panic!(
                "loading the models from {}: {e}\n{SETUP_HINT}",
                dir.display()
            )
        });
        for id in [TERRAIN, MOBILENET, MINILM, PPOCR, PIPER] {
            assert!(
                engine.manifest(id).is_some(),
                "model {id} is missing from {}; {SETUP_HINT}",
                dir.display()
            );
        }
        engine
    })
}

/// The project's Python (the venv `scripts/setup.sh` makes), for the reference
/// pipelines the tests compare with: `FLOWNET_PYTHON`, else the workspace's
/// `.venv/bin/python`.
pub fn python() -> PathBuf {
    std::env::var_os("FLOWNET_PYTHON")
        .filter(|v| !v.is_empty())
        .map_or_else(
            || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.venv/bin/python"),
            PathBuf::from,
        )
}

/// Runs `benches/python/<script>` with the project's Python and `args`; its stdout.
pub fn run_python(script: &str, args: &[&std::ffi::OsStr]) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../benches/python")
        .join(script);
    let out = std::process::Command::new(python())
        .arg(&path)
        .args(args)
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "running {} {}: {e}; run scripts/setup.sh",
                python().display(),
                path.display()
            )
        });
    assert!(
        out.status.success(),
        "{script} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// A test photo's bytes from `models/testdata`.
pub fn testdata(name: &str) -> Vec<u8> {
    let path = models_dir().join("testdata").join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("reading {}: {e}; {SETUP_HINT}", path.display()))
}

pub fn request(model: &str, prompt: &str, params: serde_json::Value) -> InferenceRequest {
    InferenceRequest {
        model_id: model.into(),
        prompt: prompt.into(),
        params: params
            .as_object()
            .expect("params must be a JSON object")
            .clone(),
        input: None,
    }
}
