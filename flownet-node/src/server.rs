//! The node's HTTP server: its outputs by content address, and what it serves.

use std::{net::SocketAddr, sync::Arc};

use axum::{
    Router,
    extract::{Path, RawQuery, State},
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
    routing::get,
};
use flownet_core::{BlobStore, Digest32, Node};
use tokio::sync::watch;

use crate::{
    Error, HttpLimits, Result,
    blobs::{FsBlobStore, sniff_mime},
    streams::{Next, StreamHub},
};

#[derive(Clone)]
struct AppState {
    blobs: FsBlobStore,
    info: Arc<serde_json::Value>,
    streams: Arc<StreamHub>,
}

/// What `GET /` of a node answers: its address, name and models.
pub fn node_info(node: &Node) -> serde_json::Value {
    serde_json::json!({ "node": node.owner, "name": node.name, "models": node.models })
}

/// The node's routes: `GET /blobs/{sha256}` (its outputs, by content address),
/// `GET /healthz` and `GET /` (`info`, the node's address and models). Another axum
/// app can nest or merge them.
pub fn router(blobs: FsBlobStore, info: serde_json::Value) -> Router {
    node_router(blobs, info, StreamHub::new())
}

/// [`router`] plus `GET /tasks/{id}/stream`: the answer a node's worker is streaming
/// for task `id` (see [`StreamHub`]), as server-sent events, one [`StreamChunk`] as
/// JSON per `data:` line, replayed from the start and then live until its `done`.
///
/// [`StreamChunk`]: flownet_core::StreamChunk
pub fn node_router(blobs: FsBlobStore, info: serde_json::Value, streams: Arc<StreamHub>) -> Router {
    Router::new()
        .route("/tasks/{id}/stream", get(task_stream))
        .route(
            "/",
            get(|State(s): State<AppState>| async move { axum::Json((*s.info).clone()) }),
        )
        .route("/healthz", get(|| async { "ok" }))
        .route("/blobs/{sha256}", get(get_blob))
        .route(
            "/ipfs/{cid}",
            get(
                |State(s): State<AppState>,
                 Path(cid): Path<String>,
                 RawQuery(q): RawQuery,
                 headers: HeaderMap| async move {
                    ipfs_block(Some(s.blobs), &cid, q.as_deref(), &headers).await
                },
            ),
        )
        .with_state(AppState {
            blobs,
            info: Arc::new(info),
            streams,
        })
}

/// Serves [`router`] on `listen` until `stop` turns true. Returns the bound address
/// (useful with port 0).
pub async fn spawn_blob_server(
    listen: SocketAddr,
    blobs: FsBlobStore,
    info: serde_json::Value,
    stop: watch::Receiver<bool>,
) -> Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    spawn_node_server(listen, blobs, info, StreamHub::new(), stop).await
}

/// Serves [`node_router`] on `listen` until `stop` turns true, under the default
/// [`HttpLimits`]. Returns the bound address.
pub async fn spawn_node_server(
    listen: SocketAddr,
    blobs: FsBlobStore,
    info: serde_json::Value,
    streams: Arc<StreamHub>,
    stop: watch::Receiver<bool>,
) -> Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    spawn_node_server_with(listen, blobs, info, streams, HttpLimits::default(), stop).await
}

