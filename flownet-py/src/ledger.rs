//! `flownet.Ledger`, `flownet.Account` and `flownet.SignedEnvelope`.

use std::{
    path::{Path, PathBuf},
    sync::Arc,
};

use flownet_chain::{EmbeddedLedger, flow::FlowLedger};
use flownet_cli::{
    config::Config,
    context::{Ctx, Network},
};
use flownet_core::{
    Action, Address, Envelope, Error, LedgerConfig, LedgerId, Receipt, TaskQuery, TaskStatus,
    Wallet,
};
use pyo3::{prelude::*, types::PyType};

use crate::{
    block_on, blocking,
    convert::{address_arg, amount_arg, amount_to_py, json_to_py, py_to_json},
    errors::{FlowError, FlowResult},
};

/// Which ledger a [`Ledger`] talks to.
#[derive(Debug, Clone)]
enum Backend {
    /// One SQLite file that several processes share.
    Embedded(Arc<EmbeddedLedger>),
    /// FlowNet's contracts on a Flow network, through the Access API. The one
    /// client signs for every account loaded on it.
    Flow {
        ledger: Arc<FlowLedger>,
        network: Network,
    },
}

/// A FlowNet ledger: the embedded ledger (one SQLite file that several processes,
/// the `flownet` command included, share) or FlowNet's contracts on a Flow network.
#[pyclass(module = "flownet", frozen)]
#[derive(Debug)]
pub struct Ledger {
    backend: Backend,
    id: LedgerId,
    /// Where keys (and the blobs of accounts) are kept by default.
    data_dir: PathBuf,
}

impl Ledger {
    pub(crate) fn port(&self) -> Arc<dyn flownet_core::Ledger> {
        self.backend.port()
    }

    /// The ledger's id: accounts, clients and nodes check that they share one.
    pub(crate) fn id(&self) -> LedgerId {
        self.id
    }

    /// The network, as `--network` names it.
    pub(crate) fn network(&self) -> Network {
        self.backend.network()
    }

    /// Where keys and blobs go by default, as with the `flownet` command: the
    /// directory of the ledger file (`<data dir>/ledger.db`), or on Flow the data dir
    /// given to `open` (else `$FLOWNET_HOME`, else `~/.flownet`).
    pub(crate) fn data_dir(&self) -> PathBuf {
        self.data_dir.clone()
    }

    fn embedded(inner: EmbeddedLedger, data_dir: Option<PathBuf>) -> Self {
        let data_dir = data_dir.unwrap_or_else(|| {
            inner
                .path()
                .parent()
                .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
        });
        Self {
            id: inner.id(),
            backend: Backend::Embedded(Arc::new(inner)),
            data_dir,
        }
    }

    /// Connects to FlowNet on the Flow `network`, configured from the environment
    /// exactly as the `flownet` command is (`FLOWNET_FLOW_ACCESS`,
    /// `FLOWNET_FLOW_CONTRACTS`, `FLOWNET_FLOW_SPONSOR` or `FLOWNET_FLOW_SPONSOR_URL`).
    async fn connect_flow(network: Network, data_dir: PathBuf) -> FlowResult<Self> {
        let ledger = flownet_cli::flow::connect(network).await?;
        // Reading the ledger's info also checks that FlowNet is deployed there.
        let info = flownet_core::Ledger::info(&*ledger).await.map_err(|e| {
            FlowError::Other(anyhow::Error::new(e).context(format!(
                "reading FlowNet's contracts on Flow {} (deployed with `flownet --network {} flow deploy`?)",
                network.as_str(),
                network.as_str()
            )))
        })?;
        Ok(Self {
            id: info.id,
            backend: Backend::Flow { ledger, network },
            data_dir,
        })
    }
}

impl Backend {
    fn network(&self) -> Network {
        match self {
            Self::Embedded(_) => Network::Embedded,
            Self::Flow { network, .. } => *network,
        }
    }

