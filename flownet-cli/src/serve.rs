//! A node process: the HTTP server that publishes its outputs, and the loop that drives
//! the core's node worker.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use anyhow::{Context as _, Result, bail};
use axum::{
    Router,
    extract::{Path, State},
    http::{StatusCode, header},
    response::{IntoResponse, Response},
    routing::get,
};
use flownet_core::{
    BlobStore, Digest32, Engine, Ledger, Node, NodeEvent, NodeWorker, OfferedModel, Wallet,
};
use tokio::sync::watch;

use crate::blobs::{FsBlobStore, sniff_mime};

/// The worker as the frontends hold it: every port behind a trait object.
pub type Worker = NodeWorker<dyn Ledger, dyn Engine, dyn BlobStore>;

#[derive(Clone)]
struct AppState {
    blobs: FsBlobStore,
    info: Arc<serde_json::Value>,
}

/// Serves `GET /blobs/{sha256}` (the node's outputs, by content address), `GET /healthz`
/// and `GET /` (the node's address and models) on `listen` until `stop` turns true.
/// Returns the bound address (useful with port 0).
pub async fn spawn_blob_server(
    listen: SocketAddr,
    blobs: FsBlobStore,
    info: serde_json::Value,
    mut stop: watch::Receiver<bool>,
) -> Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let app = Router::new()
        .route(
            "/",
            get(|State(s): State<AppState>| async move { axum::Json((*s.info).clone()) }),
        )
        .route("/healthz", get(|| async { "ok" }))
        .route("/blobs/{sha256}", get(get_blob))
        .with_state(AppState {
            blobs,
            info: Arc::new(info),
        });
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("binding {listen}"))?;
    let addr = listener.local_addr()?;
    let handle = tokio::spawn(async move {
        let shutdown = async move {
            while !*stop.borrow() {
                if stop.changed().await.is_err() {
                    break;
                }
            }
        };
        if let Err(e) = axum::serve(listener, app)
            .with_graceful_shutdown(shutdown)
            .await
        {
            tracing::error!("blob server stopped: {e}");
        }
    });
    Ok((addr, handle))
}

async fn get_blob(State(s): State<AppState>, Path(sha): Path<String>) -> Response {
    let Ok(sha) = Digest32::from_hex(&sha) else {
        return (
            StatusCode::BAD_REQUEST,
            "expected /blobs/<64 hex digits of sha256>",
        )
            .into_response();
    };
    let blobs = s.blobs.clone();
    match tokio::task::spawn_blocking(move || blobs.get(&sha)).await {
        Ok(Ok(Some(bytes))) => {
            ([(header::CONTENT_TYPE, sniff_mime(&bytes))], bytes).into_response()
        }
        Ok(Ok(None)) => (StatusCode::NOT_FOUND, "no such blob").into_response(),
        _ => (StatusCode::INTERNAL_SERVER_ERROR, "blob store error").into_response(),
    }
}

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
    loop {
        if *stop.borrow() {
            break;
        }
        if let Err(e) = worker.tick(&on_event).await {
            tracing::warn!("node tick failed: {e}");
        }
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
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
        (None, None) => bail!(
            "{} has no node yet: give it a name to register it",
            wallet.address()
        ),
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
        .context("the node vanished after registering")
}

/// The endpoint a node registers when none is given.
pub const DEFAULT_ENDPOINT: &str = "http://127.0.0.1:7070";

/// Runs a registered node until `stop` resolves (or, with `once`, for one pass): the
/// output server on the endpoint's address and the worker loop around `engine`. Warns
/// about offers the engine cannot serve. Returns how many tasks it delivered in `once`
/// mode (0 otherwise); claimed tasks left behind resume on the next start.
pub async fn run_node(
    wallet: Arc<Wallet<dyn Ledger>>,
    engine: Arc<dyn Engine>,
    blobs: FsBlobStore,
    options: &ServeOptions,
    stop: impl std::future::Future<Output = ()>,
) -> Result<usize> {
    let Some(node) = wallet.ledger().node(wallet.address()).await? else {
        bail!(
            "{} has no node: register one first with `flownet node register`",
            wallet.address()
        );
    };
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
    let (stop_tx, stop_rx) = watch::channel(false);
    let listen = match options.listen {
        Some(l) => l,
        None => listen_from_endpoint(&node.endpoint)?,
    };
    let info = serde_json::json!({ "node": node.owner, "name": node.name, "models": node.models });
    let (addr, server) = spawn_blob_server(listen, blobs.clone(), info, stop_rx.clone()).await?;
    let blob_store: Arc<dyn BlobStore> = Arc::new(blobs);
    let worker = Arc::new(NodeWorker::new(
        wallet,
        engine,
        blob_store,
        node.endpoint.clone(),
    ));
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
    let rest = endpoint
        .strip_prefix("http://")
        .with_context(|| format!("endpoint {endpoint} is not http://; pass --listen"))?;
    let hostport = rest.split('/').next().unwrap_or_default();
    let hostport = if hostport.contains(':') {
        hostport.to_owned()
    } else {
        format!("{hostport}:80")
    };
    let hostport = hostport.replace("localhost", "127.0.0.1");
    hostport.parse().with_context(|| {
        format!("cannot listen on {hostport} from endpoint {endpoint}; pass --listen")
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
