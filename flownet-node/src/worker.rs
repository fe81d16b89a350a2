//! The node process around the core's `NodeWorker`: registration, the loop that
//! ticks it, and a whole node (output server and worker) started or run in a few lines.

use std::{future::Future, net::SocketAddr, sync::Arc, time::Duration};

use flownet_core::{BlobStore, Engine, Ledger, Node, NodeEvent, NodeWorker, OfferedModel, Wallet};
use tokio::{sync::watch, task::JoinHandle};

use crate::{
    Error, Result,
    blobs::FsBlobStore,
    fetch::{FetchPolicy, HttpFetcher},
    server::{node_info, spawn_node_server},
    streams::StreamHub,
};

/// The worker as the frontends hold it: every port behind a trait object.
pub type Worker = NodeWorker<dyn Ledger, dyn Engine, dyn BlobStore>;

/// Logs a node event for the person watching the node's terminal.
pub fn log_event(event: &NodeEvent) {
    match event {
        NodeEvent::Claimed { task, model } => tracing::info!("claimed task {task} ({model})"),
        NodeEvent::Resumed { task, model } => {
            tracing::info!("resuming claimed task {task} ({model})")
        }
        NodeEvent::Running { task, model } => tracing::info!("running {model} for task {task}"),
        NodeEvent::Delivered {
            task,
            sha256,
            size,
            inference_ms,
            paid,
        } => {
            tracing::info!(
                "delivered task {task}: {size} bytes, sha256 {sha256}, inference {inference_ms} ms, paid {paid} FLOWNET"
            )
        }
        NodeEvent::Failed {
            task,
            error,
            will_retry,
        } => {
            tracing::warn!(
                "task {task} failed: {error}{}",
                if *will_retry { " (will retry)" } else { "" }
            )
        }
        NodeEvent::Skipped { task, reason } => tracing::debug!("skipping task {task}: {reason}"),
        NodeEvent::Declined { task, reason } => {
            tracing::warn!("declined task {task} (its requester is refunded): {reason}")
        }
    }
}

/// Ticks the worker every `interval` until `stop` turns true, reporting each node event
/// to `on_event` (`log_event`, or more). Ledger errors are logged and retried on the
/// next tick rather than ending the node.
pub async fn run_worker(
    worker: Arc<Worker>,
    interval: Duration,
    mut stop: watch::Receiver<bool>,
    on_event: impl Fn(&NodeEvent) + Send + Sync,
) {
    let ledger = worker.wallet().ledger().clone();
    loop {
        if *stop.borrow() {
            break;
        }
        // Subscribed before the tick reads the ledger: a task submitted meanwhile
        // through this process (the gateway's `--node`) wakes the next tick at once.
        let changed = ledger.changed();
        if let Err(e) = worker.tick(&on_event).await {
            tracing::warn!("node tick failed: {e}");
        }
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = changed => {}
            _ = stop.changed() => {}
        }
    }
}

/// How a node process serves.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// Address for the output server [default: the host:port of the registered endpoint].
    pub listen: Option<SocketAddr>,
    /// How often to look for tasks.
    pub interval: Duration,
    /// Process the tasks waiting now, then return.
    pub once: bool,
    /// Where task inputs may be fetched from [default: by the registered endpoint,
    /// [`FetchPolicy::for_endpoint`]].
    pub fetch: Option<FetchPolicy>,
}

impl Default for ServeOptions {
    /// The endpoint's address, a look for tasks every 250 ms, until stopped.
    fn default() -> Self {
        Self {
            listen: None,
            interval: Duration::from_millis(250),
            once: false,
            fetch: None,
        }
    }
}

/// Makes sure the wallet's node is registered with `offers` (and `name` and `endpoint`
/// where given, else the registered ones), registering or updating it only when
/// something differs. Returns the node as the ledger has it.
pub async fn ensure_registered(
    wallet: &Wallet<dyn Ledger>,
    name: Option<&str>,
    endpoint: Option<&str>,
    offers: Vec<OfferedModel>,
) -> Result<Node> {
    let existing = wallet.ledger().node(wallet.address()).await?;
    let name = match (name, &existing) {
        (Some(n), _) => n.to_owned(),
        (None, Some(node)) => node.name.clone(),
        (None, None) => return Err(Error::NoName(wallet.address())),
    };
    let endpoint = match (endpoint, &existing) {
        (Some(e), _) => e.to_owned(),
        (None, Some(node)) => node.endpoint.clone(),
        (None, None) => DEFAULT_ENDPOINT.to_owned(),
    };
    if let Some(node) = existing
        && node.name == name
        && node.endpoint == endpoint
        && node.models == offers
    {
        return Ok(node);
    }
    wallet.register_node(&name, &endpoint, offers).await?;
    wallet
        .ledger()
        .node(wallet.address())
        .await?
        .ok_or(Error::Vanished)
}

/// The endpoint a node registers when none is given.
pub const DEFAULT_ENDPOINT: &str = "http://127.0.0.1:7070";

/// Warns about the offers of `node` that `engine` cannot serve (a model it does not
/// run, or other weights than the registered ones).
pub fn check_offers(node: &Node, engine: &dyn Engine) {
    let served = engine.models();
    for offer in &node.models {
        match served.iter().find(|m| m.id == offer.model_id) {
            Some(m) if m.weights_sha256 == offer.weights_sha256 => {}
            Some(m) => tracing::warn!(
                "model {} is registered with weights {} but this node runs {}: re-register to serve it",
                offer.model_id,
                offer.weights_sha256,
                m.weights_sha256
            ),
            None => tracing::warn!("model {} is registered but not served here", offer.model_id),
        }
    }
}

