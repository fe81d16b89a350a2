//! A node process: the HTTP server that publishes its outputs, and the loop that drives
//! the core's node worker.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use anyhow::{Context as _, Result};
use axum::{
    Router,
    extract::{Path, State},
    http::{StatusCode, header},
    response::{IntoResponse, Response},
    routing::get,
};
use flownet_core::{BlobStore, Digest32, Engine, Ledger, NodeEvent, NodeWorker};
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

/// Ticks the worker every `interval` until `stop` turns true. Ledger errors are logged
/// and retried on the next tick rather than ending the node.
pub async fn run_worker(worker: Arc<Worker>, interval: Duration, mut stop: watch::Receiver<bool>) {
    loop {
        if *stop.borrow() {
            break;
        }
        if let Err(e) = worker.tick(&log_event).await {
            tracing::warn!("node tick failed: {e}");
        }
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = stop.changed() => {}
        }
    }
}
