//! `flownet.Node`: a model developer's node. Python functions become models through
//! `@node.model(...)`, ONNX models come from their manifests, and `serve()` runs the Rust
//! node runtime (output server, claim, run, deliver, resume) with the GIL released.

use std::{
    net::SocketAddr,
    panic::{AssertUnwindSafe, catch_unwind},
    path::PathBuf,
    sync::{Arc, Mutex},
    time::Duration,
};

use flownet_cli::hooks::{Handler, HandlerContext};
use flownet_core::{
    Amount, Digest32, Error, InferenceRequest, ModelInfo, OfferedModel, TaskKind, crypto,
};
use flownet_infer::{ModelManifest, OnnxEngine};
use pyo3::{exceptions::PyKeyboardInterrupt, prelude::*, types::PyString};
use tokio::sync::watch;

use crate::{
    blocking,
    client::Output,
    convert::{amount_arg, json_to_py, py_to_json},
    engine::{NodeEngine, PythonModel},
    errors::{FlowError, FlowResult, panic_to_py_err},
    ledger::{Account, Ledger, path_arg},
    runtime,
};

/// One model of a node.
#[derive(Debug)]
enum Spec {
    Python {
        info: ModelInfo,
        price: Amount,
        /// What the price pays for: a task, or 1,000 tokens (pieces a generator yields).
        unit: flownet_core::PriceUnit,
        func: Py<PyAny>,
        explicit_mime: Option<String>,
    },
    Onnx {
        id: String,
        price: Amount,
        /// None: the `--models-dir` of the command, else `FLOWNET_MODELS`, else ./models.
        models_dir: Option<PathBuf>,
    },
}

impl Spec {
    fn id(&self) -> &str {
        match self {
            Self::Python { info, .. } => &info.id,
            Self::Onnx { id, .. } => id,
        }
    }
}

#[derive(Debug, Default)]
struct State {
    specs: Vec<Spec>,
    stop: Option<watch::Sender<bool>>,
    /// The last engine built and what it was built for: loading ONNX models takes
    /// seconds, so `infer` and `serve` reuse it until a model is added.
    engine: Option<(EngineKey, Arc<NodeEngine>, Vec<OfferedModel>)>,
}

/// What an engine depends on besides the models.
#[derive(Debug, Clone, PartialEq, Eq)]
struct EngineKey {
    models_dir: PathBuf,
    threads: Option<usize>,
    cuda: bool,
}

/// A node: the models it serves (Python functions and ONNX models), its name and
/// endpoint, and, to serve from Python, the ledger and the account it is paid to.
#[pyclass(module = "flownet", frozen)]
#[derive(Debug)]
pub struct Node {
    ledger: Option<Py<Ledger>>,
    account: Option<Py<Account>>,
    name: Option<String>,
    endpoint: Option<String>,
    state: Mutex<State>,
}

impl Node {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn add(&self, spec: Spec) -> FlowResult<()> {
        let mut state = self.state();
        if state.specs.iter().any(|s| s.id() == spec.id()) {
            return Err(Error::AlreadyExists(format!("model {} on this node", spec.id())).into());
        }
        state.specs.push(spec);
        state.engine = None;
        Ok(())
    }

    /// The engine for the node's models and the offers to publish for them. ONNX
    /// models are loaded (and their weights checked) with the GIL released.
    fn build(
        &self,
        py: Python<'_>,
        context: &HandlerContext,
    ) -> PyResult<(Arc<NodeEngine>, Vec<OfferedModel>)> {
        let key = EngineKey {
            models_dir: context.models_dir.clone(),
            threads: context.threads,
            cuda: context.cuda,
        };
        if let Some((k, engine, offers)) = &self.state().engine
            && *k == key
        {
            return Ok((engine.clone(), offers.clone()));
        }
        let (engine, offers) = self.load_engine(py, context)?;
        let engine = Arc::new(engine);
        self.state().engine = Some((key, engine.clone(), offers.clone()));
        Ok((engine, offers))
    }