    fn port(&self) -> Arc<dyn flownet_core::Ledger> {
        match self {
            Self::Embedded(l) => l.clone(),
            Self::Flow { ledger, .. } => ledger.clone(),
        }
    }
}

/// The default data dir, as the `flownet` command finds it: `$FLOWNET_HOME`, else
/// `~/.flownet`.
fn default_home() -> PathBuf {
    flownet_cli::context::default_data_dir()
}

/// A path argument (str or os.PathLike) with `~` expanded, as people write data dirs.
pub(crate) fn path_arg(obj: &Bound<'_, PyAny>) -> PyResult<PathBuf> {
    let os_path = obj.py().import("os")?.getattr("path")?;
    let fspath = obj.py().import("os")?.call_method1("fspath", (obj,))?;
    os_path.call_method1("expanduser", (fspath,))?.extract()
}

/// Key names become file names: keep them to letters, digits, `-`, `_` and `.`.
pub(crate) fn check_key_name(name: &str) -> FlowResult<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidInput(format!(
            "key name {name:?}: use 1 to 64 letters, digits, '-', '_' or '.', not starting with '.'"
        ))
        .into())
    }
}

/// What `Ledger.open` was asked for.
enum Target {
    File(PathBuf),
    Flow(Network),
}

fn resolve_target(path_or_network: &Bound<'_, PyAny>) -> PyResult<Target> {
    let path = path_arg(path_or_network)?;
    let text = path.to_string_lossy();
    // A bare network name; a file or directory of that name is written `./emulator`.
    match text.parse::<Network>() {
        Ok(Network::Embedded) => return Ok(Target::File(default_home().join("ledger.db"))),
        Ok(network) => return Ok(Target::Flow(network)),
        Err(_) => {}
    }
    Ok(Target::File(if path.is_dir() {
        path.join("ledger.db")
    } else {
        path
    }))
}

#[pymethods]
impl Ledger {
    /// Opens a ledger: a path to a `ledger.db` file (or the data dir holding it),
    /// "embedded" for the default data dir (`$FLOWNET_HOME`, else `~/.flownet`), or
    /// "emulator", "testnet" or "mainnet" for FlowNet's contracts on that Flow network,
    /// configured from the environment as the `flownet` command is
    /// (`FLOWNET_FLOW_ACCESS`, `FLOWNET_FLOW_CONTRACTS`, `FLOWNET_FLOW_SPONSOR` or
    /// `FLOWNET_FLOW_SPONSOR_URL`). With `create=True` a missing embedded ledger is
    /// made with the default parameters. `data_dir` is where accounts' keys and blobs
    /// are kept (default: the ledger file's directory; on Flow `$FLOWNET_HOME`, else
    /// `~/.flownet`).
    #[staticmethod]
    #[pyo3(signature = (path_or_network, *, create = false, data_dir = None))]
    fn open(
        py: Python<'_>,
        path_or_network: &Bound<'_, PyAny>,
        create: bool,
        data_dir: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        let data_dir = data_dir.map(path_arg).transpose()?;
        match resolve_target(path_or_network)? {
            Target::Flow(network) => {
                if create {
                    return Err(FlowError::Core(Error::InvalidInput(format!(
                        "on Flow the ledger is FlowNet's contracts: deploy them with \
                         `flownet --network {} flow deploy` instead of create=True",
                        network.as_str()
                    )))
                    .into());
                }
                let data_dir = data_dir.unwrap_or_else(default_home);
                block_on(py, Self::connect_flow(network, data_dir))
            }
            Target::File(path) => blocking(py, move || {
                if !create && !path.exists() {
                    return Err(Error::NotFound(format!(
                        "no ledger at {} (pass create=True, or run `flownet init`)",
                        path.display()
                    ))
                    .into());
                }
                let inner = EmbeddedLedger::open_or_create(&path, LedgerConfig::default())?;
                Ok(Self::embedded(inner, data_dir))
            }),
        }
    }

