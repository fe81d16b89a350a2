//! The gateway over real HTTP: a real ledger file, envelopes signed as the browser
//! signs them (ECDSA P-256 over SHA-256), a node worker in the same process with small
//! test engines (the real models are exercised by the browser and OpenAI-client tests
//! in scripts/test-web.sh).

use std::{
    io::BufRead as _,
    net::SocketAddr,
    sync::Arc,
    time::{Duration, Instant},
};

use async_trait::async_trait;
use base64::Engine as _;
use flownet_chain::EmbeddedLedger;
use flownet_core::{
    Action, Address, Amount, BlobStore, Engine, Envelope, HashAlgo, InferenceOutput,
    InferenceRequest, Ledger, LedgerConfig, ModelInfo, NodeWorker, OfferedModel, SigningKey,
    TaskKind, Wallet, crypto, memory::EchoEngine,
};
use flownet_gateway::{Gateway, GatewayConfig, ModelMeta, keys::ApiKeys, limits::Rate};
use flownet_node::FsBlobStore;
use serde_json::{Value, json};
use tokio::sync::watch;

/// A text-to-image engine for tests: a PNG signature followed by the prompt and seed,
/// so outputs differ by prompt and seed and are recognised as images.
struct PictureEngine(ModelInfo);

impl PictureEngine {
    fn new() -> Self {
        Self(ModelInfo {
            id: "picture".into(),
            kind: TaskKind::TextToImage,
            name: "test pictures".into(),
            weights_sha256: crypto::sha256(b"picture weights"),
            output_mime: "image/png".into(),
            prompt_mapping: "the prompt's bytes after a PNG signature".into(),
            defaults: json!({ "seed": null }),
        })
    }
}

#[async_trait]
impl Engine for PictureEngine {
    fn models(&self) -> Vec<ModelInfo> {
        vec![self.0.clone()]
    }
    async fn infer(&self, req: InferenceRequest) -> flownet_core::Result<InferenceOutput> {
        // "slow …" prompts take a second, for clients that time out and retry.
        if req.prompt.starts_with("slow ") {
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        let mut bytes = b"\x89PNG\r\n\x1a\n".to_vec();
        bytes.extend_from_slice(req.prompt.as_bytes());
        bytes.extend_from_slice(format!("{:?}", req.params.get("seed")).as_bytes());
        Ok(InferenceOutput {
            bytes,
            mime: "image/png".into(),
            metadata: json!({}),
        })
    }
}

/// Serves both test models.
struct TwoEngines(PictureEngine, EchoEngine);

#[async_trait]
impl Engine for TwoEngines {
    fn models(&self) -> Vec<ModelInfo> {
        vec![self.0.0.clone(), self.1.model.clone()]
    }
    async fn infer(&self, req: InferenceRequest) -> flownet_core::Result<InferenceOutput> {
        if req.model_id == self.0.0.id {
            self.0.infer(req).await
        } else {
            self.1.infer(req).await
        }
    }
}

struct World {
    dir: tempfile::TempDir,
    ledger: Arc<EmbeddedLedger>,
    gateway: Arc<Gateway>,
    addr: SocketAddr,
    node: Address,
    node_blobs: FsBlobStore,
    stop: watch::Sender<bool>,
    server: Option<tokio::task::JoinHandle<flownet_gateway::Result<()>>>,
}

impl Drop for World {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

struct Options {
    config: GatewayConfig,
    /// The gateway shares the node's blob store (as on one machine) or has none and
    /// must fetch outputs from the node's endpoint.
    shared_blobs: bool,
    /// Run the node worker.
    node: bool,
    /// The ledger's clock, when a test moves time itself.
    clock: Option<Arc<flownet_chain::ManualClock>>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            config: GatewayConfig {
                poll_interval: Duration::from_millis(20),
                task_timeout: Duration::from_secs(20),
                // The nodes of these tests run on loopback.
                fetch_policy: flownet_node::FetchPolicy::LOOPBACK,
                ..GatewayConfig::default()
            },
            shared_blobs: true,
            node: true,
            clock: None,
        }
    }
}

impl World {
    async fn new() -> Self {
        Self::with(Options::default()).await
    }

    async fn with(opts: Options) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ledger.db");
        let mut ledger = EmbeddedLedger::create(&path, LedgerConfig::default()).unwrap();
        if let Some(clock) = &opts.clock {
            drop(ledger);
            ledger = EmbeddedLedger::open_with_clock(&path, clock.clone()).unwrap();
        }
        let ledger = Arc::new(ledger);
        let dyn_ledger: Arc<dyn Ledger> = ledger.clone();
        let engine = Arc::new(TwoEngines(PictureEngine::new(), EchoEngine::new("echo")));
        let node_blobs = FsBlobStore::open(dir.path().join("node-blobs")).unwrap();
        let (stop, stop_rx) = watch::channel(false);
        let (node_addr, _) = flownet_node::spawn_blob_server(
            "127.0.0.1:0".parse().unwrap(),
            node_blobs.clone(),
            json!({}),
            stop_rx.clone(),
        )
        .await
        .unwrap();
        let endpoint = format!("http://{node_addr}");
        let node_wallet = Arc::new(Wallet::new(dyn_ledger.clone(), SigningKey::generate()));
        node_wallet.ensure_funded().await.unwrap();
        let offers = engine
            .models()
            .iter()
            .map(|m| OfferedModel {
                model_id: m.id.clone(),
                weights_sha256: m.weights_sha256,
                price: "0.5".parse().unwrap(),
                unit: flownet_core::PriceUnit::Task,
            })
            .collect();
        node_wallet
            .register_node("test node", &endpoint, offers)
            .await
            .unwrap();
        let keys = ApiKeys::new(ApiKeys::path_in(dir.path()));
        let gateway = Gateway::new(
            dyn_ledger.clone(),
            opts.shared_blobs.then(|| node_blobs.clone()),
            engine.models().iter().map(ModelMeta::from_info),
            Some(keys),
            opts.config,
        )
        .await
        .unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(gateway.clone().serve(listener, stop_rx.clone()));
        if opts.node {
            let engine: Arc<dyn Engine> = engine;
            let blobs: Arc<dyn BlobStore> = Arc::new(node_blobs.clone());
            let worker = NodeWorker::new(node_wallet.clone(), engine, blobs, endpoint);
            let gw = gateway.clone();
            let mut stop_rx = stop_rx;
            tokio::spawn(async move {
                let on_event = move |e: &flownet_core::NodeEvent| gw.node_event(e);
                while !*stop_rx.borrow() {
                    worker.tick(&on_event).await.unwrap();
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_millis(20)) => {}
                        _ = stop_rx.changed() => {}
                    }
                }
            });
        }
        Self {
            dir,
            ledger,
            gateway,
            addr,
            node: node_wallet.address(),
            node_blobs,
            stop,
            server: Some(server),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

/// An answer: status, headers we look at, and the body as JSON (or `Null`).
struct Answer {
    status: u16,
    retry_after: Option<String>,
    cors: Option<String>,
    body: Value,
    bytes: Vec<u8>,
}

impl Answer {
    fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or("")
    }
}

