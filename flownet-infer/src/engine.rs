//! [`OnnxEngine`]: loads the models once and runs them for the marketplace.

use std::{
    collections::{BTreeMap, BTreeSet},
    fmt,
    path::{Path, PathBuf},
    sync::{Arc, Mutex, PoisonError},
};

use async_trait::async_trait;
use flownet_core::{InferenceOutput, InferenceRequest, ModelInfo, StreamChunk, TaskKind};
use ort::{
    environment::Environment,
    session::{Session, builder::GraphOptimizationLevel},
};

use crate::{
    Error, Result,
    classify::Classifier,
    embed::Embedder,
    gguf::GgufModel,
    manifest::{self, ModelFormat, ModelManifest},
    ocr::Reader,
    runtime,
    speech::Speaker,
    terrain,
};

/// The environment variable naming the models directory.
pub const FLOWNET_MODELS: &str = "FLOWNET_MODELS";

/// The models directory: `FLOWNET_MODELS` if set, else `./models`.
pub fn default_models_dir() -> PathBuf {
    std::env::var_os(FLOWNET_MODELS)
        .filter(|v| !v.is_empty())
        .map_or_else(|| PathBuf::from("models"), PathBuf::from)
}

/// Where a session runs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ExecutionProvider {
    #[default]
    Cpu,
    /// An NVIDIA GPU. Needs the `cuda` feature and a GPU build of ONNX Runtime; without
    /// either, sessions fall back to the CPU with a warning.
    Cuda { device_id: i32 },
}

/// How [`OnnxEngine::load`] builds its sessions.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EngineOptions {
    /// The ONNX Runtime library; `None` uses `ORT_DYLIB_PATH`.
    pub runtime_path: Option<PathBuf>,
    /// Threads each session uses inside an operator; `None` uses every available core.
    pub intra_threads: Option<usize>,
    pub execution_provider: ExecutionProvider,
    /// The model ids to load; `None` loads every model in the directory whose kind has a
    /// pipeline, and skips the others with a warning.
    pub models: Option<Vec<String>>,
}

impl EngineOptions {
    /// Uses `threads` threads per session.
    #[must_use]
    pub fn with_threads(mut self, threads: usize) -> Self {
        self.intra_threads = Some(threads);
        self
    }

    /// Loads only these models.
    #[must_use]
    pub fn with_models<I: IntoIterator<Item = S>, S: Into<String>>(mut self, ids: I) -> Self {
        self.models = Some(ids.into_iter().map(Into::into).collect());
        self
    }

    #[must_use]
    pub fn with_execution_provider(mut self, provider: ExecutionProvider) -> Self {
        self.execution_provider = provider;
        self
    }

    #[must_use]
    pub fn with_runtime_path(mut self, path: impl Into<PathBuf>) -> Self {
        self.runtime_path = Some(path.into());
        self
    }
}

/// How a model's input and output are made: chosen by the manifest's kind.
#[derive(Debug)]
enum Pipeline {
    Terrain,
    Classifier(Classifier),
    Embedder(Box<Embedder>),
    Reader(Box<Reader>),
    Speaker(Box<Speaker>),
}