    /// Creates a new ledger file with the given parameters (windows in seconds, the
    /// faucet's one-time welcome amount; 0 disables the faucet).
    #[staticmethod]
    #[pyo3(signature = (path, *, claim_window_s = 300, fulfil_window_s = 600, bounty_window_s = 604800, faucet = None))]
    fn create(
        py: Python<'_>,
        path: &Bound<'_, PyAny>,
        claim_window_s: u64,
        fulfil_window_s: u64,
        bounty_window_s: u64,
        faucet: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        let config = LedgerConfig {
            claim_window_s,
            fulfil_window_s,
            bounty_window_s,
            faucet_amount: match faucet {
                Some(f) => amount_arg(f)?,
                None => LedgerConfig::default().faucet_amount,
            },
        };
        let path = path_arg(path)?;
        let path = if path.is_dir() {
            path.join("ledger.db")
        } else {
            path
        };
        blocking(py, move || {
            if path.exists() {
                return Err(Error::AlreadyExists(format!("a ledger at {}", path.display())).into());
            }
            Ok(Self::embedded(EmbeddedLedger::create(&path, config)?, None))
        })
    }

    /// The ledger file, or None on Flow.
    #[getter]
    fn path(&self) -> Option<PathBuf> {
        match &self.backend {
            Backend::Embedded(l) => Some(l.path().to_path_buf()),
            Backend::Flow { .. } => None,
        }
    }

    /// The ledger's id (hex): envelopes signed for one ledger are void on any other.
    #[getter(id)]
    fn id_hex(&self) -> String {
        self.id.to_hex()
    }

