//! `flownet.Client` (the user's side: nodes, submit, rate, NFTs), `flownet.Task` and
//! `flownet.Output`.

use std::{
    path::PathBuf,
    sync::Arc,
    time::{Duration, Instant},
};

use flownet_core::{Error, TaskQuery, TaskStatus};
use flownet_node::fetch_output;
use pyo3::{
    exceptions::PyTimeoutError,
    prelude::*,
    types::{PyBytes, PyString},
};

use crate::{
    block_on, blocking,
    convert::{address_arg, amount_arg, amount_to_py, json_to_py, py_to_json},
    errors::{FlowError, FlowResult},
    ledger::{Account, Ledger, account_balance, list_nodes, task_record, to_json},
};

/// A user's view of the marketplace: find nodes, pay for prompts, rate outputs.
#[pyclass(module = "flownet", frozen)]
#[derive(Debug)]
pub struct Client {
    ledger: Py<Ledger>,
    account: Py<Account>,
}

impl Client {
    fn wallet(&self) -> Arc<flownet_core::Wallet<dyn flownet_core::Ledger>> {
        self.account.get().wallet.clone()
    }

    fn task_handle(&self, id: u64) -> Task {
        let ledger = self.ledger.get();
        Task {
            id,
            ledger: ledger.port(),
            // A Flow read is a script run by an Access node, which public networks
            // rate-limit; a block takes about a second there anyway.
            poll: if ledger.network() == flownet_cli::context::Network::Embedded {
                Duration::from_millis(50)
            } else {
                Duration::from_millis(500)
            },
            data_dir: self.account.get().data_dir.clone(),
            wallet: self.wallet(),
            fetch: ledger.network().fetch_policy(
                std::env::var_os("FLOWNET_ALLOW_PRIVATE_ENDPOINTS")
                    .is_some_and(|v| !v.is_empty() && v != "0" && v != "false"),
            ),
        }
    }
}

/// A task given as a `Task` or its id.
fn task_id(task: &Bound<'_, PyAny>) -> PyResult<u64> {
    match task.cast::<Task>() {
        Ok(t) => Ok(t.get().id),
        Err(_) => task.extract(),
    }
}

#[pymethods]
impl Client {
    /// A client paying and signing with `account` on `ledger`.
    #[new]
    fn new(ledger: Py<Ledger>, account: Py<Account>) -> PyResult<Self> {
        if ledger.get().id() != account.get().ledger.get().id() {
            return Err(FlowError::Core(Error::InvalidInput(
                "the account was loaded for another ledger".into(),
            ))
            .into());
        }
        Ok(Self { ledger, account })
    }

    #[getter]
    fn ledger(&self, py: Python<'_>) -> Py<Ledger> {
        self.ledger.clone_ref(py)
    }

    #[getter]
    fn account(&self, py: Python<'_>) -> Py<Account> {
        self.account.clone_ref(py)
    }

    /// The nodes, best first (score, then lowest price), or only those offering `model`.
    #[pyo3(signature = (model = None))]
    fn nodes(&self, py: Python<'_>, model: Option<String>) -> PyResult<Py<PyAny>> {
        let ledger = self.ledger.get().port();
        let nodes = block_on(
            py,
            async move { list_nodes(&*ledger, model.as_deref()).await },
        )?;
        json_to_py(py, &nodes)
    }