impl Pipeline {
    /// The pipeline for `manifest`, after checking that its tensors are what the
    /// pipeline feeds and reads. `session` builds the session of one of the manifest's
    /// extra weights files, by role, for pipelines that run more than one model.
    fn for_manifest(
        manifest: &ModelManifest,
        session: &dyn Fn(&str) -> Result<Session>,
    ) -> Result<Self> {
        let unsupported = |reason: String| Error::Unsupported {
            id: manifest.id.clone(),
            reason,
        };
        let input_names: Vec<&str> = manifest.inputs.iter().map(|t| t.name.as_str()).collect();
        match manifest.kind {
            TaskKind::TextToImage => {
                let expected = terrain::INPUTS.iter().copied().collect::<BTreeSet<_>>();
                if input_names.iter().copied().collect::<BTreeSet<_>>() != expected
                    || manifest.outputs[0].name != terrain::OUTPUT
                {
                    return Err(unsupported(format!(
                        "text-to-image is implemented for the terrain model only (inputs {:?}, output {:?})",
                        terrain::INPUTS,
                        terrain::OUTPUT
                    )));
                }
                Ok(Self::Terrain)
            }
            TaskKind::ImageClassification => {
                let input = &manifest.inputs[0];
                let crop = match input.shape.as_slice() {
                    [_, 3, h, w] if h == w && *h > 0 => *h as u32,
                    shape => {
                        return Err(unsupported(format!(
                            "input {:?} has shape {shape:?}; the classifier takes [N, 3, S, S]",
                            input.name
                        )));
                    }
                };
                let path = manifest.file_path("labels").ok_or_else(|| {
                    unsupported("the manifest names no labels file (files.labels)".into())
                })?;
                let text = std::fs::read_to_string(&path).map_err(|source| Error::Io {
                    path: path.clone(),
                    source,
                })?;
                let labels: Vec<String> = serde_json::from_str(&text).map_err(|e| {
                    Error::manifest(
                        &path,
                        format!("labels must be a JSON array of strings: {e}"),
                    )
                })?;
                if let Some(&classes) = manifest.outputs[0].shape.last()
                    && classes >= 0
                    && classes as usize != labels.len()
                {
                    return Err(Error::manifest(
                        &path,
                        format!("{} labels for {classes} classes", labels.len()),
                    ));
                }
                if labels.is_empty() {
                    return Err(Error::manifest(&path, "no labels"));
                }
                Ok(Self::Classifier(Classifier {
                    input: input.name.clone(),
                    output: manifest.outputs[0].name.clone(),
                    crop,
                    labels,
                }))
            }
            TaskKind::Embedding => Ok(Self::Embedder(Box::new(Embedder::for_manifest(manifest)?))),
            TaskKind::Ocr => Ok(Self::Reader(Box::new(Reader::for_manifest(
                manifest, session,
            )?))),
            TaskKind::TextToSpeech => Ok(Self::Speaker(Box::new(Speaker::for_manifest(manifest)?))),
            #[allow(unreachable_patterns)]
            kind => Err(unsupported(format!(
                "no pipeline for kind {}",
                kind.as_str()
            ))),
        }
    }
}

/// A model ready to run: its manifest and what runs it.
struct LoadedModel {
    manifest: ModelManifest,
    runner: Runner,
}

/// What runs a model: an ONNX session with its pipeline, or llama.cpp.
enum Runner {
    Onnx {
        pipeline: Pipeline,
        /// `Session::run` takes `&mut self`; a request holds the lock for one run.
        session: Mutex<Session>,
    },
    Gguf(std::sync::Arc<GgufModel>),
}

struct Inner {
    models_dir: PathBuf,
    models: BTreeMap<String, LoadedModel>,
    threads: usize,
}

/// Runs the models of a models directory: ONNX models with ONNX Runtime, GGUF language
/// models with llama.cpp. Cloning is cheap and shares the loaded models; requests to one
/// model run one at a time, requests to different models in parallel.
#[derive(Clone)]
pub struct OnnxEngine {
    inner: Arc<Inner>,
}

impl fmt::Debug for OnnxEngine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OnnxEngine")
            .field("models_dir", &self.inner.models_dir)
            .field("models", &self.inner.models.keys().collect::<Vec<_>>())
            .field("threads", &self.inner.threads)
            .finish()
    }
}