    /// "embedded", or the Flow network: "emulator", "testnet" or "mainnet".
    #[getter(network)]
    fn network_name(&self) -> &'static str {
        self.network().as_str()
    }

    /// The Access API (`http://host:port`) of a Flow ledger, or None.
    #[getter]
    fn access_api(&self) -> Option<String> {
        match &self.backend {
            Backend::Embedded(_) => None,
            Backend::Flow { ledger, .. } => Some(ledger.network().access_api.clone()),
        }
    }

    /// Where keys and blobs are kept by default (see `open`).
    #[getter(data_dir)]
    fn data_dir_py(&self) -> PathBuf {
        self.data_dir()
    }

    /// The ledger's id, parameters, clock, height and totals.
    fn info(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let ledger = self.port();
        let info = block_on(py, async move { Ok(ledger.info().await?) })?;
        json_to_py(py, &to_json(&info)?)
    }

    /// An account's record, or None.
    fn account(&self, py: Python<'_>, address: &str) -> PyResult<Option<Py<PyAny>>> {
        let address = address_arg(address)?;
        let ledger = self.port();
        let account = block_on(py, async move { Ok(ledger.account(address).await?) })?;
        account.map(|a| json_to_py(py, &to_json(&a)?)).transpose()
    }

    /// An account's balance in FLOWNET.
    fn balance(&self, py: Python<'_>, address: &str) -> PyResult<Py<PyAny>> {
        let address = address_arg(address)?;
        let ledger = self.port();
        let balance = block_on(py, async move { account_balance(&*ledger, address).await })?;
        amount_to_py(py, balance)
    }

    /// Every active and paused node, best first (score, then lowest price), or only
    /// those offering `model`. Each is a dict as `flownet --json node list` prints it.
    #[pyo3(signature = (model = None))]
    fn nodes(&self, py: Python<'_>, model: Option<String>) -> PyResult<Py<PyAny>> {
        let ledger = self.port();
        let nodes = block_on(
            py,
            async move { list_nodes(&*ledger, model.as_deref()).await },
        )?;
        json_to_py(py, &nodes)
    }

    /// A node's record (as `flownet --json node status` shows it, without task counts),
    /// or None.
    fn node(&self, py: Python<'_>, owner: &str) -> PyResult<Option<Py<PyAny>>> {
        let owner = address_arg(owner)?;
        let ledger = self.port();
        let node = block_on(py, async move { Ok(ledger.node(owner).await?) })?;
        node.map(|n| json_to_py(py, &flownet_cli::node_json(&n)))
            .transpose()
    }

    /// A task's record with its ratings, as `flownet --json task show` prints it.
    fn task(&self, py: Python<'_>, id: u64) -> PyResult<Py<PyAny>> {
        let ledger = self.port();
        let record = block_on(py, async move { task_record(&*ledger, id).await })?;
        json_to_py(py, &record)
    }

    /// Tasks in id order, filtered by node, requester and status.
    #[pyo3(signature = (*, node = None, requester = None, status = None))]
    fn tasks(
        &self,
        py: Python<'_>,
        node: Option<&str>,
        requester: Option<&str>,
        status: Option<&str>,
    ) -> PyResult<Py<PyAny>> {
        let query = TaskQuery {
            node: node.map(address_arg).transpose()?,
            requester: requester.map(address_arg).transpose()?,
            status: status
                .map(|s| s.parse::<TaskStatus>().map_err(FlowError::Core))
                .transpose()?,
            ..TaskQuery::default()
        };
        let ledger = self.port();
        let tasks = block_on(py, async move { Ok(ledger.tasks(query).await?) })?;
        json_to_py(py, &to_json(&tasks)?)
    }

    /// The output NFTs an account owns.
    fn nfts(&self, py: Python<'_>, owner: &str) -> PyResult<Py<PyAny>> {
        let owner = address_arg(owner)?;
        let ledger = self.port();
        let nfts = block_on(py, async move { Ok(ledger.nfts(owner).await?) })?;
        json_to_py(py, &to_json(&nfts)?)
    }

    /// Sends an envelope signed elsewhere (see `Account.sign`) and returns its receipt;
    /// a rule's refusal raises the matching exception.
    fn send(&self, py: Python<'_>, envelope: &SignedEnvelope) -> PyResult<Py<PyAny>> {
        let ledger = self.port();
        let signed = envelope.inner.clone();
        let receipt = block_on(py, async move { Ok(ledger.send(signed).await?) })?;
        json_to_py(py, &receipt_json(&receipt)?)
    }

    fn __repr__(&self) -> String {
        match &self.backend {
            Backend::Embedded(l) => format!(
                "Ledger(path={:?}, id={})",
                l.path().display().to_string(),
                self.id
            ),
            Backend::Flow { ledger, network } => format!(
                "Ledger(network={:?}, access_api={:?}, contracts={}, id={})",
                network.as_str(),
                ledger.network().access_api,
                ledger.marketplace(),
                self.id
            ),
        }
    }
}

/// The blob store of `data_dir`, with the IPFS node `FLOWNET_IPFS_API` names (as the
/// `flownet` command reads it) attached.
pub(crate) fn blob_store(data_dir: &Path) -> FlowResult<flownet_node::FsBlobStore> {
    let ipfs = match std::env::var("FLOWNET_IPFS_API") {
        Ok(api) if !api.is_empty() => Some(flownet_node::Ipfs::new(&api)?),
        _ => None,
    };
    Ok(flownet_node::FsBlobStore::open(data_dir.join("blobs"))?.with_ipfs(ipfs))
}

/// `value` as JSON, with a `cid` beside each blob of one block (see
/// `flownet_core::cid::add_cids`).
pub(crate) fn to_json<T: serde::Serialize>(value: &T) -> FlowResult<serde_json::Value> {
    let mut json = serde_json::to_value(value).map_err(|e| FlowError::Other(e.into()))?;
    flownet_core::cid::add_cids(&mut json);
    Ok(json)
}

pub(crate) fn receipt_json(receipt: &Receipt) -> FlowResult<serde_json::Value> {
    to_json(receipt)
}

pub(crate) async fn account_balance(
    ledger: &dyn flownet_core::Ledger,
    address: Address,
) -> FlowResult<flownet_core::Amount> {
    Ok(ledger
        .account(address)
        .await?
        .ok_or_else(|| Error::NotFound(format!("account {address}")))?
        .balance)
}

