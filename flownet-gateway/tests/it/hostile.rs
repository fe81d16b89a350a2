//! Hostile nodes and clients on loopback: endpoints aimed at another loopback port
//! standing for an internal service, redirects, wrong bytes, slow clients.

use std::{
    io::{Read, Write},
    net::{SocketAddr, TcpListener, TcpStream},
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use flownet_chain::EmbeddedLedger;
use flownet_core::{
    Endpoint, Ledger, LedgerConfig, OfferedModel, OutputRef, SigningKey, Wallet, crypto,
};
use flownet_gateway::{FetchPolicy, Gateway, GatewayConfig};
use serde_json::Value;
use tokio::sync::watch;

/// A loopback server answering every connection with `answer`; counts connections.
pub(crate) fn server(
    answer: impl Fn(&mut TcpStream) + Send + Sync + 'static,
) -> (u16, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let hits = Arc::new(AtomicUsize::new(0));
    let counted = hits.clone();
    std::thread::spawn(move || {
        for mut conn in listener.incoming().flatten() {
            counted.fetch_add(1, Ordering::SeqCst);
            let mut head = [0u8; 4096];
            let _ = conn.read(&mut head);
            answer(&mut conn);
        }
    });
    (port, hits)
}

pub(crate) struct Market {
    pub ledger: Arc<dyn Ledger>,
    pub addr: SocketAddr,
    _stop: watch::Sender<bool>,
    _dir: tempfile::TempDir,
}

impl Market {
    pub(crate) async fn new(config: GatewayConfig) -> Self {
        Self::with_store(config, None).await
    }

    /// A gateway keeping what it fetches in `blobs`.
    pub(crate) async fn with_store(
        config: GatewayConfig,
        blobs: Option<flownet_node::FsBlobStore>,
    ) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let ledger: Arc<dyn Ledger> = Arc::new(
            EmbeddedLedger::create(dir.path().join("ledger.db"), LedgerConfig::default()).unwrap(),
        );
        let keys = flownet_gateway::keys::ApiKeys::new(flownet_gateway::keys::ApiKeys::path_in(
            dir.path(),
        ));
        let gateway = Gateway::new(ledger.clone(), blobs, [], Some(keys), config)
            .await
            .unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stop_rx) = watch::channel(false);
        tokio::spawn(gateway.serve(listener, stop_rx));
        Self {
            ledger,
            addr,
            _stop: stop,
            _dir: dir,
        }
    }

    /// A node with `endpoint` that delivers task 1 as `bytes` (which it says are at
    /// its own blob URL); returns the task id and the output.
    pub(crate) async fn delivered_by(&self, endpoint: &str, bytes: &[u8]) -> (u64, OutputRef) {
        let node = Wallet::new(self.ledger.clone(), SigningKey::generate());
        node.ensure_funded().await.unwrap();
        let offer = OfferedModel {
            model_id: "m".into(),
            weights_sha256: flownet_core::Digest32([1; 32]),
            price: "0.1".parse().unwrap(),
            unit: flownet_core::PriceUnit::Task,
        };
        node.register_node("hostile", endpoint, vec![offer])
            .await
            .unwrap();
        let user = Wallet::new(self.ledger.clone(), SigningKey::generate());
        user.ensure_funded().await.unwrap();
        let id = user
            .submit(node.address(), "m", "p", "{}", "0.1".parse().unwrap())
            .await
            .unwrap();
        node.claim(id).await.unwrap();
        let sha256 = crypto::sha256(bytes);
        let output = OutputRef {
            sha256,
            uri: Endpoint::parse(endpoint).unwrap().blob_url(&sha256),
            mime: "text/plain".into(),
            size: bytes.len() as u64,
        };
        node.fulfil(id, output.clone()).await.unwrap();
        (id, output)
    }

    /// An open task nobody serves.
    pub(crate) async fn open_task(&self) -> u64 {
        let node = Wallet::new(self.ledger.clone(), SigningKey::generate());
        node.ensure_funded().await.unwrap();
        let offer = OfferedModel {
            model_id: "m".into(),
            weights_sha256: flownet_core::Digest32([1; 32]),
            price: "0.1".parse().unwrap(),
            unit: flownet_core::PriceUnit::Task,
        };
        node.register_node("idle", "http://127.0.0.1:9", vec![offer])
            .await
            .unwrap();
        let user = Wallet::new(self.ledger.clone(), SigningKey::generate());
        user.ensure_funded().await.unwrap();
        user.submit(node.address(), "m", "p", "{}", "0.1".parse().unwrap())
            .await
            .unwrap()
    }

    /// `GET path`: status and JSON body (or Null).
    pub(crate) async fn get(&self, path: &str) -> (u16, Value) {
        let url = format!("http://{}{path}", self.addr);
        tokio::task::spawn_blocking(move || {
            let agent: ureq::Agent = ureq::Agent::config_builder()
                .http_status_as_error(false)
                .timeout_global(Some(Duration::from_secs(30)))
                .build()
                .into();
            let mut r = agent.get(&url).call().unwrap();
            let status = r.status().as_u16();
            let body = r.body_mut().read_to_string().unwrap_or_default();
            (status, serde_json::from_str(&body).unwrap_or(Value::Null))
        })
        .await
        .unwrap()
    }
}