impl OnnxEngine {
    /// Loads the models in `models_dir`: reads each manifest, checks the weights'
    /// SHA-256, and builds one ONNX Runtime session per ONNX model (loading the runtime
    /// first, see [`crate::init_runtime`]) or loads the GGUF file into llama.cpp. A
    /// directory of GGUF models alone needs no ONNX Runtime.
    pub fn load(models_dir: impl AsRef<Path>, options: &EngineOptions) -> Result<Self> {
        let models_dir = models_dir.as_ref().to_path_buf();
        let threads = options
            .intra_threads
            .filter(|&n| n > 0)
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, usize::from));

        let dirs = match &options.models {
            Some(ids) => ids.iter().map(|id| models_dir.join(id)).collect(),
            None => manifest::discover(&models_dir)?,
        };
        let mut models = BTreeMap::new();
        for dir in dirs {
            let manifest = ModelManifest::load(&dir)?;
            let runner = match manifest.format() {
                ModelFormat::Gguf => {
                    GgufModel::load(&manifest, threads, options.execution_provider)
                        .map(|m| Runner::Gguf(std::sync::Arc::new(m)))
                }
                ModelFormat::Onnx => Pipeline::for_manifest(&manifest, &|role| {
                    let env = runtime::environment(options.runtime_path.as_deref())?;
                    build_file_session(env, &manifest, role, options.execution_provider, threads)
                })
                .and_then(|pipeline| {
                    let env = runtime::environment(options.runtime_path.as_deref())?;
                    let session =
                        build_session(env, &manifest, options.execution_provider, threads)?;
                    Ok(Runner::Onnx {
                        pipeline,
                        session: Mutex::new(session),
                    })
                }),
            };
            let runner = match runner {
                Ok(r) => r,
                // A models directory may hold models for pipelines this build lacks;
                // serve the rest rather than none.
                Err(e @ Error::Unsupported { .. }) if options.models.is_none() => {
                    tracing::warn!("skipping model: {e}");
                    continue;
                }
                Err(e) => return Err(e),
            };
            tracing::info!(model = %manifest.id, threads, "loaded model");
            models.insert(manifest.id.clone(), LoadedModel { manifest, runner });
        }
        Ok(Self {
            inner: Arc::new(Inner {
                models_dir,
                models,
                threads,
            }),
        })
    }

    /// The directory the models were loaded from.
    pub fn models_dir(&self) -> &Path {
        &self.inner.models_dir
    }

    /// The loaded models' manifests, by id.
    pub fn manifests(&self) -> impl Iterator<Item = &ModelManifest> {
        self.inner.models.values().map(|m| &m.manifest)
    }

    /// The manifest of model `id`, if loaded.
    pub fn manifest(&self, id: &str) -> Option<&ModelManifest> {
        self.inner.models.get(id).map(|m| &m.manifest)
    }

    /// Threads per session.
    pub fn threads(&self) -> usize {
        self.inner.threads
    }

    /// Runs one inference on the calling thread. Blocks for the model's run time; async
    /// code goes through [`flownet_core::Engine::infer`] instead.
    pub fn infer_blocking(&self, request: &InferenceRequest) -> Result<InferenceOutput> {
        self.infer_stream_blocking(request, &mut |_| true)
    }

    /// Runs one inference on the calling thread, handing a text-generation model's
    /// chunks to `sink` as they are made (other models send none); `sink` returns false
    /// to cancel the run ([`Error::Cancelled`]). The output of a text-generation model
    /// is the fold of exactly the chunks `sink` received.
    pub fn infer_stream_blocking(
        &self,
        request: &InferenceRequest,
        sink: &mut dyn FnMut(StreamChunk) -> bool,
    ) -> Result<InferenceOutput> {
        let model = self.model(&request.model_id)?;
        match &model.runner {
            Runner::Gguf(gguf) => gguf.generate_on_own_thread(request, sink),
            // The embedder takes the session's lock only around the model's runs.
            Runner::Onnx {
                pipeline: Pipeline::Embedder(embedder),
                session,
            } => embedder.infer(&model.manifest.id, session, request),
            // The reader locks each of its three sessions only around that model's runs.
            Runner::Onnx {
                pipeline: Pipeline::Reader(reader),
                session,
            } => reader.infer(&model.manifest.id, session, request),
            // The speaker phonemizes outside the lock and takes it for each sentence.
            Runner::Onnx {
                pipeline: Pipeline::Speaker(speaker),
                session,
            } => speaker.infer(&model.manifest.id, session, request),
            Runner::Onnx { pipeline, session } => {
                // A panic in another request leaves the session usable: ONNX Runtime
                // keeps no state between runs that a half-finished run could corrupt.
                let mut session = session.lock().unwrap_or_else(PoisonError::into_inner);
                match pipeline {
                    Pipeline::Terrain => terrain::infer(&mut session, request),
                    Pipeline::Classifier(classifier) => {
                        classifier.infer(&model.manifest.id, &mut session, request)
                    }
                    Pipeline::Embedder(_) | Pipeline::Reader(_) | Pipeline::Speaker(_) => {
                        unreachable!("matched above")
                    }
                }
            }
        }
    }

    /// Checks a text-generation request without running the model: the conversation,
    /// the params and that the prompt and `max_tokens` fit the context window. Other
    /// models check their input when they run, so this accepts any request for them.
    pub fn check_request(&self, request: &InferenceRequest) -> Result<()> {
        match &self.model(&request.model_id)?.runner {
            Runner::Gguf(gguf) => gguf.check(request),
            Runner::Onnx { .. } => Ok(()),
        }
    }

    /// A text-generation model's context window in tokens, if `id` is one.
    pub fn context_length(&self, id: &str) -> Option<u32> {
        match &self.inner.models.get(id)?.runner {
            Runner::Gguf(gguf) => Some(gguf.context_length()),
            Runner::Onnx { .. } => None,
        }
    }

    fn model(&self, id: &str) -> Result<&LoadedModel> {
        self.inner
            .models
            .get(id)
            .ok_or_else(|| Error::UnknownModel(id.to_owned()))
    }
}