pub(crate) async fn list_nodes(
    ledger: &dyn flownet_core::Ledger,
    model: Option<&str>,
) -> FlowResult<serde_json::Value> {
    let nodes: Vec<_> = ledger
        .nodes()
        .await?
        .into_iter()
        .filter(|n| model.is_none_or(|m| n.offer(m).is_some()))
        .map(|n| flownet_cli::node_json(&n))
        .collect();
    Ok(serde_json::Value::Array(nodes))
}

pub(crate) async fn task_record(
    ledger: &dyn flownet_core::Ledger,
    id: u64,
) -> FlowResult<serde_json::Value> {
    let task = ledger
        .task(id)
        .await?
        .ok_or_else(|| Error::NotFound(format!("task {id}")))?;
    let ratings = ledger.ratings(id).await?;
    let mut json = to_json(&task)?;
    json["ratings"] = to_json(&ratings)?;
    Ok(json)
}

/// An account: a key in a data dir (`keys/<name>.json`, the same files the `flownet`
/// command uses) and the ledger it signs for.
#[pyclass(module = "flownet", frozen)]
#[derive(Debug)]
pub struct Account {
    pub(crate) wallet: Arc<Wallet<dyn flownet_core::Ledger>>,
    pub(crate) ledger: Py<Ledger>,
    name: String,
    pub(crate) data_dir: PathBuf,
}

impl Account {
    pub(crate) fn ctx(data_dir: PathBuf, name: &str, network: Network) -> Ctx {
        Ctx {
            data_dir,
            key_name: name.to_owned(),
            models_dir: flownet_infer::default_models_dir(),
            json: false,
            network,
            ledger_file: None,
            allow_private_endpoints: std::env::var_os("FLOWNET_ALLOW_PRIVATE_ENDPOINTS")
                .is_some_and(|v| !v.is_empty() && v != "0" && v != "false"),
            // As the `flownet` command reads it; `blob_store` reports a bad value.
            ipfs: std::env::var("FLOWNET_IPFS_API")
                .ok()
                .and_then(|api| flownet_node::Ipfs::new(&api).ok()),
        }
    }

    /// A wallet for the key `name` of `data_dir` on `ledger`, which must exist (and
    /// on Flow have an account on that network).
    fn load_wallet(
        backend: &Backend,
        data_dir: PathBuf,
        name: &str,
    ) -> FlowResult<Wallet<dyn flownet_core::Ledger>> {
        let ctx = Self::ctx(data_dir, name, backend.network());
        if !ctx.key_path(name).exists() {
            return Err(Error::NotFound(format!(
                "no key named {name:?} in {} (make it with Account.create or `flownet init --key {name}`)",
                ctx.data_dir.display()
            ))
            .into());
        }
        match backend {
            Backend::Embedded(l) => Ok(Wallet::new(l.clone(), ctx.load_key()?)),
            Backend::Flow { ledger: flow, .. } => {
                if let Err(e) = ctx.flow_address() {
                    return Err(Error::NotFound(format!("{e:#}")).into());
                }
                Ok(ctx.flow_wallet(flow.clone())?)
            }
        }
    }

    /// The key the data dir's config names (`flownet init` writes it), else "default".
    fn default_name(data_dir: &Path) -> FlowResult<String> {
        Ok(Config::load(data_dir)?.map_or_else(|| "default".into(), |c| c.key))
    }

    pub(crate) fn blobs(&self) -> FlowResult<flownet_node::FsBlobStore> {
        blob_store(&self.data_dir)
    }
}