    fn load_engine(
        &self,
        py: Python<'_>,
        context: &HandlerContext,
    ) -> PyResult<(NodeEngine, Vec<OfferedModel>)> {
        let mut python = Vec::new();
        let mut onnx: Vec<(PathBuf, String, Amount)> = Vec::new();
        let mut offers = Vec::new();
        for spec in &self.state().specs {
            match spec {
                Spec::Python {
                    info,
                    price,
                    unit,
                    func,
                    explicit_mime,
                } => {
                    offers.push(OfferedModel {
                        model_id: info.id.clone(),
                        weights_sha256: info.weights_sha256,
                        price: *price,
                        unit: *unit,
                    });
                    python.push(PythonModel {
                        metered: *unit == flownet_core::PriceUnit::ThousandTokens,
                        info: info.clone(),
                        func: func.clone_ref(py),
                        explicit_mime: explicit_mime.clone(),
                    });
                }
                Spec::Onnx {
                    id,
                    price,
                    models_dir,
                } => {
                    let dir = models_dir
                        .clone()
                        .unwrap_or_else(|| context.models_dir.clone());
                    onnx.push((dir, id.clone(), *price));
                }
            }
        }
        if python.is_empty() && onnx.is_empty() {
            return Err(FlowError::Core(Error::InvalidInput(
                "the node has no models: decorate a function with @node.model(...) or add one with node.onnx(...)".into(),
            ))
            .into());
        }
        let context = context.clone();
        let (engines, onnx_offers) = blocking(py, move || {
            let mut by_dir: Vec<(PathBuf, Vec<String>)> = Vec::new();
            let mut offers = Vec::new();
            for (dir, id, price) in onnx {
                let manifest = ModelManifest::load(dir.join(&id))?;
                offers.push(OfferedModel {
                    model_id: id.clone(),
                    weights_sha256: manifest.digest(),
                    price,
                    unit: manifest.kind.price_unit(),
                });
                match by_dir.iter_mut().find(|(d, _)| *d == dir) {
                    Some((_, ids)) => ids.push(id),
                    None => by_dir.push((dir, vec![id])),
                }
            }
            let mut engines = Vec::new();
            for (dir, ids) in by_dir {
                let options = flownet_node::EngineSettings {
                    threads: context.threads,
                    cuda: context.cuda,
                    models: Some(ids),
                }
                .options();
                engines.push(OnnxEngine::load(&dir, &options)?);
            }
            Ok((engines, offers))
        })?;
        offers.extend(onnx_offers);
        self.in_spec_order(&mut offers);
        Ok((NodeEngine::new(python, engines), offers))
    }

    /// Sorts offers into the order the models were added, the order they are published.
    fn in_spec_order(&self, offers: &mut [OfferedModel]) {
        let state = self.state();
        let position = |id: &str| state.specs.iter().position(|s| s.id() == id);
        offers.sort_by_key(|o| position(&o.model_id));
    }

    fn default_context(threads: Option<usize>) -> HandlerContext {
        HandlerContext {
            models_dir: flownet_infer::default_models_dir(),
            threads,
            cuda: false,
        }
    }

    /// What `flownet node serve --handler` serves for this node.
    pub(crate) fn handler(&self, py: Python<'_>, context: &HandlerContext) -> PyResult<Handler> {
        let (engine, offers) = self.build(py, context)?;
        Ok(Handler {
            engine,
            offers,
            name: self.name.clone(),
            endpoint: self.endpoint.clone(),
        })
    }

    fn bound(&self) -> FlowResult<(&Py<Ledger>, &Py<Account>)> {
        match (&self.ledger, &self.account) {
            (Some(l), Some(a)) => Ok((l, a)),
            _ => Err(Error::InvalidInput(
                "this node has no ledger and account: make it with flownet.Node(ledger, account, ...), \
                 or serve it with `flownet node serve --handler MODULE:OBJECT`"
                    .into(),
            )
            .into()),
        }
    }
}

fn parse_kind(kind: &str) -> FlowResult<TaskKind> {
    serde_json::from_value(serde_json::Value::String(kind.to_owned())).map_err(|_| {
        Error::InvalidInput(format!(
            "unknown model kind {kind:?}: expected text-to-image, image-classification, \
             text-generation, embedding, ocr or text-to-speech"
        ))
        .into()
    })
}