fn test_config(fetch_policy: FetchPolicy) -> GatewayConfig {
    GatewayConfig {
        fetch_policy,
        ..GatewayConfig::default()
    }
}

/// An internal service on another loopback port, which answers with a secret.
fn internal_service() -> (u16, Arc<AtomicUsize>) {
    server(|c| {
        let _ = c.write_all(b"HTTP/1.1 418 I'm a teapot\r\ncontent-length: 6\r\n\r\nsecret");
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_cannot_point_the_gateway_at_an_internal_service() {
    let (internal, internal_hits) = internal_service();
    let m = Market::new(GatewayConfig::default()).await;
    // An endpoint ending in '#' or '?x=' is no longer registered at all.
    let node = Wallet::new(m.ledger.clone(), SigningKey::generate());
    node.ensure_funded().await.unwrap();
    for bad in [
        format!("http://127.0.0.1:{internal}/internal-secret#"),
        format!("http://127.0.0.1:{internal}/admin/delete?confirm=yes&x="),
    ] {
        let offer = OfferedModel {
            model_id: "m".into(),
            weights_sha256: flownet_core::Digest32([1; 32]),
            price: "0.1".parse().unwrap(),
            unit: flownet_core::PriceUnit::Task,
        };
        let e = node
            .register_node("n", &bad, vec![offer])
            .await
            .unwrap_err();
        assert_eq!(e.kind(), flownet_core::ErrorKind::InvalidInput, "{bad}");
    }
    // A plain endpoint on loopback: the gateway's default policy refuses it, so the
    // internal service is never asked, and the answer says nothing of it.
    let (id, out) = m
        .delivered_by(&format!("http://127.0.0.1:{internal}"), b"output")
        .await;
    let (status, body) = m.get(&format!("/api/blobs/{}?task={id}", out.sha256)).await;
    assert_eq!(status, 502, "{body}");
    assert_eq!(body["error"]["code"], "node_did_not_deliver", "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("the node did not deliver"), "{message}");
    let secret = crypto::sha256(b"secret").to_hex();
    assert!(
        !message.contains("418") && !message.contains(&secret),
        "{message}"
    );
    assert_eq!(internal_hits.load(Ordering::SeqCst), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redirect_from_a_node_is_not_followed() {
    let (internal, internal_hits) = internal_service();
    let (node, node_hits) = server(move |c| {
        let _ = write!(
            c,
            "HTTP/1.1 302 Found\r\nlocation: http://127.0.0.1:{internal}/internal-secret\r\ncontent-length: 0\r\n\r\n"
        );
    });
    let m = Market::new(test_config(FetchPolicy::LOOPBACK)).await;
    let (id, out) = m
        .delivered_by(&format!("http://127.0.0.1:{node}"), b"output")
        .await;
    let (status, body) = m.get(&format!("/api/blobs/{}?task={id}", out.sha256)).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (502, Some("node_did_not_deliver"))
    );
    assert!(!body.to_string().contains("302"), "{body}");
    assert_eq!(node_hits.load(Ordering::SeqCst), 1);
    assert_eq!(internal_hits.load(Ordering::SeqCst), 0);
}

/// A node sending many wrong bytes: the gateway reads no more than the output's
/// size, and asking again does not fetch them again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_bytes_are_read_to_the_stated_size_once_and_remembered() {
    let written = Arc::new(AtomicUsize::new(0));
    let count = written.clone();
    let (node, node_hits) = server(move |c| {
        let _ = c.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 41943040\r\n\r\n");
        let chunk = [b'x'; 64 * 1024];
        for _ in 0..640 {
            if c.write_all(&chunk).is_err() {
                break;
            }
            count.fetch_add(chunk.len(), Ordering::SeqCst);
        }
    });
    let m = Market::new(test_config(FetchPolicy::LOOPBACK)).await;
    let (id, out) = m
        .delivered_by(&format!("http://127.0.0.1:{node}"), b"ten bytes!")
        .await;
    for _ in 0..3 {
        let (status, body) = m.get(&format!("/api/blobs/{}?task={id}", out.sha256)).await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (502, Some("node_did_not_deliver"))
        );
    }
    assert_eq!(
        node_hits.load(Ordering::SeqCst),
        1,
        "the mismatch is remembered"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    let sent = written.load(Ordering::SeqCst);
    assert!(sent < 20 * 1024 * 1024, "the node wrote {sent} bytes");
}

/// Writes `head` on a fresh connection to the gateway and reads what comes back
/// within `wait` (what was read, and whether the connection was closed).
async fn raw(addr: SocketAddr, head: &[u8], wait: Duration) -> (String, bool) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut c = tokio::net::TcpStream::connect(addr).await.unwrap();
    c.write_all(head).await.unwrap();
    let mut got = Vec::new();
    let closed = tokio::time::timeout(wait, c.read_to_end(&mut got))
        .await
        .is_ok();
    (String::from_utf8_lossy(&got).into_owned(), closed)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v1_checks_the_key_before_reading_the_body() {
    let m = Market::new(GatewayConfig::default()).await;
    // A body announced but never sent: the answer comes without it.
    let head = b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\ncontent-type: application/json\r\ncontent-length: 60000\r\n\r\n{";
    let (got, _) = raw(m.addr, head, Duration::from_secs(3)).await;
    assert!(got.starts_with("HTTP/1.1 401"), "{got:?}");
    assert!(got.contains("missing_api_key"), "{got}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_that_dribbles_is_cut_off() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let m = Market::new(GatewayConfig {
        body_timeout: Duration::from_secs(1),
        ..GatewayConfig::default()
    })
    .await;
    let started = std::time::Instant::now();
    let mut c = tokio::net::TcpStream::connect(m.addr).await.unwrap();
    c.write_all(b"POST /api/relay HTTP/1.1\r\nHost: 127.0.0.1\r\ncontent-type: application/json\r\ncontent-length: 60000\r\n\r\n{")
        .await
        .unwrap();
    // One byte every 200 ms, for up to 10 s.
    let mut got = Vec::new();
    for _ in 0..50 {
        let mut buf = [0u8; 4096];
        match tokio::time::timeout(Duration::from_millis(200), c.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
            Err(_) => {}
        }
        if !got.is_empty() || c.write_all(b" ").await.is_err() {
            break;
        }
    }
    let elapsed = started.elapsed();
    let got = String::from_utf8_lossy(&got);
    assert!(
        elapsed < Duration::from_secs(5),
        "still reading after {elapsed:?}"
    );
    assert!(got.is_empty() || got.starts_with("HTTP/1.1 4"), "{got}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_are_capped() {
    let m = Market::new(GatewayConfig {
        max_connections: 4,
        header_timeout: Duration::from_secs(2),
        ..GatewayConfig::default()
    })
    .await;
    let mut idle = Vec::new();
    for _ in 0..4 {
        idle.push(tokio::net::TcpStream::connect(m.addr).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let request = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nconnection: close\r\n\r\n";
    // A fifth waits while the four are open...
    let (got, _) = raw(m.addr, request, Duration::from_millis(700)).await;
    assert!(got.is_empty(), "served past the cap: {got}");
    // ...and is served once the header timeout has closed them.
    let (got, _) = raw(m.addr, request, Duration::from_secs(10)).await;
    assert!(got.starts_with("HTTP/1.1 200"), "{got:?}");
    drop(idle);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_client_holds_only_so_many_event_streams() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let m = Market::new(GatewayConfig {
        max_event_streams_per_ip: 3,
        ..GatewayConfig::default()
    })
    .await;
    let id = m.open_task().await;
    let request = format!("GET /api/tasks/{id}/events HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
    let mut held = Vec::new();
    for _ in 0..3 {
        let mut c = tokio::net::TcpStream::connect(m.addr).await.unwrap();
        c.write_all(request.as_bytes()).await.unwrap();
        let mut buf = [0u8; 1024];
        let n = c.read(&mut buf).await.unwrap();
        let head = String::from_utf8_lossy(&buf[..n]).into_owned();
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        held.push(c);
    }
    let (status, body) = m.get(&format!("/api/tasks/{id}/events")).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (503, Some("too_many_streams"))
    );
    // Closing one frees its place.
    drop(held.pop());
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut c = tokio::net::TcpStream::connect(m.addr).await.unwrap();
    c.write_all(request.as_bytes()).await.unwrap();
    let mut buf = [0u8; 1024];
    let n = c.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_can_require_a_token() {
    let m = Market::new(GatewayConfig {
        metrics_token: Some("s3cret".into()),
        ..GatewayConfig::default()
    })
    .await;
    let (status, body) = m.get("/metrics").await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (401, Some("metrics_token_required"))
    );
    let url = format!("http://{}/metrics", m.addr);
    let (status, text) = tokio::task::spawn_blocking(move || {
        let mut r = ureq::get(&url)
            .header("authorization", "Bearer s3cret")
            .call()
            .unwrap();
        (r.status().as_u16(), r.body_mut().read_to_string().unwrap())
    })
    .await
    .unwrap();
    assert_eq!(status, 200);
    assert!(text.contains("flownet_sse_streams"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fetched_outputs_are_kept_within_a_quota() {
    use flownet_core::BlobStore as _;
    let dir = tempfile::tempdir().unwrap();
    let node_store = flownet_node::FsBlobStore::open(dir.path().join("node")).unwrap();
    let (_stop, stop) = watch::channel(false);
    let (node, _) = flownet_node::spawn_blob_server(
        "127.0.0.1:0".parse().unwrap(),
        node_store.clone(),
        serde_json::json!({}),
        stop,
    )
    .await
    .unwrap();
    let kept = flownet_node::FsBlobStore::open(dir.path().join("gateway")).unwrap();
    let m = Market::with_store(
        GatewayConfig {
            fetch_policy: FetchPolicy::LOOPBACK,
            max_cache_bytes: 150,
            ..GatewayConfig::default()
        },
        Some(kept.clone()),
    )
    .await;
    let endpoint = format!("http://{node}");
    let mut shas = Vec::new();
    for fill in [b'a', b'b'] {
        let bytes = vec![fill; 100];
        node_store.put(&bytes).unwrap();
        let (id, out) = m.delivered_by(&endpoint, &bytes).await;
        let (status, _) = m.get(&format!("/api/blobs/{}?task={id}", out.sha256)).await;
        assert_eq!(status, 200);
        shas.push(out.sha256);
    }
    assert_eq!(kept.get(&shas[0]).unwrap(), None, "the oldest was evicted");
    assert!(kept.get(&shas[1]).unwrap().is_some());
}