/// The wallet's node as the ledger has it; an error if it has none.
pub async fn registered_node(wallet: &Wallet<dyn Ledger>) -> Result<Node> {
    wallet
        .ledger()
        .node(wallet.address())
        .await?
        .ok_or(Error::NoNode(wallet.address()))
}

/// A node started by [`start_node`]: where its outputs are served, and its tasks (the
/// output server and the worker loop), which end once `stop` turns true.
#[derive(Debug)]
pub struct RunningNode {
    /// The output server's bound address.
    pub addr: SocketAddr,
    /// The output server and the worker loop.
    pub tasks: Vec<JoinHandle<()>>,
}

/// Starts the wallet's registered node in this process: its output server on `listen`
/// (default: the registered endpoint's host:port) and the worker loop around `engine`,
/// ticking every `interval` and reporting each event to `on_event`, until `stop`
/// turns true.
pub async fn start_node(
    wallet: Arc<Wallet<dyn Ledger>>,
    engine: Arc<dyn Engine>,
    blobs: FsBlobStore,
    listen: Option<SocketAddr>,
    interval: Duration,
    stop: watch::Receiver<bool>,
    on_event: impl Fn(&NodeEvent) + Send + Sync + 'static,
) -> Result<RunningNode> {
    let node = registered_node(&wallet).await?;
    check_offers(&node, engine.as_ref());
    let listen = match listen {
        Some(l) => l,
        None => listen_from_endpoint(&node.endpoint)?,
    };
    let streams = StreamHub::new();
    let (addr, server) = spawn_node_server(
        listen,
        blobs.clone(),
        node_info(&node),
        streams.clone(),
        stop.clone(),
    )
    .await?;
    let worker = Arc::new(worker(wallet, engine, blobs, &node, None, streams));
    log_serving(&node, addr);
    let worker_loop = tokio::spawn(run_worker(worker, interval, stop, on_event));
    Ok(RunningNode {
        addr,
        tasks: vec![server, worker_loop],
    })
}

fn worker(
    wallet: Arc<Wallet<dyn Ledger>>,
    engine: Arc<dyn Engine>,
    blobs: FsBlobStore,
    node: &Node,
    fetch: Option<FetchPolicy>,
    streams: Arc<StreamHub>,
) -> Worker {
    let ipfs = blobs.ipfs().cloned();
    let blob_store: Arc<dyn BlobStore> = Arc::new(blobs);
    let policy = fetch.unwrap_or_else(|| FetchPolicy::for_endpoint(&node.endpoint));
    NodeWorker::new(wallet, engine, blob_store, node.endpoint.clone())
        .with_fetcher(Arc::new(HttpFetcher::new(policy).with_ipfs(ipfs)))
        .with_streams(streams)
}

fn log_serving(node: &Node, addr: SocketAddr) {
    tracing::info!(
        "node {} ({}) serving {} on {addr}",
        node.owner,
        node.name,
        node.models
            .iter()
            .map(|m| m.model_id.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    );
}

/// Runs the wallet's registered node until `stop` resolves (or, with `once`, for one
/// pass): the output server on the endpoint's address and the worker loop around
/// `engine`. Warns about offers the engine cannot serve. Returns how many tasks it
/// delivered in `once` mode (0 otherwise); claimed tasks left behind resume on the
/// next start.
pub async fn run_node(
    wallet: Arc<Wallet<dyn Ledger>>,
    engine: Arc<dyn Engine>,
    blobs: FsBlobStore,
    options: &ServeOptions,
    stop: impl Future<Output = ()>,
) -> Result<usize> {
    let node = registered_node(&wallet).await?;
    check_offers(&node, engine.as_ref());
    let (stop_tx, stop_rx) = watch::channel(false);
    let listen = match options.listen {
        Some(l) => l,
        None => listen_from_endpoint(&node.endpoint)?,
    };
    let streams = StreamHub::new();
    let (addr, server) = spawn_node_server(
        listen,
        blobs.clone(),
        node_info(&node),
        streams.clone(),
        stop_rx.clone(),
    )
    .await?;
    let worker = Arc::new(worker(wallet, engine, blobs, &node, options.fetch, streams));
    log_serving(&node, addr);
    if options.once {
        let delivered = worker.tick(&log_event).await;
        let _ = stop_tx.send(true);
        let _ = server.await;
        return Ok(delivered?);
    }
    let loop_handle = tokio::spawn(run_worker(worker, options.interval, stop_rx, log_event));
    stop.await;
    tracing::info!("stopping: claimed tasks resume on the next start");
    let _ = stop_tx.send(true);
    let _ = loop_handle.await;
    let _ = server.await;
    Ok(0)
}

/// The listen address implied by an endpoint URL (`http://host:port[/…]`).
pub fn listen_from_endpoint(endpoint: &str) -> Result<SocketAddr> {
    let rest = endpoint.strip_prefix("http://").ok_or_else(|| {
        Error::Endpoint(format!("endpoint {endpoint} is not http://; pass --listen"))
    })?;
    let hostport = rest.split('/').next().unwrap_or_default();
    let hostport = if hostport.contains(':') {
        hostport.to_owned()
    } else {
        format!("{hostport}:80")
    };
    let hostport = hostport.replace("localhost", "127.0.0.1");
    hostport.parse().map_err(|e| {
        Error::Endpoint(format!(
            "cannot listen on {hostport} from endpoint {endpoint}; pass --listen: {e}"
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_give_listen_addresses() {
        assert_eq!(
            listen_from_endpoint("http://127.0.0.1:7070").unwrap(),
            "127.0.0.1:7070".parse().unwrap()
        );
        assert_eq!(
            listen_from_endpoint("http://localhost:9000/x").unwrap(),
            "127.0.0.1:9000".parse().unwrap()
        );
        assert!(listen_from_endpoint("https://example.com").is_err());
    }
}