fn default_mime(kind: TaskKind) -> &'static str {
    match kind {
        TaskKind::TextToImage => "image/png",
        TaskKind::ImageClassification | TaskKind::Embedding | TaskKind::Ocr => "application/json",
        TaskKind::TextGeneration => "text/plain; charset=utf-8",
        TaskKind::TextToSpeech => "audio/wav",
    }
}

#[pymethods]
impl Node {
    /// A node named `name` publishing its outputs at `endpoint` (default: the registered
    /// one, else http://127.0.0.1:7070). `ledger` and `account` are needed to serve
    /// from Python; `flownet node serve --handler` uses the command's instead.
    #[new]
    #[pyo3(signature = (ledger = None, account = None, *, name = None, endpoint = None))]
    fn new(
        py: Python<'_>,
        ledger: Option<Py<Ledger>>,
        account: Option<Py<Account>>,
        name: Option<String>,
        endpoint: Option<String>,
    ) -> PyResult<Self> {
        let ledger = match (&ledger, &account) {
            (None, Some(a)) => Some(a.get().ledger.clone_ref(py)),
            (Some(l), Some(a)) if l.get().id() != a.get().ledger.get().id() => {
                return Err(FlowError::Core(Error::InvalidInput(
                    "the account was loaded for another ledger".into(),
                ))
                .into());
            }
            _ => ledger,
        };
        Ok(Self {
            ledger,
            account,
            name,
            endpoint,
            state: Mutex::default(),
        })
    }

    /// A decorator that makes `fn(prompt, params) -> bytes | str | dict | list |
    /// PIL.Image.Image | numpy.ndarray` the model `model_id`, offered at `price`. For
    /// kinds that take an image the function gets the image's bytes instead of a prompt.
    /// The weights hash published on the ledger is `weights_sha256` (hex) if given,
    /// else the SHA-256 of the function's source code. A text-generation function may
    /// be a generator that yields the answer's text in pieces: the node streams each
    /// piece to followers as it is yielded, stores the answer as
    /// `{"text", "finish_reason", "usage"}` JSON, and stops taking pieces at
    /// `params["max_tokens"]`. With `unit="thousand_tokens"` the price is per 1,000
    /// pieces (tokens) and the node is paid for the pieces delivered; the default
    /// `unit="task"` prices each task whole. An `embedding` function gets the task's
    /// texts (a list of str) and returns one vector per text, or `{"embeddings": [...],
    /// "tokens": [...]}`; priced per 1,000 tokens it must say the tokens each text
    /// took, which it is paid for. An `ocr` function gets the image's bytes and returns
    /// the text it read (a str, one line per line), a list of lines (str, or dicts
    /// with `"text"` and optionally `"score"` and `"box"`, four `[x, y]` corners), or
    /// `{"lines": [...]}`; no text at all declines the task (the requester is refunded).
    #[pyo3(signature = (model_id, *, price, kind = "text-to-image", name = None, output_mime = None, weights_sha256 = None, prompt_mapping = None, defaults = None, unit = "task"))]
    #[allow(clippy::too_many_arguments)]
    fn model(
        slf: Py<Self>,
        model_id: String,
        price: &Bound<'_, PyAny>,
        kind: &str,
        name: Option<String>,
        output_mime: Option<String>,
        weights_sha256: Option<String>,
        prompt_mapping: Option<String>,
        defaults: Option<&Bound<'_, PyAny>>,
        unit: &str,
    ) -> PyResult<ModelDecorator> {
        let unit: flownet_core::PriceUnit =
            serde_json::from_value(serde_json::Value::String(unit.to_owned())).map_err(|_| {
                FlowError::Core(Error::InvalidInput(format!(
                    "unknown price unit {unit:?}: expected \"task\" or \"thousand_tokens\""
                )))
            })?;
        let kind = parse_kind(kind)?;
        if unit == flownet_core::PriceUnit::ThousandTokens
            && !matches!(kind, TaskKind::TextGeneration | TaskKind::Embedding)
        {
            return Err(FlowError::Core(Error::InvalidInput(
                "only text-generation and embedding models are priced per 1,000 tokens".into(),
            ))
            .into());
        }
        let defaults = match defaults {
            Some(d) => {
                serde_json::from_str(&py_to_json(d)?).map_err(|e| FlowError::Other(e.into()))?
            }
            None => serde_json::json!({}),
        };
        let weights_sha256 = weights_sha256
            .map(|h| Digest32::from_hex(&h).map_err(FlowError::Core))
            .transpose()?;
        Ok(ModelDecorator {
            node: slf,
            model_id,
            price: amount_arg(price)?,
            kind,
            unit,
            name,
            output_mime,
            weights_sha256,
            prompt_mapping,
            defaults,
        })
    }

