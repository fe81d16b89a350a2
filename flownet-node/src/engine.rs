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