    /// Pays for one inference and returns its task. `prompt` is text; or the bytes of
    /// an input (an image for models that take one); or, for a language model, a
    /// conversation: a list of `{"role", "content"}` dicts (roles system, user,
    /// assistant). An input, and a conversation too long for the ledger's 4,096-byte
    /// prompt, becomes the task's input blob: named on the ledger by its SHA-256, kept
    /// in this account's blob store and served to the node by this process until the
    /// task settles (from `serve_input`, default an ephemeral port on 127.0.0.1; or
    /// name another holder with `input_url`, under which `/blobs/<sha256>` serves it).
    /// Without `node`, the best-scored active node offering `model` within `max_price`
    /// is chosen; `max_price` defaults to that node's price (per task, or per 1,000
    /// tokens for models priced so). `params` is a JSON-able dict of model parameters.
    /// For a model priced per token, `max_tokens` (default: params' max_tokens, else
    /// 256) is what is escrowed; the tokens not written come back on delivery.
    #[pyo3(signature = (prompt, model, node = None, max_price = None, params = None, *, max_tokens = None, serve_input = None, input_url = None))]
    #[allow(clippy::too_many_arguments)]
    fn submit(
        &self,
        py: Python<'_>,
        prompt: &Bound<'_, PyAny>,
        model: String,
        node: Option<&str>,
        max_price: Option<&Bound<'_, PyAny>>,
        params: Option<&Bound<'_, PyAny>>,
        max_tokens: Option<u64>,
        serve_input: Option<String>,
        input_url: Option<String>,
    ) -> PyResult<Task> {
        let node = node.map(address_arg).transpose()?;
        let max_price = max_price.map(amount_arg).transpose()?;
        let params = match params {
            Some(p) => py_to_json(p)?,
            None => "{}".to_owned(),
        };
        let serve_input = serve_input
            .map(|l| {
                l.parse::<std::net::SocketAddr>().map_err(|e| {
                    FlowError::Core(Error::InvalidInput(format!("serve_input {l:?}: {e}")))
                })
            })
            .transpose()?;
        let (prompt, input_bytes) = if prompt.is_instance_of::<PyString>() {
            (prompt.extract::<String>()?, None)
        } else if prompt.is_instance_of::<pyo3::types::PyList>() {
            flownet_cli::conversation_prompt(format!("{{\"messages\":{}}}", py_to_json(prompt)?))
        } else {
            let bytes = prompt.extract::<Vec<u8>>()?;
            (flownet_cli::input_label(&bytes), Some(bytes))
        };
        let wallet = self.wallet();
        let data_dir = self.account.get().data_dir.clone();
        let poll = self.task_handle(0).poll.max(Duration::from_millis(250));
        let id = block_on(py, async move {
            let s = flownet_cli::submit(
                &crate::ledger::blob_store(&data_dir)?,
                &wallet,
                flownet_cli::SubmitReq {
                    model,
                    prompt,
                    input_bytes,
                    serve_input,
                    input_url,
                    max_tokens,
                    node,
                    max_price,
                    params,
                    models_dir: Some(flownet_infer::default_models_dir()),
                },
            )
            .await
            .map_err(FlowError::from)?;
            // This process serves the input until the task settles, whatever Python
            // does with the returned Task meanwhile.
            if let Some(holder) = s.holder {
                tokio::spawn(flownet_cli::hold_until_settled(
                    wallet.ledger().clone(),
                    s.id,
                    holder,
                    poll,
                ));
            }
            let id: FlowResult<u64> = Ok(s.id);
            id
        })?;
        Ok(self.task_handle(id))
    }

    /// A task by id (it must exist).
    fn task(&self, py: Python<'_>, id: u64) -> PyResult<Task> {
        let ledger = self.ledger.get().port();
        block_on(py, async move {
            ledger
                .task(id)
                .await?
                .ok_or_else(|| Error::NotFound(format!("task {id}")))?;
            Ok(())
        })?;
        Ok(self.task_handle(id))
    }

    /// This account's tasks (as records), optionally only those with `status`.
    #[pyo3(signature = (status = None))]
    fn tasks(&self, py: Python<'_>, status: Option<&str>) -> PyResult<Py<PyAny>> {
        let status = status
            .map(|s| s.parse::<TaskStatus>().map_err(FlowError::Core))
            .transpose()?;
        let wallet = self.wallet();
        let tasks = block_on(py, async move {
            Ok(wallet
                .ledger()
                .tasks(TaskQuery {
                    requester: Some(wallet.address()),
                    status,
                    ..TaskQuery::default()
                })
                .await?)
        })?;
        json_to_py(py, &to_json(&tasks)?)
    }

    /// Rates a fulfilled task 1 to 5 stars; returns the bounty earned (the first three
    /// raters share the task's bounty).
    fn rate(&self, py: Python<'_>, task: &Bound<'_, PyAny>, stars: u8) -> PyResult<Py<PyAny>> {
        let id = task_id(task)?;
        let wallet = self.wallet();
        let receipt = block_on(py, async move { Ok(wallet.rate(id, stars).await?) })?;
        amount_to_py(py, receipt.outcome.credited.unwrap_or_default())
    }

    /// Takes back an unclaimed task's escrow; returns the refund.
    fn cancel(&self, py: Python<'_>, task: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        let id = task_id(task)?;
        let wallet = self.wallet();
        let receipt = block_on(py, async move { Ok(wallet.cancel(id).await?) })?;
        amount_to_py(py, receipt.outcome.credited.unwrap_or_default())
    }

    /// Refunds a task whose claim or fulfil deadline has passed (anyone may).
    fn expire(&self, py: Python<'_>, task: &Bound<'_, PyAny>) -> PyResult<()> {
        let id = task_id(task)?;
        let wallet = self.wallet();
        block_on(py, async move {
            wallet.expire(id).await?;
            Ok(())
        })
    }

