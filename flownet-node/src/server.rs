//! The node's HTTP server: its outputs by content address, and what it serves.

use std::{net::SocketAddr, sync::Arc};

use axum::{
    Router,
    extract::{Path, State},
    http::{StatusCode, header},
    response::{IntoResponse, Response},
    routing::get,
};
use flownet_core::{BlobStore, Digest32, Node};
use tokio::sync::watch;

use crate::{
    Error, Result,
    blobs::{FsBlobStore, sniff_mime},
};

#[derive(Clone)]
struct AppState {
    blobs: FsBlobStore,
    info: Arc<serde_json::Value>,
}

/// What `GET /` of a node answers: its address, name and models.
pub fn node_info(node: &Node) -> serde_json::Value {
    serde_json::json!({ "node": node.owner, "name": node.name, "models": node.models })
}

/// The node's routes: `GET /blobs/{sha256}` (its outputs, by content address),
/// `GET /healthz` and `GET /` (`info`, the node's address and models). Another axum
/// app can nest or merge them.
pub fn router(blobs: FsBlobStore, info: serde_json::Value) -> Router {
    Router::new()
        .route(
            "/",
            get(|State(s): State<AppState>| async move { axum::Json((*s.info).clone()) }),
        )
        .route("/healthz", get(|| async { "ok" }))
        .route("/blobs/{sha256}", get(get_blob))
        .with_state(AppState {
            blobs,
            info: Arc::new(info),
        })
}

/// Serves [`router`] on `listen` until `stop` turns true. Returns the bound address
/// (useful with port 0).
pub async fn spawn_blob_server(
    listen: SocketAddr,
    blobs: FsBlobStore,
    info: serde_json::Value,
    mut stop: watch::Receiver<bool>,
) -> Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let app = router(blobs, info);
    let bind = |error| Error::Bind {
        addr: listen,
        error,
    };
    let listener = tokio::net::TcpListener::bind(listen).await.map_err(bind)?;
    let addr = listener.local_addr().map_err(bind)?;
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