/// A raw `f32` tensor: its shape and its values in row-major order.
pub type RawTensor = (Vec<usize>, Vec<f32>);

impl OnnxEngine {
    /// Runs model `id` on raw `f32` tensors, by input name, and returns every output as
    /// a raw tensor, by name: the model alone, without the pipeline's pre- and
    /// post-processing. For benchmarks that compare with other runtimes, and for callers
    /// that bring their own processing.
    pub fn run_raw(
        &self,
        id: &str,
        inputs: &[(&str, RawTensor)],
    ) -> Result<Vec<(String, RawTensor)>> {
        let Runner::Onnx { session, .. } = &self.model(id)?.runner else {
            return Err(Error::Unsupported {
                id: id.to_owned(),
                reason: "run_raw runs ONNX models only".into(),
            });
        };
        let mut values = Vec::with_capacity(inputs.len());
        for (name, (shape, data)) in inputs {
            let tensor = ort::value::TensorRef::from_array_view((shape.clone(), data.as_slice()))
                .map_err(Error::ort(format!("preparing input {name}")))?;
            values.push((
                std::borrow::Cow::Borrowed(*name),
                ort::session::SessionInputValue::from(tensor),
            ));
        }
        let mut session = session.lock().unwrap_or_else(PoisonError::into_inner);
        let outputs = session
            .run(values)
            .map_err(Error::ort(format!("running {id}")))?;
        let mut result = Vec::new();
        for (name, value) in outputs.iter() {
            let (shape, data) = value
                .try_extract_tensor::<f32>()
                .map_err(Error::ort(format!("reading output {name}")))?;
            let shape = shape
                .iter()
                .map(|&d| usize::try_from(d).unwrap_or(0))
                .collect();
            result.push((name.to_string(), (shape, data.to_vec())));
        }
        Ok(result)
    }
}

#[async_trait]
impl flownet_core::Engine for OnnxEngine {
    fn models(&self) -> Vec<ModelInfo> {
        self.manifests().map(ModelManifest::info).collect()
    }

    async fn infer(&self, request: InferenceRequest) -> flownet_core::Result<InferenceOutput> {
        let engine = self.clone();
        // Inference takes tens to hundreds of milliseconds of CPU: keep it off the async
        // executor's threads.
        tokio::task::spawn_blocking(move || engine.infer_blocking(&request))
            .await
            .map_err(|e| flownet_core::Error::Inference(format!("the inference task failed: {e}")))?
            .map_err(Into::into)
    }

    async fn infer_stream(
        &self,
        request: InferenceRequest,
        sink: &(dyn Fn(StreamChunk) + Send + Sync),
    ) -> flownet_core::Result<InferenceOutput> {
        let engine = self.clone();
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        // The model runs on a blocking thread and sends its chunks here; if this future
        // is dropped the receiver goes with it, the next send fails and the run stops.
        let run = tokio::task::spawn_blocking(move || {
            engine.infer_stream_blocking(&request, &mut |chunk| tx.send(chunk).is_ok())
        });
        while let Some(chunk) = rx.recv().await {
            sink(chunk);
        }
        run.await
            .map_err(|e| flownet_core::Error::Inference(format!("the inference task failed: {e}")))?
            .map_err(Into::into)
    }
}