/// One HTTP request with ureq on a blocking thread.
async fn http(
    method: &str,
    url: String,
    headers: Vec<(&'static str, String)>,
    body: Option<Vec<u8>>,
) -> Answer {
    let method = method.to_owned();
    tokio::task::spawn_blocking(move || {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(30)))
            .build()
            .into();
        let mut resp = match method.as_str() {
            "GET" => {
                let mut r = agent.get(&url);
                for (k, v) in &headers {
                    r = r.header(*k, v);
                }
                r.call()
            }
            _ => {
                let mut r = agent.post(&url);
                for (k, v) in &headers {
                    r = r.header(*k, v);
                }
                r.send(body.unwrap_or_default())
            }
        }
        .unwrap();
        let header = |n: &str| {
            resp.headers()
                .get(n)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let (retry_after, cors) = (header("retry-after"), header("access-control-allow-origin"));
        let status = resp.status().as_u16();
        let bytes = resp
            .body_mut()
            .with_config()
            .limit(64 << 20)
            .read_to_vec()
            .unwrap();
        Answer {
            status,
            retry_after,
            cors,
            body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
            bytes,
        }
    })
    .await
    .unwrap()
}

async fn get(w: &World, path: &str) -> Answer {
    http("GET", w.url(path), vec![], None).await
}

async fn post_json(w: &World, path: &str, body: &Value, bearer: Option<&str>) -> Answer {
    let mut headers = vec![("content-type", "application/json".to_owned())];
    if let Some(b) = bearer {
        headers.push(("authorization", format!("Bearer {b}")));
    }
    http(
        "POST",
        w.url(path),
        headers,
        Some(serde_json::to_vec(body).unwrap()),
    )
    .await
}

/// A user as the browser is one: a P-256 key whose account hashes with SHA-256.
struct Browser {
    key: SigningKey,
    address: Address,
}

impl Browser {
    fn new() -> Self {
        let key = SigningKey::generate();
        Self {
            address: Address::derive(&key.public_key()),
            key,
        }
    }

    async fn sequence(&self, w: &World) -> u64 {
        w.ledger
            .account(self.address)
            .await
            .unwrap()
            .map_or(0, |a| a.sequence)
    }

    async fn envelope(&self, w: &World, action: Action) -> Value {
        let env = Envelope {
            ledger: w.gateway.ledger().info().await.unwrap().id,
            signer: self.address,
            sequence: self.sequence(w).await,
            action,
        };
        serde_json::to_value(env.sign_with(&self.key, HashAlgo::Sha2_256)).unwrap()
    }

    async fn send(&self, w: &World, action: Action) -> Answer {
        let env = self.envelope(w, action).await;
        post_json(w, "/api/relay", &env, None).await
    }

    async fn join(&self, w: &World) {
        let a = self
            .send(
                w,
                Action::CreateAccount {
                    public_key: self.key.public_key(),
                    hash_algo: HashAlgo::Sha2_256,
                },
            )
            .await;
        assert_eq!(a.status, 200, "{}", a.body);
        let a = self.send(w, Action::Faucet).await;
        assert_eq!(a.status, 200, "{}", a.body);
    }

    fn submit(&self, w: &World, model: &str, prompt: &str) -> Action {
        Action::Submit {
            node: w.node,
            model_id: model.into(),
            prompt: prompt.into(),
            params: "{}".into(),
            max_price: Amount::tokens(1),
            input: None,
            max_units: 0,
        }
    }
}

/// Reads a task's event stream to its end: the event names, and the last data.
async fn events(w: &World, task: u64) -> (Vec<String>, Value) {
    events_at(w.url(&format!("/api/tasks/{task}/events"))).await
}