    /// Adds the ONNX model `model_id` from its manifest in `models_dir` (default: the
    /// command's `--models-dir`, else `FLOWNET_MODELS`, else ./models), offered at
    /// `price`. Its weights are checked against the manifest when the node starts.
    #[pyo3(signature = (model_id, *, price, models_dir = None))]
    fn onnx(
        &self,
        py: Python<'_>,
        model_id: String,
        price: &Bound<'_, PyAny>,
        models_dir: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        let price = amount_arg(price)?;
        let models_dir = models_dir.map(path_arg).transpose()?;
        let dir = models_dir
            .clone()
            .unwrap_or_else(flownet_infer::default_models_dir);
        let id = model_id.clone();
        blocking(py, move || {
            ModelManifest::load(dir.join(&id))?;
            Ok(())
        })?;
        self.add(Spec::Onnx {
            id: model_id,
            price,
            models_dir,
        })?;
        Ok(())
    }

    /// The node's models: id, kind, source (python or onnx) and price, and for Python
    /// models the weights hash that will be published.
    #[getter]
    fn models(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let list: Vec<serde_json::Value> = self
            .state()
            .specs
            .iter()
            .map(|s| match s {
                Spec::Python { info, price, unit, .. } => serde_json::json!({
                    "id": info.id, "kind": info.kind, "source": "python", "price": price.to_string(),
                    "unit": unit,
                    "weights_sha256": info.weights_sha256, "output_mime": info.output_mime,
                    "name": info.name,
                }),
                Spec::Onnx { id, price, .. } => serde_json::json!({
                    "id": id, "source": "onnx", "price": price.to_string(),
                }),
            })
            .collect();
        json_to_py(py, &serde_json::Value::Array(list))
    }

    #[getter]
    fn name(&self) -> Option<String> {
        self.name.clone()
    }

    #[getter]
    fn endpoint(&self) -> Option<String> {
        self.endpoint.clone()
    }

    /// The address of the account the node is paid to, if it has one.
    #[getter]
    fn address(&self) -> Option<String> {
        self.account
            .as_ref()
            .map(|a| a.get().wallet.address().to_string())
    }

    /// Runs one inference locally, exactly as the node would for a task, without the
    /// ledger: `prompt` is text, or an image's bytes for image models.
    #[pyo3(signature = (model_id, prompt, params = None, *, threads = None))]
    fn infer(
        &self,
        py: Python<'_>,
        model_id: String,
        prompt: &Bound<'_, PyAny>,
        params: Option<&Bound<'_, PyAny>>,
        threads: Option<usize>,
    ) -> PyResult<Output> {
        let params = match params {
            Some(p) => match serde_json::from_str(&py_to_json(p)?) {
                Ok(serde_json::Value::Object(map)) => map,
                _ => {
                    return Err(FlowError::Core(Error::InvalidInput(
                        "params must be a dict".into(),
                    ))
                    .into());
                }
            },
            None => serde_json::Map::new(),
        };
        let (prompt, input) = if prompt.is_instance_of::<PyString>() {
            (prompt.extract::<String>()?, None)
        } else {
            let image: Vec<u8> = prompt.cast::<pyo3::types::PyBytes>()?.as_bytes().to_vec();
            (format!("sha256:{}", crypto::sha256(&image)), Some(image))
        };
        let (engine, _) = self.build(py, &Self::default_context(threads))?;
        let request = InferenceRequest {
            model_id,
            prompt,
            params,
            input,
        };
        let out = blocking(py, move || Ok(engine.infer_blocking(request)?))?;
        let sha256 = crypto::sha256(&out.bytes).to_hex();
        Output::new(
            py,
            &out.bytes,
            out.mime,
            sha256,
            String::new(),
            &out.metadata,
        )
    }