#[pymethods]
impl Account {
    /// Makes the key `name` in the data dir (unless it exists), registers it as an
    /// account on the ledger and, with `faucet=True`, takes the faucet's welcome amount
    /// where the ledger has one. An account that exists already raises AlreadyExists.
    /// The data dir defaults to the ledger's (see `Ledger.open`). On Flow the
    /// ledger's sponsor creates the account, and its address is recorded in the key
    /// file, as `flownet --network ... account create` does.
    #[staticmethod]
    #[pyo3(signature = (ledger, name = None, *, data_dir = None, faucet = true))]
    fn create(
        py: Python<'_>,
        ledger: Py<Ledger>,
        name: Option<String>,
        data_dir: Option<&Bound<'_, PyAny>>,
        faucet: bool,
    ) -> PyResult<Self> {
        let data_dir = match data_dir {
            Some(d) => path_arg(d)?,
            None => ledger.get().data_dir(),
        };
        let backend = ledger.get().backend.clone();
        let (wallet, name) = block_on(py, {
            let data_dir = data_dir.clone();
            async move {
                let name = match name {
                    Some(n) => n,
                    None => Self::default_name(&data_dir)?,
                };
                check_key_name(&name)?;
                let ctx = Self::ctx(data_dir, &name, backend.network());
                let wallet = match &backend {
                    Backend::Embedded(l) => {
                        let (key, _) = ctx.load_or_create_key()?;
                        let wallet = Wallet::new(l.clone() as Arc<dyn flownet_core::Ledger>, key);
                        wallet.create_account().await?;
                        wallet
                    }
                    Backend::Flow { ledger: flow, .. } => {
                        ctx.create_flow_account(flow).await?;
                        ctx.flow_wallet(flow.clone())?
                    }
                };
                if faucet {
                    wallet.ensure_funded().await?;
                }
                Ok((wallet, name))
            }
        })?;
        Ok(Self {
            wallet: Arc::new(wallet),
            ledger,
            name,
            data_dir,
        })
    }

    /// Loads the key `name` (default: the one the data dir's config names, else
    /// "default") from the data dir (default: the ledger file's directory).
    #[staticmethod]
    #[pyo3(signature = (ledger, name = None, *, data_dir = None))]
    fn load(
        py: Python<'_>,
        ledger: Py<Ledger>,
        name: Option<String>,
        data_dir: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        let data_dir = match data_dir {
            Some(d) => path_arg(d)?,
            None => ledger.get().data_dir(),
        };
        let backend = ledger.get().backend.clone();
        let (wallet, name) = blocking(py, {
            let data_dir = data_dir.clone();
            move || {
                let name = match name {
                    Some(n) => n,
                    None => Self::default_name(&data_dir)?,
                };
                check_key_name(&name)?;
                Ok((Self::load_wallet(&backend, data_dir, &name)?, name))
            }
        })?;
        Ok(Self {
            wallet: Arc::new(wallet),
            ledger,
            name,
            data_dir,
        })
    }

    #[getter]
    fn address(&self) -> String {
        self.wallet.address().to_string()
    }

    #[getter]
    fn name(&self) -> &str {
        &self.name
    }

    /// The data dir that holds the key (and the blobs this account stores).
    #[getter]
    fn data_dir(&self) -> PathBuf {
        self.data_dir.clone()
    }

    /// The key file.
    #[getter]
    fn key_path(&self) -> PathBuf {
        Self::ctx(
            self.data_dir.clone(),
            &self.name,
            self.ledger.get().network(),
        )
        .key_path(&self.name)
    }

    #[getter]
    fn ledger(&self, py: Python<'_>) -> Py<Ledger> {
        self.ledger.clone_ref(py)
    }

    /// This account's balance in FLOWNET.
    fn balance(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let wallet = self.wallet.clone();
        let balance = block_on(py, async move {
            account_balance(wallet.ledger().as_ref(), wallet.address()).await
        })?;
        amount_to_py(py, balance)
    }

    /// Takes the dev faucet's one-time welcome amount and returns it.
    fn faucet(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let wallet = self.wallet.clone();
        let receipt = block_on(py, async move { Ok(wallet.faucet().await?) })?;
        amount_to_py(py, receipt.outcome.credited.unwrap_or_default())
    }