    /// The output NFTs `owner` (default: this account) owns.
    #[pyo3(signature = (owner = None))]
    fn nfts(&self, py: Python<'_>, owner: Option<&str>) -> PyResult<Py<PyAny>> {
        let wallet = self.wallet();
        let owner = owner.map(address_arg).transpose()?;
        let nfts = block_on(py, async move {
            let owner = owner.unwrap_or(wallet.address());
            Ok(wallet.ledger().nfts(owner).await?)
        })?;
        json_to_py(py, &to_json(&nfts)?)
    }

    /// The balance of `address` (default: this account) in FLOWNET.
    #[pyo3(signature = (address = None))]
    fn balance(&self, py: Python<'_>, address: Option<&str>) -> PyResult<Py<PyAny>> {
        let address = match address {
            Some(a) => address_arg(a)?,
            None => self.wallet().address(),
        };
        let ledger = self.ledger.get().port();
        let balance = block_on(py, async move { account_balance(&*ledger, address).await })?;
        amount_to_py(py, balance)
    }

    fn __repr__(&self) -> String {
        format!("Client(account={})", self.account.get().wallet.address())
    }
}

/// A submitted task.
#[pyclass(module = "flownet", frozen)]
pub struct Task {
    /// The task's id on the ledger.
    #[pyo3(get)]
    id: u64,
    ledger: Arc<dyn flownet_core::Ledger>,
    /// How often `wait` reads the ledger unless told.
    poll: Duration,
    /// Whose blob store to look in before fetching an output over HTTP.
    data_dir: PathBuf,
    /// Which node addresses outputs and streams are fetched from.
    fetch: flownet_node::FetchPolicy,
    /// Expires the task once its deadline passes, so a waiter's escrow comes back.
    wallet: Arc<flownet_core::Wallet<dyn flownet_core::Ledger>>,
}

impl std::fmt::Debug for Task {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Task")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

enum Waited {
    Final(Box<flownet_core::Task>),
    Pending(TaskStatus, u64),
}

#[pymethods]
impl Task {
    /// The task's record with its ratings, as `flownet --json task show` prints it.
    fn info(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let ledger = self.ledger.clone();
        let id = self.id;
        let record = block_on(py, async move { task_record(&*ledger, id).await })?;
        json_to_py(py, &record)
    }

    /// Where the task stands: open, claimed, fulfilled, cancelled, expired or declined.
    #[getter]
    fn status(&self, py: Python<'_>) -> PyResult<String> {
        let task = self.fetch(py)?;
        Ok(task.status.to_string())
    }