    /// Publishes the node's offers on the ledger (registering the node, or updating it
    /// when its name, endpoint or offers changed) and returns the node's record.
    fn register(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let (_, account) = self.bound()?;
        let offers = self.offers_only(py)?;
        let wallet = account.get().wallet.clone();
        let (name, endpoint) = (self.name.clone(), self.endpoint.clone());
        let node = crate::block_on(py, async move {
            Ok(flownet_node::ensure_registered(
                &wallet,
                name.as_deref(),
                endpoint.as_deref(),
                offers,
            )
            .await?)
        })?;
        json_to_py(py, &flownet_cli::node_json(&node))
    }

    /// Serves the node until Ctrl-C or `stop()`: publishes its offers, then runs the Rust
    /// node runtime (output server, claim, run, deliver) with the GIL released; Python is
    /// entered only to call a model function. Tasks claimed but not delivered when it
    /// stops resume on the next start. With `once=True` it processes the waiting tasks
    /// and returns how many it delivered.
    #[pyo3(signature = (*, listen = None, interval_ms = 250, once = false, threads = None))]
    fn serve(
        &self,
        py: Python<'_>,
        listen: Option<String>,
        interval_ms: u64,
        once: bool,
        threads: Option<usize>,
    ) -> PyResult<usize> {
        let (_, account) = self.bound()?;
        let listen = listen
            .map(|l| {
                l.parse::<SocketAddr>().map_err(|e| {
                    FlowError::Core(Error::InvalidInput(format!("listen address {l:?}: {e}")))
                })
            })
            .transpose()?;
        flownet_cli::init_logging(0, true);
        let (engine, offers) = self.build(py, &Self::default_context(threads))?;
        let wallet = account.get().wallet.clone();
        let blobs = account.get().blobs()?;
        let (stop_tx, mut stop_rx) = watch::channel(false);
        {
            let mut state = self.state();
            if state.stop.is_some() {
                return Err(FlowError::Core(Error::InvalidInput(
                    "this node is already serving".into(),
                ))
                .into());
            }
            state.stop = Some(stop_tx.clone());
        }
        let (name, endpoint) = (self.name.clone(), self.endpoint.clone());
        let options = flownet_node::ServeOptions {
            listen,
            interval: Duration::from_millis(interval_ms),
            once,
            fetch: None,
        };
        let run = async move {
            flownet_node::ensure_registered(&wallet, name.as_deref(), endpoint.as_deref(), offers)
                .await?;
            let stop = async move {
                while !*stop_rx.borrow() {
                    if stop_rx.changed().await.is_err() {
                        break;
                    }
                }
            };
            flownet_node::run_node(wallet, engine, blobs, &options, stop).await
        };
        let rt = runtime()?;
        let mut handle = rt.spawn(run);
        let outcome = loop {
            let polled = py
                .detach(|| {
                    catch_unwind(AssertUnwindSafe(|| {
                        rt.block_on(async {
                            tokio::time::timeout(Duration::from_millis(100), &mut handle).await
                        })
                    }))
                })
                .map_err(panic_to_py_err);
            match polled {
                Ok(Ok(joined)) => break Ok(joined),
                Ok(Err(_elapsed)) => {}
                Err(e) => {
                    let _ = stop_tx.send(true);
                    break Err(e);
                }
            }
            // Python's signal handlers run here, in the main thread: Ctrl-C stops the
            // node cleanly instead of abandoning the runtime mid-task.
            if let Err(e) = py.check_signals() {
                let _ = stop_tx.send(true);
                let joined = py.detach(|| rt.block_on(&mut handle));
                break if e.is_instance_of::<PyKeyboardInterrupt>(py) {
                    tracing::info!(target: "flownet", "stopped by Ctrl-C");
                    Ok(joined)
                } else {
                    Err(e)
                };
            }
        };
        self.state().stop = None;
        match outcome? {
            Ok(Ok(delivered)) => Ok(delivered),
            Ok(Err(e)) => Err(FlowError::from(e).into()),
            Err(e) => Err(FlowError::Other(anyhow::anyhow!("the node runtime failed: {e}")).into()),
        }
    }

    /// Stops `serve()` (from another thread or a model function); it returns once the
    /// task in progress is done.
    fn stop(&self) {
        if let Some(tx) = &self.state().stop {
            let _ = tx.send(true);
        }
    }