/// Builds `manifest`'s session from the hash-checked weights, on the requested
/// execution provider or, if that fails, on the CPU.
fn build_session(
    env: &Environment,
    manifest: &ModelManifest,
    provider: ExecutionProvider,
    threads: usize,
) -> Result<Session> {
    let weights = manifest.verify_weights()?;
    let session = session_from(
        env,
        &weights,
        &manifest.weights_path(),
        &manifest.id,
        provider,
        threads,
    )?;
    check_io_names(manifest, &session)?;
    Ok(session)
}

/// Builds the session of `manifest`'s extra weights file with this role, from its
/// hash-checked bytes (the pipeline checks its tensors).
fn build_file_session(
    env: &Environment,
    manifest: &ModelManifest,
    role: &str,
    provider: ExecutionProvider,
    threads: usize,
) -> Result<Session> {
    let bytes = manifest.verify_file(role)?;
    let path = manifest.file_path(role).unwrap_or_default();
    session_from(env, &bytes, &path, &manifest.id, provider, threads)
}

/// A session for the ONNX graph `weights` (read from `path`), on the requested
/// execution provider or, if that fails, on the CPU.
fn session_from(
    env: &Environment,
    weights: &[u8],
    path: &Path,
    id: &str,
    provider: ExecutionProvider,
    threads: usize,
) -> Result<Session> {
    let context = |what: &str| format!("{what} for {}", path.display());
    let mut builder = Session::builder(env)
        .map_err(Error::ort(context("creating a session builder")))?
        .with_optimization_level(GraphOptimizationLevel::All)
        .map_err(Error::ort(context("setting the optimisation level")))?
        .with_intra_threads(threads)
        .map_err(Error::ort(context("setting the thread count")))?;

    let session = match provider {
        ExecutionProvider::Cpu => None,
        ExecutionProvider::Cuda { device_id } => cuda_session(&builder, weights, device_id, id),
    };
    match session {
        Some(session) => Ok(session),
        None => builder
            .commit_from_memory(weights)
            .map_err(Error::ort(context("loading the model"))),
    }
}

/// A session on CUDA device `device_id`, or `None` (with a warning) if CUDA is not
/// usable, so the caller falls back to the CPU.
#[cfg(feature = "cuda")]
fn cuda_session(
    builder: &ort::session::builder::SessionBuilder,
    weights: &[u8],
    device_id: i32,
    model: &str,
) -> Option<Session> {
    let ep = ort::ep::CUDA::default()
        .with_device_id(device_id)
        .build()
        .error_on_failure();
    let attempt = builder
        .clone()
        .with_execution_providers([ep])
        .map_err(ort::Error::from)
        .and_then(|mut b| b.commit_from_memory(weights));
    match attempt {
        Ok(session) => Some(session),
        Err(e) => {
            tracing::warn!(model, "CUDA is unavailable ({e}); running on the CPU");
            None
        }
    }
}

#[cfg(not(feature = "cuda"))]
fn cuda_session(
    _builder: &ort::session::builder::SessionBuilder,
    _weights: &[u8],
    _device_id: i32,
    model: &str,
) -> Option<Session> {
    tracing::warn!(
        model,
        "built without the `cuda` feature; running on the CPU"
    );
    None
}

/// Checks that the session's inputs and outputs include the manifest's, so a manifest
/// that disagrees with its weights fails at load time rather than on the first request.
fn check_io_names(manifest: &ModelManifest, session: &Session) -> Result<()> {
    let actual_inputs: BTreeSet<&str> = session.inputs().iter().map(|o| o.name()).collect();
    let actual_outputs: BTreeSet<&str> = session.outputs().iter().map(|o| o.name()).collect();
    let expected_inputs: BTreeSet<&str> = manifest.inputs.iter().map(|t| t.name.as_str()).collect();
    let missing_outputs: Vec<&str> = manifest
        .outputs
        .iter()
        .map(|t| t.name.as_str())
        .filter(|n| !actual_outputs.contains(n))
        .collect();
    if actual_inputs != expected_inputs || !missing_outputs.is_empty() {
        return Err(Error::manifest(
            manifest.dir.join(manifest::MANIFEST_FILE),
            format!(
                "the manifest's tensors do not match {}: the model takes {actual_inputs:?} and \
                 returns {actual_outputs:?}",
                manifest.weights
            ),
        ));
    }
    Ok(())
}