async fn events_at(url: String) -> (Vec<String>, Value) {
    tokio::task::spawn_blocking(move || {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(Duration::from_secs(30)))
            .build()
            .into();
        let mut resp = agent.get(&url).call().unwrap();
        assert_eq!(
            resp.headers()["content-type"].to_str().unwrap(),
            "text/event-stream"
        );
        let reader = std::io::BufReader::new(resp.body_mut().as_reader());
        let (mut names, mut last) = (Vec::new(), Value::Null);
        for line in reader.lines() {
            let line = line.unwrap();
            if let Some(name) = line.strip_prefix("event: ") {
                names.push(name.to_owned());
            } else if let Some(data) = line.strip_prefix("data: ") {
                last = serde_json::from_str(data).unwrap();
                // Each event carries the task as it is after the event.
                let status = last["task"]["status"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned();
                match names.last().map(String::as_str) {
                    Some("claimed" | "running") => {
                        assert!(
                            status != "open" && !last["task"]["claimed_at"].is_null(),
                            "{:?} carries {last}",
                            names.last()
                        );
                    }
                    Some("delivered") => assert_eq!(status, "fulfilled", "{last}"),
                    _ => {}
                }
            }
        }
        (names, last)
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browser_signed_task_goes_through_the_relay_and_its_events() {
    let w = World::new().await;
    let alice = Browser::new();
    alice.join(&w).await;
    let account = get(&w, &format!("/api/accounts/{}", alice.address)).await;
    assert_eq!(account.status, 200);
    assert_eq!(account.body["hash_algo"], "SHA2_256");
    assert_eq!(account.body["balance"], "1000");

    let nodes = get(&w, "/api/nodes").await;
    assert_eq!(nodes.body["nodes"][0]["owner"], w.node.to_string());
    assert_eq!(
        nodes.body["nodes"][0]["models"][0]["price_units"],
        50_000_000
    );
    assert_eq!(nodes.body["nodes"][0]["models"][0]["kind"], "text-to-image");

    let r = alice
        .send(&w, alice.submit(&w, "picture", "a red fox"))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let id = r.body["receipt"]["outcome"]["task"].as_u64().unwrap();
    let (steps, last) = events(&w, id).await;
    // The node runs in this process, so "running" is known; the first steps may have
    // passed before the stream opened, but they are replayed in order.
    assert_eq!(steps, ["submitted", "claimed", "running", "delivered"]);
    let result = &last["task"]["result"];
    let sha = result["sha256"].as_str().unwrap().to_owned();

    let blob = get(&w, &format!("/api/blobs/{sha}")).await;
    assert_eq!(blob.status, 200);
    assert_eq!(crypto::sha256(&blob.bytes).to_hex(), sha);
    assert!(blob.bytes.ends_with(b"a red foxNone"));

    let nfts = get(&w, &format!("/api/nfts/{}", alice.address)).await;
    assert_eq!(nfts.body["nfts"][0]["task"], id);
    assert_eq!(nfts.body["nfts"][0]["output"]["sha256"], sha);

    // Another browser rates it and is paid the bounty.
    let bob = Browser::new();
    bob.join(&w).await;
    let outputs = get(&w, &format!("/api/outputs?viewer={}", bob.address)).await;
    assert_eq!(outputs.body["outputs"][0]["task"]["id"], id);
    assert_eq!(outputs.body["outputs"][0]["rated_by_viewer"], false);
    let bounty = outputs.body["outputs"][0]["bounty_next"].clone();
    let rated = bob.send(&w, Action::Rate { task: id, stars: 4 }).await;
    assert_eq!(rated.status, 200, "{}", rated.body);
    let credited = rated.body["receipt"]["outcome"]["credited"]
        .as_u64()
        .unwrap();
    assert!(credited > 0);
    assert_eq!(Amount(credited).to_string(), bounty.as_str().unwrap());
    let outputs = get(&w, &format!("/api/outputs?viewer={}", bob.address)).await;
    assert_eq!(outputs.body["outputs"][0]["rated_by_viewer"], true);
    // Alice's own outputs are not offered to her for rating.
    let mine = get(&w, &format!("/api/outputs?viewer={}", alice.address)).await;
    assert_eq!(mine.body["outputs"].as_array().unwrap().len(), 0);
    let task = get(&w, &format!("/api/tasks/{id}")).await;
    assert_eq!(task.body["ratings"][0]["rater"], bob.address.to_string());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_relay_refuses_what_is_not_validly_signed_and_new() {
    let w = World::with(Options {
        node: false,
        ..Options::default()
    })
    .await;
    let alice = Browser::new();
    alice.join(&w).await;

    // Unsigned: no signature at all.
    let mut unsigned = alice.envelope(&w, Action::Faucet).await;
    unsigned.as_object_mut().unwrap().remove("signature");
    let a = post_json(&w, "/api/relay", &unsigned, None).await;
    assert_eq!((a.status, a.code()), (400, "invalid_envelope"));
    assert!(
        a.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("signature")
    );

    // Signed by another key, or tampered after signing.
    let mallory = SigningKey::generate();
    let env = Envelope {
        ledger: w.gateway.ledger().info().await.unwrap().id,
        signer: alice.address,
        sequence: alice.sequence(&w).await,
        action: Action::Transfer {
            to: w.node,
            amount: Amount::tokens(5),
        },
    };
    let forged = serde_json::to_value(env.clone().sign_with(&mallory, HashAlgo::Sha2_256)).unwrap();
    let a = post_json(&w, "/api/relay", &forged, None).await;
    assert_eq!((a.status, a.code()), (401, "bad_signature"));
    let mut tampered =
        serde_json::to_value(env.clone().sign_with(&alice.key, HashAlgo::Sha2_256)).unwrap();
    tampered["action"]["amount"] = json!(Amount::tokens(500).0);
    let a = post_json(&w, "/api/relay", &tampered, None).await;
    assert_eq!((a.status, a.code()), (401, "bad_signature"));
    // SHA3 signatures do not count for a SHA2 account.
    let sha3 = serde_json::to_value(env.clone().sign(&alice.key)).unwrap();
    let a = post_json(&w, "/api/relay", &sha3, None).await;
    assert_eq!((a.status, a.code()), (401, "bad_signature"));
    assert_eq!(
        alice.sequence(&w).await,
        2,
        "forgeries spend no sequence number"
    );

    // The genuine one passes once; the same bytes again are a replay.
    let genuine = serde_json::to_value(env.sign_with(&alice.key, HashAlgo::Sha2_256)).unwrap();
    let a = post_json(&w, "/api/relay", &genuine, None).await;
    assert_eq!(a.status, 200, "{}", a.body);
    let a = post_json(&w, "/api/relay", &genuine, None).await;
    assert_eq!((a.status, a.code()), (409, "bad_sequence"));

    // An oversized prompt is refused before the ledger: no sequence number spent.
    let seq = alice.sequence(&w).await;
    let big = alice.submit(&w, "picture", &"x".repeat(4097));
    let a = alice.send(&w, big).await;
    assert_eq!((a.status, a.code()), (400, "prompt_too_large"));
    assert_eq!(a.body["error"]["param"], "prompt");
    assert_eq!(alice.sequence(&w).await, seq);

    // An unknown node, an unknown model.
    let mut to_nobody = alice.submit(&w, "picture", "hi");
    if let Action::Submit { node, .. } = &mut to_nobody {
        *node = Address([9; 8]);
    }
    let a = alice.send(&w, to_nobody).await;
    assert_eq!((a.status, a.code()), (404, "not_found"));
    assert!(
        a.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("0x0909090909090909")
    );
    let a = alice
        .send(&w, alice.submit(&w, "no-such-model", "hi"))
        .await;
    assert_eq!((a.status, a.code()), (400, "model_not_offered"));

    // An envelope for another ledger, and an account that does not exist.
    let mut other = alice.envelope(&w, Action::Faucet).await;
    other["ledger"] = json!(flownet_core::Digest32([3; 32]));
    let a = post_json(&w, "/api/relay", &other, None).await;
    assert_eq!((a.status, a.code()), (400, "wrong_ledger"));
    let stranger = Browser::new();
    let a = stranger.send(&w, Action::Faucet).await;
    assert_eq!((a.status, a.code()), (404, "not_found"));

    // Not JSON, broken JSON, too big.
    let a = http(
        "POST",
        w.url("/api/relay"),
        vec![("content-type", "text/plain".into())],
        Some(b"{}".to_vec()),
    )
    .await;
    assert_eq!((a.status, a.code()), (415, "unsupported_media_type"));
    let a = http(
        "POST",
        w.url("/api/relay"),
        vec![("content-type", "application/json".into())],
        Some(b"{\"ledger\": ".to_vec()),
    )
    .await;
    assert_eq!((a.status, a.code()), (400, "invalid_envelope"));
    let a = http(
        "POST",
        w.url("/api/relay"),
        vec![("content-type", "application/json".into())],
        Some(vec![b' '; 70 * 1024]),
    )
    .await;
    assert_eq!((a.status, a.code()), (413, "request_too_large"));

    // Bad paths and queries are 4xx with the same error shape.
    for (path, status, code) in [
        ("/api/tasks/abc", 400, "invalid_task_id"),
        ("/api/tasks/999", 404, "not_found"),
        ("/api/tasks/999/events", 404, "not_found"),
        ("/api/accounts/0x12", 400, "invalid_address"),
        ("/api/tasks?status=nope", 400, "invalid_status"),
        ("/api/tasks?limit=-1", 400, "invalid_query"),
        ("/api/blobs/zz", 400, "invalid_sha256"),
        (
            "/api/blobs/0000000000000000000000000000000000000000000000000000000000000000",
            404,
            "not_found",
        ),
        ("/nope", 404, "not_found"),
    ] {
        let a = get(&w, path).await;
        assert_eq!((a.status, a.code()), (status, code), "{path}: {}", a.body);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limits_answer_429_with_retry_after() {
    let w = World::with(Options {
        config: GatewayConfig {
            ip_rate: Rate::new(60, 3),
            ..Options::default().config
        },
        node: false,
        ..Options::default()
    })
    .await;
    for _ in 0..3 {
        assert_eq!(get(&w, "/api/info").await.status, 200);
    }
    let a = get(&w, "/api/info").await;
    assert_eq!((a.status, a.code()), (429, "rate_limit_exceeded"));
    assert_eq!(a.retry_after.as_deref(), Some("1"));
    // The page and health checks are not API calls.
    assert_eq!(get(&w, "/healthz").await.status, 200);
    assert_eq!(get(&w, "/").await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_keys_have_their_own_rate() {
    let w = World::with(Options {
        node: false,
        ..Options::default()
    })
    .await;
    let keys = ApiKeys::new(ApiKeys::path_in(w.dir.path()));
    let (token, _) = keys
        .create("slow", Amount::tokens(1), Rate::new(60, 2), 0)
        .unwrap();
    let models = |t: String| {
        http(
            "GET",
            w.url("/v1/models"),
            vec![("authorization", format!("Bearer {t}"))],
            None,
        )
    };
    assert_eq!(models(token.clone()).await.status, 200);
    assert_eq!(models(token.clone()).await.status, 200);
    let a = models(token).await;
    assert_eq!((a.status, a.code()), (429, "rate_limit_exceeded"));
    assert!(
        a.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("API key")
    );
}

/// Makes an API key whose account is created and, when `faucet`, funded.
async fn api_key(w: &World, max_price: Amount, faucet: bool) -> String {
    let keys = ApiKeys::new(ApiKeys::path_in(w.dir.path()));
    let (token, record) = keys
        .create("test", max_price, Rate::new(600, 100), 0)
        .unwrap();
    let key = SigningKey::from_bytes(&hex_decode(&record.private_key)).unwrap();
    let wallet = Wallet::new(w.ledger.clone() as Arc<dyn Ledger>, key);
    wallet.create_account().await.unwrap();
    if faucet {
        wallet.faucet().await.unwrap();
    }
    token
}

fn hex_decode(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openai_images_are_paid_delivered_and_hash_checked() {
    let w = World::new().await;
    let token = api_key(&w, Amount::tokens(1), true).await;
    let models = http(
        "GET",
        w.url("/v1/models"),
        vec![("authorization", format!("Bearer {token}"))],
        None,
    )
    .await;
    assert_eq!(models.body["object"], "list");
    let ids: Vec<&str> = models.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["picture", "echo"]);

    let a = post_json(
        &w,
        "/v1/images/generations",
        &json!({ "prompt": "a lighthouse", "model": "picture", "n": 2, "response_format": "b64_json" }),
        Some(&token),
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.body);
    let data = a.body["data"].as_array().unwrap();
    assert_eq!(data.len(), 2);
    let mut shas = Vec::new();
    for d in data {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(d["b64_json"].as_str().unwrap())
            .unwrap();
        assert_eq!(
            crypto::sha256(&bytes).to_hex(),
            d["sha256"].as_str().unwrap()
        );
        assert!(d["task_id"].as_u64().is_some() && d["nft_id"].as_u64().is_some());
        assert_eq!(d["node"], w.node.to_string());
        shas.push(d["sha256"].as_str().unwrap().to_owned());
    }
    assert_ne!(shas[0], shas[1], "several images differ by seed");

    // url answers point at the gateway's blob route.
    let a = post_json(
        &w,
        "/v1/images/generations",
        &json!({ "prompt": "a lighthouse", "model": "picture" }),
        Some(&token),
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.body);
    let url = a.body["data"][0]["url"].as_str().unwrap().to_owned();
    assert!(
        url.starts_with(&format!("http://{}/api/blobs/", w.addr)),
        "{url}"
    );
    let img = http("GET", url, vec![], None).await;
    assert_eq!(
        crypto::sha256(&img.bytes).to_hex(),
        a.body["data"][0]["sha256"].as_str().unwrap()
    );
    assert_eq!(
        a.body["data"][0]["sha256"], shas[0],
        "the first of n is the image the prompt alone gives"
    );

    // A text-generation model answers completions.
    let a = post_json(
        &w,
        "/v1/completions",
        &json!({ "model": "echo", "prompt": "say this" }),
        Some(&token),
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.body["choices"][0]["text"], "say this");
    assert_eq!(a.body["object"], "text_completion");

    // The spending shows on the ledger: four tasks of 0.5 each.
    let balance = get(&w, "/api/info").await.body["globals"]["task_count"].clone();
    assert_eq!(balance, 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openai_errors_have_openai_shapes_and_codes() {
    let w = World::new().await;
    let rich = api_key(&w, Amount::tokens(1), true).await;
    let poor = api_key(&w, Amount::tokens(1), false).await;
    let stingy = api_key(&w, Amount(1), true).await;
    let img = |body: Value, key: Option<String>| {
        let w = &w;
        async move { post_json(w, "/v1/images/generations", &body, key.as_deref()).await }
    };
    let prompt = json!({ "prompt": "hills", "model": "picture" });
    let cases: Vec<(Value, Option<String>, u16, &str)> = vec![
        (prompt.clone(), None, 401, "missing_api_key"),
        (
            prompt.clone(),
            Some("fnk_not_a_key".into()),
            401,
            "invalid_api_key",
        ),
        (
            prompt.clone(),
            Some(poor.clone()),
            429,
            "insufficient_quota",
        ),
        (prompt.clone(), Some(stingy.clone()), 400, "price_above_max"),
        (
            json!({ "prompt": "hills", "model": "dall-e-3" }),
            Some(rich.clone()),
            404,
            "model_not_found",
        ),
        (
            json!({ "prompt": "hills", "model": "echo" }),
            Some(rich.clone()),
            400,
            "wrong_model_kind",
        ),
        (
            json!({ "prompt": "", "model": "picture" }),
            Some(rich.clone()),
            400,
            "empty_prompt",
        ),
        (
            json!({ "prompt": "x".repeat(5000) }),
            Some(rich.clone()),
            400,
            "prompt_too_large",
        ),
        (
            json!({ "prompt": "hills", "n": 9 }),
            Some(rich.clone()),
            400,
            "invalid_n",
        ),
        (
            json!({ "prompt": "hills", "size": "1024x1024" }),
            Some(rich.clone()),
            400,
            "invalid_size",
        ),
        (
            json!({ "prompt": "hills", "response_format": "gif" }),
            Some(rich.clone()),
            400,
            "invalid_response_format",
        ),
        (
            json!({ "prompt": "hills", "background": "transparent" }),
            Some(rich.clone()),
            400,
            "unsupported_parameter",
        ),
        (
            json!({ "model": "picture" }),
            Some(rich.clone()),
            400,
            "empty_prompt",
        ),
    ];
    for (body, key, status, code) in cases {
        let a = img(body.clone(), key).await;
        assert_eq!((a.status, a.code()), (status, code), "{body}: {}", a.body);
        let e = &a.body["error"];
        assert!(e["message"].as_str().is_some_and(|m| !m.is_empty()) && e["type"].is_string());
    }
    let a = post_json(
        &w,
        "/v1/embeddings",
        &json!({ "input": "hello" }),
        Some(&rich),
    )
    .await;
    assert_eq!((a.status, a.code()), (404, "model_not_found"));
    assert!(
        a.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("embedding")
    );
    let a = post_json(
        &w,
        "/v1/chat/completions",
        &json!({ "model": "picture", "messages": [{ "role": "user", "content": "hi" }] }),
        Some(&rich),
    )
    .await;
    assert_eq!((a.status, a.code()), (400, "wrong_model_kind"));
    let a = post_json(
        &w,
        "/v1/chat/completions",
        &json!({ "model": "nope", "messages": [{ "role": "user", "content": "hi" }] }),
        Some(&rich),
    )
    .await;
    assert_eq!((a.status, a.code()), (404, "model_not_found"));
    let a = post_json(
        &w,
        "/v1/chat/completions",
        &json!({ "model": "echo", "messages": [] }),
        Some(&rich),
    )
    .await;
    assert_eq!((a.status, a.code()), (400, "invalid_messages"));
    // Nothing was paid for by any refused request.
    assert_eq!(get(&w, "/api/info").await.body["globals"]["task_count"], 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_nobody_serves_times_out_and_is_refunded() {
    let w = World::with(Options {
        node: false,
        config: GatewayConfig {
            task_timeout: Duration::from_millis(300),
            ..Options::default().config
        },
        ..Options::default()
    })
    .await;
    let token = api_key(&w, Amount::tokens(1), true).await;
    let started = Instant::now();
    let a = post_json(
        &w,
        "/v1/images/generations",
        &json!({ "prompt": "hills" }),
        Some(&token),
    )
    .await;
    assert_eq!((a.status, a.code()), (504, "task_timeout"));
    assert!(started.elapsed() < Duration::from_secs(10));
    let task = get(&w, "/api/tasks/1").await;
    assert_eq!(task.body["task"]["status"], "cancelled");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outputs_are_fetched_from_the_node_and_checked_when_not_stored_here() {
    let w = World::with(Options {
        shared_blobs: false,
        ..Options::default()
    })
    .await;
    let alice = Browser::new();
    alice.join(&w).await;
    let r = alice
        .send(&w, alice.submit(&w, "picture", "a bridge"))
        .await;
    let id = r.body["receipt"]["outcome"]["task"].as_u64().unwrap();
    let (_, last) = events(&w, id).await;
    let sha = last["task"]["result"]["sha256"]
        .as_str()
        .unwrap()
        .to_owned();
    let a = get(&w, &format!("/api/blobs/{sha}")).await;
    assert_eq!(a.status, 404, "not stored here, and no task to find it by");
    let a = get(&w, &format!("/api/blobs/{sha}?task={id}")).await;
    assert_eq!(a.status, 200);
    assert_eq!(crypto::sha256(&a.bytes).to_hex(), sha);
    // The node loses the bytes (a tampered file reads as missing): a clear 502.
    std::fs::write(
        w.node_blobs
            .path(&flownet_core::Digest32::from_hex(&sha).unwrap()),
        b"not the output",
    )
    .unwrap();
    let a = get(&w, &format!("/api/blobs/{sha}?task={id}")).await;
    assert_eq!((a.status, a.code()), (502, "node_did_not_deliver"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_health_host_and_cors() {
    let w = World::with(Options {
        config: GatewayConfig {
            cors_origins: vec!["http://app.example".into()],
            ..Options::default().config
        },
        ..Options::default()
    })
    .await;
    let alice = Browser::new();
    alice.join(&w).await;
    let r = alice.send(&w, alice.submit(&w, "picture", "dunes")).await;
    let id = r.body["receipt"]["outcome"]["task"].as_u64().unwrap();
    events(&w, id).await;
    assert_eq!(get(&w, "/healthz").await.bytes, b"ok");
    let text = String::from_utf8(get(&w, "/metrics").await.bytes).unwrap();
    for needle in [
        "flownet_tasks{status=\"fulfilled\"} 1\n",
        "flownet_http_requests_total{route=\"/api/relay\",method=\"POST\",code=\"200\"} 3\n",
        "flownet_relayed_envelopes_total{action=\"submit\",result=\"accepted\"} 1\n",
        "flownet_submit_to_delivery_seconds_count 1\n",
        "flownet_inference_seconds_count{model=\"picture\"} 1\n",
    ] {
        assert!(text.contains(needle), "{needle} not in\n{text}");
    }
    // Another site's name pointed at this address is refused.
    let a = http(
        "GET",
        w.url("/api/info"),
        vec![("host", "attacker.example".into())],
        None,
    )
    .await;
    assert_eq!((a.status, a.code()), (421, "host_not_allowed"));
    // CORS answers only the configured origin.
    let allowed = http(
        "GET",
        w.url("/api/info"),
        vec![("origin", "http://app.example".into())],
        None,
    )
    .await;
    assert_eq!(allowed.cors.as_deref(), Some("http://app.example"));
    let other = http(
        "GET",
        w.url("/api/info"),
        vec![("origin", "http://else.example".into())],
        None,
    )
    .await;
    assert_eq!(other.cors, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopping_ends_open_event_streams_and_the_server() {
    let mut w = World::with(Options {
        node: false,
        ..Options::default()
    })
    .await;
    let alice = Browser::new();
    alice.join(&w).await;
    let r = alice
        .send(&w, alice.submit(&w, "picture", "never served"))
        .await;
    let id = r.body["receipt"]["outcome"]["task"].as_u64().unwrap();
    let stream = tokio::spawn({
        let url = w.url(&format!("/api/tasks/{id}/events"));
        async move { events_at(url).await }
    });
    // The stream is open and has said "submitted"; nothing else will come.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!stream.is_finished());
    let started = Instant::now();
    w.stop.send(true).unwrap();
    let (steps, _) = tokio::time::timeout(Duration::from_secs(10), stream)
        .await
        .expect("the stream ends when the gateway stops")
        .unwrap();
    assert_eq!(steps, ["submitted"]);
    tokio::time::timeout(Duration::from_secs(10), w.server.take().unwrap())
        .await
        .expect("the server stops with a stream open")
        .unwrap()
        .unwrap();
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_overdue_task_says_so_and_its_requester_expires_it() {
    let clock = Arc::new(flownet_chain::ManualClock::new(1_000_000));
    let w = World::with(Options {
        node: false,
        clock: Some(clock.clone()),
        ..Options::default()
    })
    .await;
    let alice = Browser::new();
    alice.join(&w).await;
    let r = alice
        .send(&w, alice.submit(&w, "picture", "nobody home"))
        .await;
    let id = r.body["receipt"]["outcome"]["task"].as_u64().unwrap();
    let stream = tokio::spawn({
        let url = w.url(&format!("/api/tasks/{id}/events"));
        async move { events_at(url).await }
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    // Past the claim window: the stream says "overdue", the requester expires the task.
    clock.advance(LedgerConfig::default().claim_window_s + 1);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let a = alice.send(&w, Action::Expire { task: id }).await;
    assert_eq!(a.status, 200, "{}", a.body);
    let (steps, last) = tokio::time::timeout(Duration::from_secs(10), stream)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(steps, ["submitted", "overdue", "expired"]);
    assert_eq!(last["task"]["status"], "expired");
    assert_eq!(
        get(&w, &format!("/api/accounts/{}", alice.address))
            .await
            .body["balance"],
        "1000",
        "the escrow came back"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cors_is_closed_by_default() {
    let w = World::with(Options {
        node: false,
        ..Options::default()
    })
    .await;
    let a = http(
        "GET",
        w.url("/api/info"),
        vec![("origin", "http://app.example".into())],
        None,
    )
    .await;
    assert_eq!(a.status, 200);
    assert_eq!(a.cors, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_flow_routes_say_this_gateway_is_not_on_flow() {
    let w = World::with(Options {
        node: false,
        ..Options::default()
    })
    .await;
    assert_eq!(get(&w, "/api/info").await.body["network"], "embedded");
    for a in [
        get(&w, "/api/flow/config").await,
        get(&w, "/api/flow/access/v1/blocks?height=sealed").await,
        post_json(&w, "/api/flow/sign", &json!({}), None).await,
        post_json(
            &w,
            "/api/flow/transaction",
            &json!({"action": {"type": "faucet"}}),
            None,
        )
        .await,
    ] {
        assert_eq!(a.status, 404, "{}", a.body);
        assert!(
            a.body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("embedded ledger, not Flow"),
            "{}",
            a.body
        );
    }
}

/// The envelopes the page's TypeScript encoder is checked against
/// (web/test/vectors.json): canonical bytes, the SHA-256 the browser signs, the address
/// of the key and a signature by the Rust signer that WebCrypto must accept. Set
/// FLOWNET_WRITE_VECTORS=1 to rewrite the file after a deliberate encoding change.
#[test]
fn browser_test_vectors_match_the_core() {
    let key = SigningKey::from_bytes(&[0x42; 32]).unwrap();
    let signer = Address::derive(&key.public_key());
    let ledger = flownet_core::Digest32([0x11; 32]);
    let actions = vec![
        Action::CreateAccount {
            public_key: key.public_key(),
            hash_algo: HashAlgo::Sha2_256,
        },
        Action::CreateAccount {
            public_key: key.public_key(),
            hash_algo: HashAlgo::Sha3_256,
        },
        Action::Faucet,
        Action::Transfer {
            to: Address([0xab; 8]),
            amount: Amount(123_456_789),
        },
        Action::RegisterNode {
            name: "nœud ☃".into(),
            endpoint: "http://127.0.0.1:7070".into(),
            models: vec![OfferedModel {
                model_id: "terrain-diffusion-128".into(),
                weights_sha256: flownet_core::Digest32([7; 32]),
                price: Amount(50_000_000),
                unit: flownet_core::PriceUnit::Task,
            }],
        },
        Action::SetNodeActive { active: false },
        Action::Submit {
            node: Address([1, 2, 3, 4, 5, 6, 7, 8]),
            model_id: "terrain-diffusion-128".into(),
            prompt: "jagged peaks 🏔 over a valley".into(),
            params: "{\"difficulty\":80}".into(),
            // The largest integer a JSON number keeps exactly in JavaScript.
            max_price: Amount(9_007_199_254_740_991),
            input: None,
            max_units: 0,
        },
        Action::Cancel { task: 1 },
        Action::Claim { task: 2 },
        Action::Fulfil {
            task: 3,
            result: flownet_core::OutputRef {
                sha256: flownet_core::Digest32([9; 32]),
                uri: "http://127.0.0.1:7070/blobs/0909".into(),
                mime: "image/png".into(),
                size: 31202,
            },
            units: None,
        },
        // Offers priced per 1,000 tokens, a submission with an input and a token
        // limit, and a fulfilment that states its units.
        Action::RegisterNode {
            name: "llm".into(),
            endpoint: "http://127.0.0.1:7071".into(),
            models: vec![
                OfferedModel {
                    model_id: "smollm2-135m-instruct".into(),
                    weights_sha256: flownet_core::Digest32([8; 32]),
                    price: Amount(2_000_000),
                    unit: flownet_core::PriceUnit::ThousandTokens,
                },
                OfferedModel {
                    model_id: "terrain-diffusion-128".into(),
                    weights_sha256: flownet_core::Digest32([7; 32]),
                    price: Amount(50_000_000),
                    unit: flownet_core::PriceUnit::Task,
                },
            ],
        },
        Action::Submit {
            node: Address([1, 2, 3, 4, 5, 6, 7, 8]),
            model_id: "smollm2-135m-instruct".into(),
            prompt: "sha256:0a0a".into(),
            params: "{\"temperature\":0}".into(),
            max_price: Amount(512_000),
            input: Some(flownet_core::InputRef {
                sha256: flownet_core::Digest32([10; 32]),
                size: 70_000,
                uri: "http://127.0.0.1:8080/api/blobs/0a0a".into(),
            }),
            max_units: 256,
        },
        Action::Submit {
            node: Address([1, 2, 3, 4, 5, 6, 7, 8]),
            model_id: "smollm2-135m-instruct".into(),
            prompt: "hi".into(),
            params: "{}".into(),
            max_price: Amount(512_000),
            input: None,
            max_units: 9_007_199_254_740_991,
        },
        Action::Fulfil {
            task: 6,
            result: flownet_core::OutputRef {
                sha256: flownet_core::Digest32([11; 32]),
                uri: "http://127.0.0.1:7071/blobs/0b0b".into(),
                mime: "application/json".into(),
                size: 120,
            },
            units: Some(42),
        },
        Action::Expire { task: 4 },
        Action::Rate { task: 5, stars: 4 },
        Action::Sweep {
            task: 9_007_199_254_740_991,
        },
    ];
    let envelopes: Vec<Value> = actions
        .into_iter()
        .enumerate()
        .map(|(i, action)| {
            let env = Envelope {
                ledger,
                signer,
                sequence: i as u64 * 1_000_003,
                action,
            };
            let signed = env.clone().sign_with(&key, HashAlgo::Sha2_256);
            assert!(signed.verify_with(&key.public_key(), HashAlgo::Sha2_256));
            json!({
                "envelope": env,
                "canonical_hex": hex::encode(env.canonical_bytes()),
                "sha256_of_message": hex::encode(env.signing_digest_with(HashAlgo::Sha2_256)),
                "signature": signed.signature,
            })
        })
        .collect();
    let vectors = json!({
        "comment": "made by flownet-cli/tests/it/web.rs browser_test_vectors_match_the_core; checked there and by web/test/encoding.test.ts",
        "private_key": hex::encode(key.to_bytes()),
        "public_key": key.public_key(),
        "address": signer,
        "envelopes": envelopes,
    });
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../web/test/vectors.json");
    let text = serde_json::to_string_pretty(&vectors).unwrap() + "\n";
    if std::env::var_os("FLOWNET_WRITE_VECTORS").is_some() {
        std::fs::write(&path, &text).unwrap();
    }
    let committed = std::fs::read_to_string(&path).expect("web/test/vectors.json");
    assert_eq!(
        serde_json::from_str::<Value>(&committed).unwrap(),
        vectors,
        "the core's encoding changed: rerun with FLOWNET_WRITE_VECTORS=1 and check the page's encoder"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_finishes_its_headers_is_cut_off() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let w = World::with(Options {
        config: GatewayConfig {
            header_timeout: Duration::from_secs(1),
            ..Options::default().config
        },
        node: false,
        ..Options::default()
    })
    .await;
    let host = w
        .url("/")
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_owned();
    let mut slow = tokio::net::TcpStream::connect(&host).await.unwrap();
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        .await
        .unwrap();
    // The server closes the connection (EOF, or a 408 and then EOF) instead of
    // waiting for the rest of the headers forever.
    let mut got = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(15), slow.read_to_end(&mut got)).await;
    assert!(closed.is_ok(), "the connection is still open after 15 s");
    assert!(
        got.is_empty() || String::from_utf8_lossy(&got).starts_with("HTTP/1.1 408"),
        "{}",
        String::from_utf8_lossy(&got)
    );
    // A client that sends its request in time is served meanwhile.
    assert_eq!(get(&w, "/healthz").await.bytes, b"ok");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_node_ranked_first_is_skipped_after_the_claim_wait_and_paid_nothing() {
    let w = World::with(Options {
        config: GatewayConfig {
            claim_wait: Duration::from_millis(500),
            ..Options::default().config
        },
        ..Options::default()
    })
    .await;
    // A node that never runs, cheaper than the live one: with no record on either,
    // the cheaper ranks first, so the gateway pays it first.
    let dead = Wallet::new(w.ledger.clone() as Arc<dyn Ledger>, SigningKey::generate());
    dead.ensure_funded().await.unwrap();
    dead.register_node(
        "dead node",
        "http://127.0.0.1:9",
        vec![OfferedModel {
            model_id: "picture".into(),
            weights_sha256: crypto::sha256(b"picture weights"),
            price: "0.4".parse().unwrap(),
            unit: flownet_core::PriceUnit::Task,
        }],
    )
    .await
    .unwrap();
    let nodes = w.ledger.nodes().await.unwrap();
    assert_eq!(nodes[0].owner, dead.address(), "the dead node ranks first");
    let token = api_key(&w, Amount::tokens(1), true).await;
    let a = post_json(
        &w,
        "/v1/images/generations",
        &json!({ "prompt": "hills", "response_format": "b64_json" }),
        Some(&token),
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.body);
    let first = w.ledger.task(1).await.unwrap().unwrap();
    assert_eq!(first.node, dead.address());
    assert_eq!(first.status, flownet_core::TaskStatus::Cancelled);
    assert_eq!(first.refunded, first.price);
    let second = w.ledger.task(2).await.unwrap().unwrap();
    assert_eq!(second.node, w.node);
    assert_eq!(second.status, flownet_core::TaskStatus::Fulfilled);
    // Paid once: the live node's price, the dead node's escrow back.
    let requester = w.ledger.account(first.requester).await.unwrap().unwrap();
    assert_eq!(
        requester.balance,
        Amount::tokens(1000).checked_sub(second.price).unwrap()
    );
    // The dead node is now below: its unclaimed task is not a miss (it was cancelled),
    // but the live node has a record.
    let nodes = w.ledger.nodes().await.unwrap();
    assert_eq!(nodes[0].owner, w.node);
}

/// A POST that may time out on the client's side (`None` then), with extra headers.
async fn post_within(
    w: &World,
    path: &str,
    body: &Value,
    headers: Vec<(&'static str, String)>,
    timeout: Duration,
) -> Option<(u16, Option<String>, Value)> {
    let url = w.url(path);
    let body = serde_json::to_vec(body).unwrap();
    tokio::task::spawn_blocking(move || {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(timeout))
            .build()
            .into();
        let mut r = agent.post(&url).header("content-type", "application/json");
        for (k, v) in &headers {
            r = r.header(*k, v);
        }
        let mut resp = r.send(body).ok()?;
        let replayed = resp
            .headers()
            .get("idempotent-replayed")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let bytes = resp
            .body_mut()
            .with_config()
            .limit(64 << 20)
            .read_to_vec()
            .ok()?;
        Some((
            resp.status().as_u16(),
            replayed,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        ))
    })
    .await
    .unwrap()
}

async fn task_count(w: &World) -> u64 {
    w.ledger.info().await.unwrap().globals.task_count
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_with_the_same_idempotency_key_pays_once_and_gets_the_first_answer() {
    let w = World::new().await;
    let token = api_key(&w, Amount::tokens(1), true).await;
    let auth = ("authorization", format!("Bearer {token}"));
    let body = json!({ "prompt": "slow hills", "response_format": "b64_json" });
    let with_key = |k: &str| vec![auth.clone(), ("idempotency-key", k.to_owned())];
    // The client gives up before the node delivers; the run goes on without it.
    let first = post_within(
        &w,
        "/v1/images/generations",
        &body,
        with_key("k1"),
        Duration::from_millis(300),
    )
    .await;
    assert!(first.is_none(), "the first call should time out: {first:?}");
    let (status, replayed, answer) = post_within(
        &w,
        "/v1/images/generations",
        &body,
        with_key("k1"),
        Duration::from_secs(20),
    )
    .await
    .unwrap();
    assert_eq!(status, 200, "{answer}");
    assert_eq!(replayed.as_deref(), Some("true"));
    assert_eq!(task_count(&w).await, 1, "the retry paid again");
    // Again later: the same answer, still one task.
    let (_, _, again) = post_within(
        &w,
        "/v1/images/generations",
        &body,
        with_key("k1"),
        Duration::from_secs(20),
    )
    .await
    .unwrap();
    assert_eq!(again["data"], answer["data"]);
    assert_eq!(task_count(&w).await, 1);
    // The same key for another request is refused; a new key is a new request.
    let other = json!({ "prompt": "slow lakes", "response_format": "b64_json" });
    let (status, _, refused) = post_within(
        &w,
        "/v1/images/generations",
        &other,
        with_key("k1"),
        Duration::from_secs(20),
    )
    .await
    .unwrap();
    assert_eq!(
        (status, refused["error"]["code"].as_str()),
        (422, Some("idempotency_key_reused"))
    );
    let (status, replayed, _) = post_within(
        &w,
        "/v1/images/generations",
        &other,
        with_key("k2"),
        Duration::from_secs(20),
    )
    .await
    .unwrap();
    assert_eq!((status, replayed), (200, None));
    assert_eq!(task_count(&w).await, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sdks_own_retries_of_a_timed_out_request_pay_once() {
    let w = World::new().await;
    let token = api_key(&w, Amount::tokens(1), true).await;
    let auth = ("authorization", format!("Bearer {token}"));
    let body = json!({ "prompt": "slow dunes", "response_format": "b64_json" });
    let attempt = |n: u32| vec![auth.clone(), ("x-stainless-retry-count", n.to_string())];
    // As the openai SDKs send them: the first try says 0, each retry its number.
    assert!(
        post_within(
            &w,
            "/v1/images/generations",
            &body,
            attempt(0),
            Duration::from_millis(300)
        )
        .await
        .is_none()
    );
    assert!(
        post_within(
            &w,
            "/v1/images/generations",
            &body,
            attempt(1),
            Duration::from_millis(300)
        )
        .await
        .is_none()
    );
    let (status, replayed, _) = post_within(
        &w,
        "/v1/images/generations",
        &body,
        attempt(2),
        Duration::from_secs(20),
    )
    .await
    .unwrap();
    assert_eq!((status, replayed.as_deref()), (200, Some("true")));
    assert_eq!(task_count(&w).await, 1, "a retry paid again");
    // A new first try with the same body is a new request: it pays.
    let (status, replayed, _) = post_within(
        &w,
        "/v1/images/generations",
        &body,
        attempt(0),
        Duration::from_secs(20),
    )
    .await
    .unwrap();
    assert_eq!((status, replayed), (200, None));
    assert_eq!(task_count(&w).await, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_goes_away_gets_its_open_task_cancelled_and_refunded() {
    let w = World::with(Options {
        node: false,
        ..Options::default()
    })
    .await;
    let token = api_key(&w, Amount::tokens(1), true).await;
    let auth = vec![("authorization", format!("Bearer {token}"))];
    let body = json!({ "prompt": "hills" });
    let gone = post_within(
        &w,
        "/v1/images/generations",
        &body,
        auth,
        Duration::from_millis(300),
    )
    .await;
    assert!(gone.is_none());
    let started = Instant::now();
    loop {
        let t = w.ledger.task(1).await.unwrap().unwrap();
        if t.status == flownet_core::TaskStatus::Cancelled {
            assert_eq!(t.refunded, t.price);
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "task 1 is still {}",
            t.status
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
