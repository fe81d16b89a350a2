//! Loading a node's ONNX models.

use std::{path::Path, sync::Arc};

use flownet_infer::{EngineOptions, ExecutionProvider, ModelManifest, OnnxEngine};

use crate::{Error, Result};

/// How to run a node's models.
#[derive(Debug, Clone, Default)]
pub struct EngineSettings {
    /// Threads per model session [default: all cores].
    pub threads: Option<usize>,
    /// Run the models on ONNX Runtime's CUDA provider (needs the `cuda` build).
    pub cuda: bool,
    /// Only these models [default: every model of the models dir].
    pub models: Option<Vec<String>>,
}

impl EngineSettings {
    /// The inference crate's options for these settings.
    pub fn options(&self) -> EngineOptions {
        let mut options = EngineOptions::default();
        if let Some(t) = self.threads {
            options = options.with_threads(t);
        }
        if let Some(ids) = &self.models {
            options = options.with_models(ids.clone());
        }
        if self.cuda {
            options = options.with_execution_provider(ExecutionProvider::Cuda { device_id: 0 });
        }
        options
    }
}

/// Every manifest in `models_dir`, read without loading ONNX Runtime.
pub fn manifests(models_dir: &Path) -> Result<Vec<ModelManifest>> {
    let dir_error = |error| Error::ModelsDir {
        dir: models_dir.to_owned(),
        error,
    };
    let dirs = flownet_infer::manifest::discover(models_dir).map_err(dir_error)?;
    dirs.iter()
        .map(|d| ModelManifest::load(d).map_err(Error::from))
        .collect()
}

/// Loads the ONNX models of `models_dir` (as `settings` say) on a blocking thread.
pub async fn load_engine(models_dir: &Path, settings: &EngineSettings) -> Result<Arc<OnnxEngine>> {
    let options = settings.options();
    let dir = models_dir.to_owned();
    let engine = tokio::task::spawn_blocking(move || OnnxEngine::load(&dir, &options))
        .await
        .map_err(|e| Error::Runtime(format!("loading the models: {e}")))?
        .map_err(|error| Error::LoadModels {
            dir: models_dir.to_owned(),
            error,
        })?;
    Ok(Arc::new(engine))
}

/// What a requester checks before paying for `model_id`, from the model's manifest in
/// `models_dir` when it is there (else nothing can be known here): a text-to-image
/// model takes no input file, an image classifier or OCR model needs an image it can
/// decode (checked from the header), within its size limits, a speech model text to
/// say (`flownet_core::speech::text_of`), an embedding model needs texts
/// (`flownet_core::embedding::inputs`, from the input file or the prompt). Returns the
/// tokens to escrow for when the requester names no limit and the kind knows better
/// than the default: an embedding model's bound on its texts' tokens
/// (`flownet_core::embedding::max_units`, within the model's tokens per text).
pub fn precheck(
    models_dir: &Path,
    model_id: &str,
    prompt: &str,
    input: Option<&[u8]>,
) -> std::result::Result<Option<u64>, flownet_core::Error> {
    use flownet_core::{Error as E, TaskKind};
    let Ok(all) = manifests(models_dir) else {
        return Ok(None);
    };
    let Some(m) = all.iter().find(|m| m.id == model_id) else {
        return Ok(None);
    };
    // A model that reads text reads the input file (UTF-8) when there is one, else the
    // prompt; `verb` says what it does with it.
    let text = |verb: &str| match input {
        Some(bytes) => std::str::from_utf8(bytes).map_err(|_| {
            E::InvalidInput(format!(
                "model {model_id} {verb} text: its input file must be UTF-8 text"
            ))
        }),
        None => Ok(prompt),
    };
    match (m.kind, input) {
        (TaskKind::TextToImage, Some(_)) => Err(E::InvalidInput(format!(
            "model {model_id} makes an image from a text prompt: it takes no input file"
        ))),
        (TaskKind::ImageClassification | TaskKind::Ocr, None) if !prompt.starts_with("sha256:") => {
            Err(E::InvalidInput(format!(
                "model {model_id} {} an image: give one (--image FILE)",
                if m.kind == TaskKind::Ocr {
                    "reads the text in"
                } else {
                    "classifies"
                }
            )))
        }
        (TaskKind::ImageClassification | TaskKind::Ocr, Some(bytes)) => {
            flownet_infer::check_image(bytes)
                .map(|_| None)
                .map_err(|e| {
                    E::InvalidInput(
                        e.to_string()
                            .trim_start_matches("invalid input: ")
                            .to_owned(),
                    )
                })
        }
        (TaskKind::TextToSpeech, _) => flownet_core::speech::text_of(text("speaks")?).map(|_| None),
        (TaskKind::Embedding, _) => {
            let texts = flownet_core::embedding::inputs(text("embeds")?)?;
            Ok(Some(flownet_core::embedding::max_units(
                &texts,
                m.context_length.map(u64::from),
            )))
        }
        _ => Ok(None),
    }
}