    /// Waits until the task is final (the GIL is released meanwhile), then fetches its
    /// output (from the local blob store, else over HTTP) and checks it against the
    /// SHA-256 on the ledger. Once the task's current deadline has passed, the wait
    /// expires it (anyone may), so its escrow comes back. Raises TimeoutError after
    /// `timeout` seconds (saying how far the deadline is), and InvalidState when the
    /// task ended without an output (declined with its node's reason, expired or
    /// cancelled; the message says the escrow came back). The ledger is read every
    /// `poll_interval` seconds (default: 0.05 on the embedded ledger, 0.5 on Flow).
    #[pyo3(signature = (timeout = 900.0, *, poll_interval = None))]
    fn wait(&self, py: Python<'_>, timeout: f64, poll_interval: Option<f64>) -> PyResult<Output> {
        let started = Instant::now();
        let limit = Duration::try_from_secs_f64(timeout.max(0.0)).unwrap_or(Duration::MAX);
        let poll = poll_interval
            .and_then(|p| Duration::try_from_secs_f64(p.clamp(0.001, 60.0)).ok())
            .unwrap_or(self.poll);
        let task = loop {
            let ledger = self.ledger.clone();
            let wallet = self.wallet.clone();
            let id = self.id;
            let polled = block_on(py, async move {
                use flownet_core::waiting::{Look, look};
                // Past its deadline the task is expired here, refunding the escrow.
                match look(ledger.as_ref(), Some(wallet.as_ref()), id).await? {
                    Look::Final(task) => Ok(Waited::Final(task)),
                    Look::Pending { task, secs_left } => {
                        tokio::time::sleep(poll).await;
                        Ok(Waited::Pending(task.status, secs_left))
                    }
                }
            })?;
            match polled {
                Waited::Final(task) => break *task,
                Waited::Pending(status, left) if started.elapsed() >= limit => {
                    return Err(PyTimeoutError::new_err(format!(
                        "task {} is still {status} after {timeout} s; its deadline is {left} s away, \
                         and waiting past it expires the task and refunds the escrow",
                        self.id
                    )));
                }
                // Between polls Python runs: Ctrl-C interrupts the wait.
                Waited::Pending(..) => py.check_signals()?,
            }
        };
        let Some(output) = task.result.clone() else {
            // Declined, expired or cancelled: the escrow came back; say which and why.
            return Err(crate::errors::to_py_err(
                Some(flownet_core::ErrorKind::InvalidState),
                flownet_core::waiting::ended_without_output(&task),
            ));
        };
        let data_dir = self.data_dir.clone();
        let fetched = output.clone();
        let policy = self.fetch;
        let bytes = blocking(py, move || {
            let local = crate::ledger::blob_store(&data_dir).ok();
            Ok(fetch_output(&fetched, local.as_ref(), policy)?)
        })?;
        let mut metadata = serde_json::json!({
            "task": task.id,
            "nft": task.nft,
            "node": task.node,
            "requester": task.requester,
            "model_id": task.model_id,
            "weights_sha256": task.weights_sha256,
            "prompt": task.prompt,
            "params": serde_json::from_str::<serde_json::Value>(&task.params).unwrap_or_default(),
            "price": task.price.to_string(),
            "fulfilled_at": task.fulfilled_at,
        });
        // A metered answer: what it cost, and its tokens recounted with the model's
        // tokenizer when the GGUF is in the models dir ($FLOWNET_MODELS).
        if let Some(units) = task.units {
            metadata["units"] = serde_json::json!(units);
            metadata["cost"] = serde_json::json!(
                task.price
                    .checked_sub(task.refunded)
                    .unwrap_or_default()
                    .to_string()
            );
            metadata["refunded"] = serde_json::json!(task.refunded.to_string());
            if let Ok(answer) = flownet_core::Generation::from_bytes(&bytes) {
                let (t, dir) = (task.clone(), flownet_infer::default_models_dir());
                let check = blocking(py, move || Ok(flownet_node::check_units(&t, &answer, &dir)))?;
                if let Some(w) = check.warning(task.node) {
                    pyo3::PyErr::warn(
                        py,
                        &py.get_type::<pyo3::exceptions::PyUserWarning>(),
                        &std::ffi::CString::new(w).unwrap_or_default(),
                        1,
                    )?;
                }
                metadata["units_check"] = check.to_json();
            }
        }
        Output::new(
            py,
            &bytes,
            output.mime,
            output.sha256.to_hex(),
            output.uri,
            &metadata,
        )
    }

    /// The answer of a language model as its node writes it: an iterator of text
    /// pieces (the GIL is released while waiting for each). What a node streams is a
    /// preview: `wait()` afterwards returns the delivered answer, checked against the
    /// ledger, which is what counts. Ends when the stream does, or after `timeout`
    /// seconds; a task whose node streams nothing yields nothing.
    #[pyo3(signature = (timeout = 900.0))]
    fn stream(&self, py: Python<'_>, timeout: f64) -> PyResult<TokenStream> {
        let limit = Duration::try_from_secs_f64(timeout.max(0.0))
            .unwrap_or(Duration::from_secs(86_400))
            .min(Duration::from_secs(86_400));
        let (ledger, id, poll, policy) = (self.ledger.clone(), self.id, self.poll, self.fetch);
        let rx = block_on(py, async move {
            let task = ledger
                .task(id)
                .await?
                .ok_or_else(|| Error::NotFound(format!("task {id}")))?;
            let node = ledger
                .node(task.node)
                .await?
                .ok_or_else(|| Error::NotFound(format!("node {}", task.node)))?;
            let rx: FlowResult<_> = Ok(flownet_node::follow::stream_url(&node.endpoint, id).map(
                |url| {
                    flownet_node::follow::follow(
                        ledger.clone(),
                        flownet_node::follow::stream_agent(policy, limit),
                        id,
                        url,
                        Instant::now() + limit,
                        poll,
                    )
                },
            ));
            rx
        })?;
        Ok(TokenStream {
            rx: std::sync::Mutex::new(rx),
        })
    }