/// [`spawn_node_server`] under `limits` (header and body timeouts, a connection cap).
pub async fn spawn_node_server_with(
    listen: SocketAddr,
    blobs: FsBlobStore,
    info: serde_json::Value,
    streams: Arc<StreamHub>,
    limits: HttpLimits,
    mut stop: watch::Receiver<bool>,
) -> Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let app = node_router(blobs, info, streams);
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
        if let Err(e) = crate::http::serve(listener, app, limits, shutdown).await {
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

/// The media type of a raw IPFS block.
pub const IPLD_RAW: &str = "application/vnd.ipld.raw";

/// The trustless-gateway answer to `GET /ipfs/{cid}` for a raw block: the blob the CID
/// names, from `store` (never fetched from elsewhere on a caller's behalf), as
/// `application/vnd.ipld.raw`, when the request asks for that type (`Accept:
/// application/vnd.ipld.raw`, or the query `format=raw`); 406 otherwise. An IPFS
/// client checks the bytes against the CID, so standard tooling can fetch from here.
pub async fn ipfs_block(
    store: Option<FsBlobStore>,
    cid: &str,
    query: Option<&str>,
    headers: &HeaderMap,
) -> Response {
    let sha = match flownet_core::cid::parse_raw_cid(cid) {
        Ok(sha) => sha,
        Err(e) => return (StatusCode::BAD_REQUEST, e.to_string()).into_response(),
    };
    let accepts_raw = headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| {
            t.split(';')
                .next()
                .is_some_and(|t| t.trim().eq_ignore_ascii_case(IPLD_RAW))
        })
        || query.is_some_and(|q| q.split('&').any(|kv| kv == "format=raw"));
    if !accepts_raw {
        return (
            StatusCode::NOT_ACCEPTABLE,
            format!(
                "this is a trustless gateway: ask for Accept: {IPLD_RAW} (or fetch /blobs/<sha256>)"
            ),
        )
            .into_response();
    }
    let Some(store) = store else {
        return (StatusCode::NOT_FOUND, "this server keeps no blobs").into_response();
    };
    match tokio::task::spawn_blocking(move || store.get(&sha)).await {
        Ok(Ok(Some(bytes))) => {
            let cid = flownet_core::cid::raw_cid(&sha);
            (
                [
                    (header::CONTENT_TYPE, IPLD_RAW.to_owned()),
                    (header::X_CONTENT_TYPE_OPTIONS, "nosniff".to_owned()),
                    (
                        header::CACHE_CONTROL,
                        "public, max-age=29030400, immutable".to_owned(),
                    ),
                    (header::ETAG, format!("\"{cid}.raw\"")),
                    (header::VARY, "Accept".to_owned()),
                    (
                        header::CONTENT_DISPOSITION,
                        format!("attachment; filename=\"{cid}.bin\""),
                    ),
                ],
                bytes,
            )
                .into_response()
        }
        Ok(Ok(None)) => (StatusCode::NOT_FOUND, "no such block here").into_response(),
        _ => (StatusCode::INTERNAL_SERVER_ERROR, "blob store error").into_response(),
    }
}

/// The longest one task stream stays open.
pub const MAX_STREAM_DURATION: std::time::Duration = std::time::Duration::from_secs(600);