    /// Sends `amount` FLOWNET (str, int or Decimal) to `to`; returns the receipt.
    fn transfer(&self, py: Python<'_>, to: &str, amount: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        let to = address_arg(to)?;
        let amount = amount_arg(amount)?;
        let wallet = self.wallet.clone();
        let receipt = block_on(py, async move { Ok(wallet.transfer(to, amount).await?) })?;
        json_to_py(py, &receipt_json(&receipt)?)
    }

    /// Signs an action without sending it. `action` is a dict such as
    /// `{"type": "transfer", "to": "0x…", "amount": 150000000}` (amounts in units of
    /// 10⁻⁸); `sequence` defaults to the account's next one.
    #[pyo3(signature = (action, *, sequence = None))]
    fn sign(
        &self,
        py: Python<'_>,
        action: &Bound<'_, PyAny>,
        sequence: Option<u64>,
    ) -> PyResult<SignedEnvelope> {
        let action = parse_action(action)?;
        let wallet = self.wallet.clone();
        let envelope = block_on(py, async move {
            let ledger = wallet.ledger();
            let sequence = match sequence {
                Some(s) => s,
                None => ledger
                    .account(wallet.address())
                    .await?
                    .map_or(0, |a| a.sequence),
            };
            let id = ledger.info().await?.id;
            Ok(Envelope {
                ledger: id,
                signer: wallet.address(),
                sequence,
                action,
            }
            .sign(wallet.key()))
        })?;
        Ok(SignedEnvelope { inner: envelope })
    }

    /// Signs and sends an action (see `sign`) and returns the receipt.
    fn send(&self, py: Python<'_>, action: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        let action = parse_action(action)?;
        let wallet = self.wallet.clone();
        let receipt = block_on(py, async move { Ok(wallet.send(action).await?) })?;
        json_to_py(py, &receipt_json(&receipt)?)
    }

    fn __repr__(&self) -> String {
        format!(
            "Account(name={:?}, address={})",
            self.name,
            self.wallet.address()
        )
    }
}

fn parse_action(action: &Bound<'_, PyAny>) -> PyResult<Action> {
    let text = py_to_json(action)?;
    serde_json::from_str(&text).map_err(|e| {
        FlowError::Core(Error::InvalidInput(format!("not a FlowNet action: {e}"))).into()
    })
}

/// An envelope and its signature, ready for `Ledger.send`. Its JSON form is what travels
/// between machines.
#[pyclass(module = "flownet", frozen)]
#[derive(Debug)]
pub struct SignedEnvelope {
    pub(crate) inner: flownet_core::SignedEnvelope,
}

#[pymethods]
impl SignedEnvelope {
    /// The envelope's JSON.
    fn to_json(&self) -> PyResult<String> {
        serde_json::to_string(&self.inner).map_err(|e| PyErr::from(FlowError::Other(e.into())))
    }

    /// Reads an envelope's JSON. Nothing is checked until a ledger receives it.
    #[classmethod]
    fn from_json(_cls: &Bound<'_, PyType>, text: &str) -> PyResult<Self> {
        let inner = serde_json::from_str(text).map_err(|e| {
            FlowError::Core(Error::InvalidInput(format!("not a signed envelope: {e}")))
        })?;
        Ok(Self { inner })
    }

    /// The envelope's hash (hex).
    #[getter]
    fn hash(&self) -> String {
        self.inner.hash().to_hex()
    }

    #[getter]
    fn signer(&self) -> String {
        self.inner.envelope.signer.to_string()
    }

    #[getter]
    fn sequence(&self) -> u64 {
        self.inner.envelope.sequence
    }

    fn __repr__(&self) -> String {
        format!(
            "SignedEnvelope(signer={}, sequence={}, action={:?})",
            self.inner.envelope.signer,
            self.inner.envelope.sequence,
            self.inner.envelope.action.name()
        )
    }
}