    fn __repr__(&self) -> String {
        format!("Task(id={})", self.id)
    }
}

/// The text pieces of a language model's answer as they are written (see
/// `Task.stream`).
#[pyclass(module = "flownet", frozen)]
#[derive(Debug)]
pub struct TokenStream {
    rx: std::sync::Mutex<Option<tokio::sync::mpsc::Receiver<String>>>,
}

#[pymethods]
impl TokenStream {
    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__(&self, py: Python<'_>) -> PyResult<Option<String>> {
        let rx = self.rx.lock().unwrap_or_else(|e| e.into_inner()).take();
        let Some(mut rx) = rx else {
            return Ok(None);
        };
        let (next, rx) = block_on(py, async move {
            let next = rx.recv().await;
            let done: FlowResult<_> = Ok((next, rx));
            done
        })?;
        if next.is_some() {
            *self.rx.lock().unwrap_or_else(|e| e.into_inner()) = Some(rx);
        }
        Ok(next)
    }
}

impl Task {
    fn fetch(&self, py: Python<'_>) -> PyResult<flownet_core::Task> {
        let ledger = self.ledger.clone();
        let id = self.id;
        block_on(py, async move {
            let task: FlowResult<_> = Ok(ledger
                .task(id)
                .await?
                .ok_or_else(|| Error::NotFound(format!("task {id}")))?);
            task
        })
    }
}

/// An output: its bytes, MIME type, SHA-256 (checked against the ledger), where it was
/// published, and what it is a record of.
#[pyclass(module = "flownet", frozen)]
#[derive(Debug)]
pub struct Output {
    /// The output's bytes.
    #[pyo3(get)]
    bytes: Py<PyBytes>,
    #[pyo3(get)]
    mime: String,
    /// SHA-256 of the bytes (hex).
    #[pyo3(get)]
    sha256: String,
    /// Where the node publishes the bytes (empty for a local run).
    #[pyo3(get)]
    uri: String,
    /// The task's facts (task, nft, node, model_id, weights_sha256, prompt, params,
    /// price…) or, for a local run, what the engine reported.
    #[pyo3(get)]
    metadata: Py<PyAny>,
}

impl Output {
    pub(crate) fn new(
        py: Python<'_>,
        bytes: &[u8],
        mime: String,
        sha256: String,
        uri: String,
        metadata: &serde_json::Value,
    ) -> PyResult<Self> {
        Ok(Self {
            bytes: PyBytes::new(py, bytes).unbind(),
            mime,
            sha256,
            uri,
            metadata: json_to_py(py, metadata)?,
        })
    }
}

#[pymethods]
impl Output {
    /// The output's IPFS CID (a raw block whose multihash is its SHA-256), or None when
    /// it is over one block (1 MiB).
    #[getter]
    fn cid(&self, py: Python<'_>) -> Option<String> {
        let bytes = self.bytes.bind(py).as_bytes();
        flownet_core::cid::cid_of(&flownet_core::crypto::sha256(bytes), bytes.len() as u64)
    }

    /// Writes the bytes to `path` and returns the path.
    fn save(&self, py: Python<'_>, path: PathBuf) -> PyResult<PathBuf> {
        let bytes = self.bytes.bind(py).as_bytes().to_vec();
        blocking(py, move || {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir).map_err(|e| {
                    Error::InvalidInput(format!("cannot create {}: {e}", dir.display()))
                })?;
            }
            std::fs::write(&path, &bytes).map_err(|e| {
                Error::InvalidInput(format!("cannot write {}: {e}", path.display()))
            })?;
            Ok(path)
        })
    }

    /// The bytes as UTF-8 text.
    fn text(&self, py: Python<'_>) -> PyResult<String> {
        let bytes = self.bytes.bind(py).as_bytes();
        String::from_utf8(bytes.to_vec()).map_err(|_| {
            FlowError::Core(Error::InvalidInput(format!(
                "the output is {}, not UTF-8 text",
                self.mime
            )))
            .into()
        })
    }

    /// The bytes parsed as JSON.
    fn json(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let value: serde_json::Value = serde_json::from_slice(self.bytes.bind(py).as_bytes())
            .map_err(|e| {
                FlowError::Core(Error::InvalidInput(format!(
                    "the output ({}) is not JSON: {e}",
                    self.mime
                )))
            })?;
        json_to_py(py, &value)
    }

    fn __bytes__(&self, py: Python<'_>) -> Py<PyBytes> {
        self.bytes.clone_ref(py)
    }

    fn __len__(&self, py: Python<'_>) -> usize {
        self.bytes.bind(py).as_bytes().len()
    }

    fn __repr__(&self, py: Python<'_>) -> String {
        format!(
            "Output(mime={:?}, size={}, sha256={})",
            self.mime,
            self.bytes.bind(py).as_bytes().len(),
            self.sha256
        )
    }
}