async fn task_stream(State(s): State<AppState>, Path(id): Path<u64>) -> Response {
    if matches!(s.streams.next(id, None, 0), Next::Unknown) {
        return (
            StatusCode::NOT_FOUND,
            "no stream for this task here: it is not running on this node, or its model does not stream",
        )
            .into_response();
    }
    struct Follow {
        hub: Arc<StreamHub>,
        task: u64,
        run: Option<u64>,
        sent: usize,
        done: bool,
        until: tokio::time::Instant,
    }
    let start = Follow {
        hub: s.streams.clone(),
        task: id,
        run: None,
        sent: 0,
        done: false,
        until: tokio::time::Instant::now() + MAX_STREAM_DURATION,
    };
    let events = futures::stream::unfold(start, |mut f| async move {
        loop {
            if f.done {
                return None;
            }
            match f.hub.next(f.task, f.run, f.sent) {
                Next::Unknown => return None,
                Next::Chunks { run, chunks } => {
                    let mut text = String::new();
                    if f.run.is_some_and(|r| r != run) {
                        // The run failed and started again: followers start over.
                        text.push_str("event: restart\ndata: {}\n\n");
                        f.sent = 0;
                    }
                    f.run = Some(run);
                    f.sent += chunks.len();
                    for c in &chunks {
                        f.done |= matches!(c, flownet_core::StreamChunk::Done { .. });
                        text.push_str("data: ");
                        text.push_str(&serde_json::to_string(c).unwrap_or_default());
                        text.push_str("\n\n");
                    }
                    return Some((
                        Ok::<_, std::convert::Infallible>(axum::body::Bytes::from(text)),
                        f,
                    ));
                }
                Next::Wait(mut rx) => {
                    let wait = tokio::time::timeout_at(f.until, rx.changed());
                    match wait.await {
                        Ok(Ok(())) => {}
                        // The stream was replaced or forgotten: look again.
                        Ok(Err(_)) => {
                            if matches!(f.hub.next(f.task, f.run, f.sent), Next::Wait(_)) {
                                return None;
                            }
                        }
                        Err(_) => return None,
                    }
                }
            }
        }
    });
    (
        [
            (header::CONTENT_TYPE, "text/event-stream"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        axum::body::Body::from_stream(events),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    /// `GET /ipfs/{cid}` answers a raw block as the trustless-gateway spec says, to
    /// clients that ask for one, in either base; nothing else.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn raw_blocks_are_served_by_cid_to_clients_that_ask_for_them() {
        let dir = tempfile::tempdir().unwrap();
        let store = FsBlobStore::open(dir.path()).unwrap();
        let sha = store.put(b"hello").unwrap();
        let (_stop_tx, stop) = watch::channel(false);
        let (addr, _) = spawn_blob_server(
            "127.0.0.1:0".parse().unwrap(),
            store,
            serde_json::json!({}),
            stop,
        )
        .await
        .unwrap();
        assert!(addr.ip().is_loopback());
        let cid = flownet_core::cid::raw_cid(&sha);
        assert_eq!(
            cid,
            "bafkreibm6jg3ux5qumhcn2b3flc3tyu6dmlb4xa7u5bf44yegnrjhc4yeq"
        );
        let get = move |path: String, accept: Option<&'static str>| {
            tokio::task::spawn_blocking(move || {
                let agent: ureq::Agent = ureq::Agent::config_builder()
                    .http_status_as_error(false)
                    .build()
                    .into();
                let mut req = agent.get(format!("http://{addr}{path}"));
                if let Some(a) = accept {
                    req = req.header("Accept", a);
                }
                let mut r = req.call().unwrap();
                let ct = r
                    .headers()
                    .get("content-type")
                    .map(|v| v.to_str().unwrap().to_owned());
                let etag = r
                    .headers()
                    .get("etag")
                    .map(|v| v.to_str().unwrap().to_owned());
                (
                    r.status().as_u16(),
                    ct,
                    etag,
                    r.body_mut().read_to_vec().unwrap(),
                )
            })
        };
        let (status, ct, etag, body) = get(format!("/ipfs/{cid}"), Some(IPLD_RAW)).await.unwrap();
        assert_eq!(
            (status, ct.as_deref(), body.as_slice()),
            (200, Some(IPLD_RAW), &b"hello"[..])
        );
        assert_eq!(etag, Some(format!("\"{cid}.raw\"")));
        let hex = format!("/ipfs/f01551220{}?format=raw", sha.to_hex());
        assert_eq!(get(hex, None).await.unwrap().3, b"hello");
        let (status, ..) = get(format!("/ipfs/{cid}"), Some("text/html"))
            .await
            .unwrap();
        assert_eq!(status, 406);
        let (status, ..) = get(
            "/ipfs/QmYwAPJzv5CZsnA625s3Xf2nemtYgPpHdWEz79ojWnPbdG".into(),
            Some(IPLD_RAW),
        )
        .await
        .unwrap();
        assert_eq!(status, 400);
        let other = flownet_core::cid::raw_cid(&flownet_core::crypto::sha256(b"absent"));
        let (status, ..) = get(format!("/ipfs/{other}"), Some(IPLD_RAW)).await.unwrap();
        assert_eq!(status, 404);
    }

    /// 50 clients dribbling their headers: each is cut off at the header timeout,
    /// and a client that asks properly is still served.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn header_dribblers_are_cut_off() {
        let dir = tempfile::tempdir().unwrap();
        let (_stop_tx, stop) = watch::channel(false);
        let limits = HttpLimits {
            header_timeout: Duration::from_secs(1),
            ..HttpLimits::default()
        };
        let (addr, _) = spawn_node_server_with(
            "127.0.0.1:0".parse().unwrap(),
            FsBlobStore::open(dir.path()).unwrap(),
            serde_json::json!({}),
            StreamHub::new(),
            limits,
            stop,
        )
        .await
        .unwrap();
        let started = Instant::now();
        let mut slow = Vec::new();
        for _ in 0..50 {
            let mut c = tokio::net::TcpStream::connect(addr).await.unwrap();
            c.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
                .await
                .unwrap();
            slow.push(c);
        }
        for mut c in slow {
            let mut got = Vec::new();
            let closed =
                tokio::time::timeout(Duration::from_secs(10), c.read_to_end(&mut got)).await;
            assert!(closed.is_ok(), "a dribbling connection is still open");
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{:?}",
            started.elapsed()
        );
        let mut c = tokio::net::TcpStream::connect(addr).await.unwrap();
        c.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut got = String::new();
        c.read_to_string(&mut got).await.unwrap();
        assert!(got.starts_with("HTTP/1.1 200"), "{got}");
    }
}