    fn __repr__(&self) -> String {
        let ids: Vec<String> = self
            .state()
            .specs
            .iter()
            .map(|s| s.id().to_owned())
            .collect();
        format!("Node(name={:?}, models={ids:?})", self.name)
    }
}

impl Node {
    /// The offers without loading ONNX Runtime (manifests are read, weights not hashed).
    fn offers_only(&self, py: Python<'_>) -> PyResult<Vec<OfferedModel>> {
        let context = Self::default_context(None);
        let mut offers = Vec::new();
        let mut onnx = Vec::new();
        for spec in &self.state().specs {
            match spec {
                Spec::Python {
                    info, price, unit, ..
                } => offers.push(OfferedModel {
                    model_id: info.id.clone(),
                    weights_sha256: info.weights_sha256,
                    price: *price,
                    unit: *unit,
                }),
                Spec::Onnx {
                    id,
                    price,
                    models_dir,
                } => onnx.push((
                    models_dir
                        .clone()
                        .unwrap_or_else(|| context.models_dir.clone()),
                    id.clone(),
                    *price,
                )),
            }
        }
        let onnx_offers = blocking(py, move || {
            onnx.into_iter()
                .map(|(dir, id, price)| {
                    let manifest = ModelManifest::load(dir.join(&id))?;
                    Ok(OfferedModel {
                        model_id: id,
                        weights_sha256: manifest.digest(),
                        price,
                        unit: flownet_core::PriceUnit::Task,
                    })
                })
                .collect::<FlowResult<Vec<_>>>()
        })?;
        offers.extend(onnx_offers);
        self.in_spec_order(&mut offers);
        Ok(offers)
    }
}

/// What `@node.model(...)` returns: call it on the model's function.
#[pyclass(module = "flownet", frozen)]
#[derive(Debug)]
pub struct ModelDecorator {
    node: Py<Node>,
    model_id: String,
    price: Amount,
    kind: TaskKind,
    unit: flownet_core::PriceUnit,
    name: Option<String>,
    output_mime: Option<String>,
    weights_sha256: Option<Digest32>,
    prompt_mapping: Option<String>,
    defaults: serde_json::Value,
}

#[pymethods]
impl ModelDecorator {
    /// Adds `func` to the node as the model and returns `func` unchanged.
    fn __call__(&self, py: Python<'_>, func: Py<PyAny>) -> PyResult<Py<PyAny>> {
        let bound = func.bind(py);
        if !bound.is_callable() {
            return Err(pyo3::exceptions::PyTypeError::new_err(
                "@node.model(...) decorates a function (prompt, params) -> output",
            ));
        }
        let inspect = py.import("inspect")?;
        let weights_sha256 = match self.weights_sha256 {
            Some(h) => h,
            None => {
                let source: String = inspect
                    .call_method1("getsource", (bound,))
                    .and_then(|s| s.extract())
                    .map_err(|e| {
                        FlowError::Core(Error::InvalidInput(format!(
                            "cannot read the source of the function for {} ({e}): pass weights_sha256=",
                            self.model_id
                        )))
                    })?;
                crypto::sha256(source.as_bytes())
            }
        };
        let doc: Option<String> = inspect.call_method1("getdoc", (bound,))?.extract()?;
        let qualname: String = bound
            .getattr("__qualname__")
            .and_then(|q| q.extract())
            .unwrap_or_else(|_| "function".into());
        let info = ModelInfo {
            id: self.model_id.clone(),
            kind: self.kind,
            name: self.name.clone().unwrap_or_else(|| self.model_id.clone()),
            weights_sha256,
            output_mime: self
                .output_mime
                .clone()
                .unwrap_or_else(|| default_mime(self.kind).to_owned()),
            prompt_mapping: self.prompt_mapping.clone().or(doc).unwrap_or_else(|| {
                format!("the Python function {qualname} decides how the prompt is used")
            }),
            defaults: self.defaults.clone(),
        };
        self.node.get().add(Spec::Python {
            info,
            price: self.price,
            unit: self.unit,
            func: func.clone_ref(py),
            explicit_mime: self.output_mime.clone(),
        })?;
        Ok(func)
    }

    fn __repr__(&self) -> String {
        format!("ModelDecorator(model_id={:?})", self.model_id)
    }
}
