//! Chat through the OpenAI-compatible API, paid per token, on loopback: a node worker
//! that streams its answers from its own HTTP server and fetches task inputs over
//! HTTP, and a gateway with a blob store of its own (nothing shared but the ledger).

use std::{
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::Duration,
};

use async_trait::async_trait;
use flownet_chain::EmbeddedLedger;
use flownet_core::{
    Amount, BlobStore, Engine, FinishReason, Generation, GenerationFold, InferenceOutput,
    InferenceRequest, Ledger, LedgerConfig, ModelInfo, NodeWorker, OfferedModel, PriceUnit,
    SigningKey, StreamChunk, TaskKind, Usage, Wallet, crypto,
};
use flownet_gateway::{Gateway, GatewayConfig, ModelMeta, keys::ApiKeys, limits::Rate};
use flownet_node::{FetchPolicy, FsBlobStore, HttpFetcher, StreamHub};
use serde_json::{Value, json};
use tokio::sync::watch;

/// A language model in miniature: it answers with the words of the last message,
/// one token each, at most `max_tokens`, streaming them as it goes.
struct Parrot {
    info: ModelInfo,
    inputs: Mutex<Vec<Option<Vec<u8>>>>,
}

impl Parrot {
    fn new() -> Self {
        Self {
            info: ModelInfo {
                id: "parrot".into(),
                kind: TaskKind::TextGeneration,
                name: "parrot".into(),
                weights_sha256: crypto::sha256(b"parrot weights"),
                output_mime: Generation::MIME.into(),
                prompt_mapping: "repeats the last message".into(),
                defaults: json!({}),
            },
            inputs: Mutex::default(),
        }
    }
}

#[async_trait]
impl Engine for Parrot {
    fn models(&self) -> Vec<ModelInfo> {
        vec![self.info.clone()]
    }

    async fn infer(&self, req: InferenceRequest) -> flownet_core::Result<InferenceOutput> {
        self.infer_stream(req, &|_| {}).await
    }

    async fn infer_stream(
        &self,
        req: InferenceRequest,
        sink: &(dyn Fn(StreamChunk) + Send + Sync),
    ) -> flownet_core::Result<InferenceOutput> {
        self.inputs.lock().unwrap().push(req.input.clone());
        let source = match &req.input {
            Some(bytes) => String::from_utf8(bytes.clone()).unwrap(),
            None => req.prompt.clone(),
        };
        let conversation: Value = serde_json::from_str(&source).unwrap();
        let last = conversation["messages"].as_array().unwrap().last().unwrap()["content"]
            .as_str()
            .unwrap()
            .to_owned();
        let max = req.params["max_tokens"].as_u64().unwrap() as usize;
        let words: Vec<&str> = last.split_whitespace().collect();
        let mut fold = GenerationFold::new();
        for (i, w) in words.iter().take(max).enumerate() {
            let text = if i == 0 {
                (*w).to_owned()
            } else {
                format!(" {w}")
            };
            let chunk = StreamChunk::Text { text };
            fold.push(&chunk)?;
            sink(chunk);
            tokio::time::sleep(Duration::from_millis(15)).await;
        }
        let done = StreamChunk::Done {
            finish_reason: if words.len() > max {
                FinishReason::Length
            } else {
                FinishReason::Stop
            },
            usage: Usage {
                prompt_tokens: 7,
                completion_tokens: words.len().min(max) as u64,
            },
        };
        fold.push(&done)?;
        sink(done);
        Ok(InferenceOutput {
            bytes: fold.finish()?.to_bytes(),
            mime: Generation::MIME.into(),
            metadata: json!({}),
        })
    }
}

struct Chat {
    dir: tempfile::TempDir,
    ledger: Arc<EmbeddedLedger>,
    parrot: Arc<Parrot>,
    addr: SocketAddr,
    node_addr: SocketAddr,
    user: Wallet<dyn Ledger>,
    token: String,
    stop: watch::Sender<bool>,
}

impl Drop for Chat {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

/// 2 FLOWNET per 1,000 tokens.
const PRICE: Amount = Amount(200_000_000);

impl Chat {
    async fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let ledger = Arc::new(
            EmbeddedLedger::create(dir.path().join("ledger.db"), LedgerConfig::default()).unwrap(),
        );
        let dyn_ledger: Arc<dyn Ledger> = ledger.clone();
        let parrot = Arc::new(Parrot::new());
        let (stop, stop_rx) = watch::channel(false);
        // The node: its own blob store, its own server with task streams.
        let node_blobs = FsBlobStore::open(dir.path().join("node-blobs")).unwrap();
        let streams = StreamHub::new();
        let (node_addr, _) = flownet_node::spawn_node_server(
            "127.0.0.1:0".parse().unwrap(),
            node_blobs.clone(),
            json!({}),
            streams.clone(),
            stop_rx.clone(),
        )
        .await
        .unwrap();
        let endpoint = format!("http://{node_addr}");
        let node = Arc::new(Wallet::new(dyn_ledger.clone(), SigningKey::generate()));
        node.ensure_funded().await.unwrap();
        node.register_node(
            "parrot node",
            &endpoint,
            vec![OfferedModel {
                model_id: "parrot".into(),
                weights_sha256: parrot.info.weights_sha256,
                price: PRICE,
                unit: PriceUnit::ThousandTokens,
            }],
        )
        .await
        .unwrap();
        let blobs: Arc<dyn BlobStore> = Arc::new(node_blobs);
        let engine: Arc<dyn Engine> = parrot.clone();
        let worker = NodeWorker::new(node.clone(), engine, blobs, endpoint.clone())
            .with_fetcher(Arc::new(HttpFetcher::new(FetchPolicy::for_endpoint(
                &endpoint,
            ))))
            .with_streams(streams);
        // The gateway: a blob store of its own, for the inputs it holds.
        let keys = ApiKeys::new(ApiKeys::path_in(dir.path()));
        let gateway = Gateway::new(
            dyn_ledger.clone(),
            Some(FsBlobStore::open(dir.path().join("gateway-blobs")).unwrap()),
            parrot.models().iter().map(ModelMeta::from_info),
            Some(keys),
            GatewayConfig {
                poll_interval: Duration::from_millis(20),
                task_timeout: Duration::from_secs(20),
                // The nodes of these tests run on loopback.
                fetch_policy: flownet_node::FetchPolicy::LOOPBACK,
                ..GatewayConfig::default()
            },
        )
        .await
        .unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        assert!(addr.ip().is_loopback() && node_addr.ip().is_loopback());
        tokio::spawn(gateway.clone().serve(listener, stop_rx.clone()));
        let gw = gateway.clone();
        let mut worker_stop = stop_rx;
        tokio::spawn(async move {
            let on_event = move |e: &flownet_core::NodeEvent| gw.node_event(e);
            while !*worker_stop.borrow() {
                let _ = worker.tick(&on_event).await;
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_millis(20)) => {}
                    _ = worker_stop.changed() => {}
                }
            }
        });
        let keys = ApiKeys::new(ApiKeys::path_in(dir.path()));
        let (token, record) = keys
            .create("chat", Amount::tokens(5), Rate::new(600, 100), 0)
            .unwrap();
        let key = SigningKey::from_bytes(&hex(&record.private_key)).unwrap();
        let user = Wallet::new(dyn_ledger, key);
        user.create_account().await.unwrap();
        user.faucet().await.unwrap();
        Self {
            dir,
            ledger,
            parrot,
            addr,
            node_addr,
            user,
            token,
            stop,
        }
    }

    async fn balance(&self) -> Amount {
        self.ledger
            .account(self.user.address())
            .await
            .unwrap()
            .unwrap()
            .balance
    }

    /// POSTs `body` to `/v1/chat/completions`: the status and the body's text.
    async fn post(&self, body: Value) -> (u16, String) {
        let url = format!("http://{}/v1/chat/completions", self.addr);
        let token = self.token.clone();
        tokio::task::spawn_blocking(move || {
            let agent: ureq::Agent = ureq::Agent::config_builder()
                .http_status_as_error(false)
                .timeout_global(Some(Duration::from_secs(30)))
                .build()
                .into();
            let mut r = agent
                .post(&url)
                .header("authorization", format!("Bearer {token}"))
                .header("content-type", "application/json")
                .send(serde_json::to_vec(&body).unwrap())
                .unwrap();
            (r.status().as_u16(), r.body_mut().read_to_string().unwrap())
        })
        .await
        .unwrap()
    }
}

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn says(text: &str) -> Value {
    json!([{ "role": "system", "content": "You repeat." }, { "role": "user", "content": text }])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chat_is_answered_and_paid_for_the_tokens_written() {
    let c = Chat::new().await;
    let before = c.balance().await;
    let (status, body) = c
        .post(json!({ "model": "parrot", "messages": says("one two three four five"), "max_tokens": 50 }))
        .await;
    assert_eq!(status, 200, "{body}");
    let a: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(a["object"], "chat.completion");
    assert_eq!(a["choices"][0]["message"]["role"], "assistant");
    assert_eq!(
        a["choices"][0]["message"]["content"],
        "one two three four five"
    );
    assert_eq!(a["choices"][0]["finish_reason"], "stop");
    assert_eq!(a["usage"]["completion_tokens"], 5);
    assert_eq!(a["usage"]["total_tokens"], 12);
    // 50 tokens were escrowed (0.1); 5 were written (0.01); the rest came back.
    assert_eq!(a["flownet"]["units"], 5);
    assert_eq!(a["flownet"]["price"], "0.1");
    assert_eq!(a["flownet"]["cost"], "0.01");
    assert_eq!(a["flownet"]["refunded"], "0.09");
    assert_eq!(
        before.checked_sub(c.balance().await).unwrap(),
        Amount(1_000_000)
    );

    // The limit is the task's: the answer stops there and says so.
    let (status, body) = c
        .post(json!({ "messages": says("a b c d e f"), "max_completion_tokens": 2 }))
        .await;
    assert_eq!(status, 200, "{body}");
    let a: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(a["choices"][0]["message"]["content"], "a b");
    assert_eq!(a["choices"][0]["finish_reason"], "length");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_streamed_chat_relays_the_nodes_tokens_as_they_come() {
    let c = Chat::new().await;
    let words = "the quick brown fox jumps over the lazy dog";
    let (status, body) = c
        .post(json!({
            "model": "parrot",
            "messages": says(words),
            "stream": true,
            "stream_options": { "include_usage": true },
        }))
        .await;
    assert_eq!(status, 200, "{body}");
    let events: Vec<&str> = body
        .split("\n\n")
        .filter_map(|e| e.strip_prefix("data: "))
        .collect();
    assert_eq!(events.last(), Some(&"[DONE]"));
    let chunks: Vec<Value> = events[..events.len() - 1]
        .iter()
        .map(|e| serde_json::from_str(e).unwrap())
        .collect();
    assert!(
        chunks
            .iter()
            .all(|c| c["object"] == "chat.completion.chunk"),
        "{body}"
    );
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    let contents: Vec<&str> = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .filter(|t| !t.is_empty())
        .collect();
    assert_eq!(contents.concat(), words);
    // One chunk per token: relayed from the node's stream, not sent whole at the end.
    assert_eq!(contents.len(), words.split(' ').count(), "{contents:?}");
    let last = chunks
        .iter()
        .rev()
        .find(|c| c["choices"][0]["finish_reason"].is_string())
        .unwrap();
    assert_eq!(last["choices"][0]["finish_reason"], "stop");
    assert_eq!(last["flownet"]["units"], 9);
    let usage = chunks.last().unwrap();
    assert_eq!(usage["choices"], json!([]));
    assert_eq!(usage["usage"]["completion_tokens"], 9);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_conversation_travels_as_an_input_the_node_fetches() {
    let c = Chat::new().await;
    // Far over the ledger's 4,096-byte prompt.
    let history: Vec<Value> = (0..60)
        .flat_map(|i| {
            [
                json!({ "role": "user", "content": format!("question {i}: {}", "lorem ipsum ".repeat(8)) }),
                json!({ "role": "assistant", "content": format!("answer {i}") }),
            ]
        })
        .chain([json!({ "role": "user", "content": "remember this" })])
        .collect();
    let (status, body) = c
        .post(json!({ "model": "parrot", "messages": history, "max_tokens": 10 }))
        .await;
    assert_eq!(status, 200, "{body}");
    let a: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(a["choices"][0]["message"]["content"], "remember this");
    let input = &a["flownet"]["input"];
    assert!(input["size"].as_u64().unwrap() > 4096, "{input}");
    assert_eq!(
        input["uri"],
        format!(
            "http://{}/api/blobs/{}",
            c.addr,
            input["sha256"].as_str().unwrap()
        )
    );
    // The node read the conversation from the gateway over HTTP, not from a shared
    // store: its bytes are what the ledger names.
    let fetched = c
        .parrot
        .inputs
        .lock()
        .unwrap()
        .last()
        .cloned()
        .flatten()
        .unwrap();
    assert_eq!(
        crypto::sha256(&fetched).to_hex(),
        input["sha256"].as_str().unwrap()
    );
    let task_id = a["flownet"]["task_id"].as_u64().unwrap();
    let task = c.ledger.task(task_id).await.unwrap().unwrap();
    assert_eq!(task.input.unwrap().size, fetched.len() as u64);
    assert!(task.prompt.starts_with("sha256:"));
    let _ = (&c.dir, c.node_addr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_are_refused_before_anything_is_paid() {
    let c = Chat::new().await;
    let before = c.balance().await;
    for (body, code, param) in [
        (
            json!({ "messages": says("hi"), "temperature": 5 }),
            "invalid_parameter",
            "temperature",
        ),
        (
            json!({ "messages": says("hi"), "max_tokens": 0 }),
            "invalid_max_tokens",
            "max_tokens",
        ),
        (json!({ "messages": says("hi"), "n": 2 }), "invalid_n", "n"),
        (
            json!({ "messages": [{ "role": "wizard", "content": "hi" }] }),
            "invalid_messages",
            "messages",
        ),
        (json!({ "messages": [] }), "invalid_messages", "messages"),
        (
            json!({ "messages": says("hi"), "tools": [{}] }),
            "unsupported_parameter",
            "tools",
        ),
        (
            json!({ "messages": [{ "role": "user", "content": [{ "type": "image_url", "image_url": {} }] }] }),
            "invalid_messages",
            "messages[0].content",
        ),
    ] {
        let (status, text) = c.post(body.clone()).await;
        let a: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(
            (status, a["error"]["code"].as_str().unwrap()),
            (400, code),
            "{body}: {text}"
        );
        assert_eq!(a["error"]["param"], param, "{body}");
    }
    assert_eq!(c.balance().await, before);
}

impl Chat {
    /// GETs `path` from the gateway: the status and the body's text.
    async fn get(&self, path: &str) -> (u16, String) {
        let url = format!("http://{}{path}", self.addr);
        tokio::task::spawn_blocking(move || {
            let agent: ureq::Agent = ureq::Agent::config_builder()
                .http_status_as_error(false)
                .timeout_global(Some(Duration::from_secs(30)))
                .build()
                .into();
            let mut r = agent.get(&url).call().unwrap();
            (r.status().as_u16(), r.body_mut().read_to_string().unwrap())
        })
        .await
        .unwrap()
    }

    /// Submits a chat the way the page does: the user's own signed Submit, the
    /// conversation as the prompt, `max_units` tokens escrowed.
    async fn submit(&self, text: &str, max_units: u64) -> u64 {
        let node = self.ledger.nodes().await.unwrap().remove(0);
        let conversation = json!({ "messages": says(text) }).to_string();
        let max_price = flownet_core::rules::metered_cost(PRICE, max_units).unwrap();
        self.user
            .submit_action(flownet_core::Action::Submit {
                node: node.owner,
                model_id: "parrot".into(),
                prompt: conversation,
                params: json!({ "max_tokens": max_units }).to_string(),
                max_price,
                input: None,
                max_units,
            })
            .await
            .unwrap()
    }
}

/// The `data:` events of a stream: the JSON chunks, and whether it ended with [DONE].
fn sse_chunks(body: &str) -> (Vec<Value>, bool) {
    let events: Vec<&str> = body
        .split("\n\n")
        .filter_map(|e| e.strip_prefix("data: "))
        .collect();
    let done = events.last() == Some(&"[DONE]");
    let chunks = events
        .iter()
        .filter(|e| **e != "[DONE]")
        .map(|e| serde_json::from_str(e).unwrap())
        .collect();
    (chunks, done)
}

fn contents(chunks: &[Value]) -> Vec<String> {
    chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .filter(|t| !t.is_empty())
        .map(str::to_owned)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_task_streams_its_tokens_then_its_checked_cost() {
    let c = Chat::new().await;
    let words = "seven words of a page chat here";
    let id = c.submit(words, 40).await;
    let (status, body) = c.get(&format!("/api/tasks/{id}/stream")).await;
    assert_eq!(status, 200, "{body}");
    let (chunks, done) = sse_chunks(&body);
    assert!(done, "{body}");
    assert!(chunks.iter().all(|c| c.get("error").is_none()), "{body}");
    let parts = contents(&chunks);
    assert_eq!(parts.concat(), words);
    // Token by token, as the node wrote them.
    assert_eq!(parts.len(), 7, "{parts:?}");
    let last = chunks
        .iter()
        .find(|c| c["choices"][0]["finish_reason"].is_string())
        .unwrap();
    assert_eq!(last["choices"][0]["finish_reason"], "stop");
    let f = &last["flownet"];
    assert_eq!(f["task_id"], id);
    assert_eq!(f["units"], 7);
    // 40 tokens escrowed at 2 per 1,000: 0.08; 7 written: 0.014 paid, 0.066 back.
    assert_eq!(f["price"], "0.08");
    assert_eq!(f["cost"], "0.014");
    assert_eq!(f["refunded"], "0.066");
    let task = c.ledger.task(id).await.unwrap().unwrap();
    let sha = task.result.unwrap().sha256;
    assert_eq!(f["sha256"], sha.to_hex());
    assert_eq!(chunks.last().unwrap()["usage"]["completion_tokens"], 7);

    // Once delivered, the same stream gives the whole checked answer at once.
    let (status, body) = c.get(&format!("/api/tasks/{id}/stream")).await;
    assert_eq!(status, 200, "{body}");
    let (chunks, done) = sse_chunks(&body);
    assert!(done);
    assert_eq!(contents(&chunks), vec![words.to_owned()]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_is_refused_for_a_task_that_is_not_there() {
    let c = Chat::new().await;
    let (status, body) = c.get("/api/tasks/99/stream").await;
    assert_eq!(status, 404, "{body}");
    let (status, body) = c.get("/api/tasks/nope/stream").await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("invalid_task_id"), "{body}");
    assert!(c.addr.ip().is_loopback());
}

impl Chat {
    /// POSTs `body` to `path` with `content_type`: the status and the body's text.
    async fn post_raw(&self, path: &str, content_type: &str, body: Vec<u8>) -> (u16, String) {
        let url = format!("http://{}{path}", self.addr);
        let content_type = content_type.to_owned();
        tokio::task::spawn_blocking(move || {
            let agent: ureq::Agent = ureq::Agent::config_builder()
                .http_status_as_error(false)
                .timeout_global(Some(Duration::from_secs(30)))
                .build()
                .into();
            let mut r = agent
                .post(&url)
                .header("content-type", content_type)
                .send(body)
                .unwrap();
            (r.status().as_u16(), r.body_mut().read_to_string().unwrap())
        })
        .await
        .unwrap()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_holds_a_long_conversation_as_an_input_and_streams_its_answer() {
    let c = Chat::new().await;
    let mut messages: Vec<Value> = (0..40)
        .flat_map(|i| {
            [
                json!({ "role": "user", "content": format!("question {i}: {}", "lorem ipsum ".repeat(8)) }),
                json!({ "role": "assistant", "content": format!("answer {i}") }),
            ]
        })
        .collect();
    messages.push(json!({ "role": "user", "content": "the last question" }));
    let body = serde_json::to_vec(&json!({ "messages": messages })).unwrap();
    assert!(body.len() > 4096);
    let (status, text) = c
        .post_raw("/api/inputs", "application/json", body.clone())
        .await;
    assert_eq!(status, 200, "{text}");
    let input: Value = serde_json::from_str(&text).unwrap();
    let sha = crypto::sha256(&body).to_hex();
    assert_eq!(input["sha256"], sha);
    assert_eq!(input["size"], body.len());
    assert_eq!(input["uri"], format!("http://{}/api/blobs/{sha}", c.addr));
    // The blob is served as it was sent.
    let (status, served) = c.get(&format!("/api/blobs/{sha}")).await;
    assert_eq!(status, 200);
    assert_eq!(served.as_bytes(), &body[..]);
    // And to IPFS tooling, as a raw block under its CID.
    let cid = flownet_core::cid::raw_cid(&crypto::sha256(&body));
    assert_eq!(input["cid"], cid);
    let (status, served) = c.get(&format!("/ipfs/{cid}?format=raw")).await;
    assert_eq!(status, 200);
    assert_eq!(served.as_bytes(), &body[..]);
    assert_eq!(c.get(&format!("/ipfs/{cid}")).await.0, 406);

    // The browser's Submit names it; the node fetches it and the answer streams.
    let node = c.ledger.nodes().await.unwrap().remove(0);
    let id = c
        .user
        .submit_action(flownet_core::Action::Submit {
            node: node.owner,
            model_id: "parrot".into(),
            prompt: format!("sha256:{sha}"),
            params: json!({ "max_tokens": 10 }).to_string(),
            max_price: flownet_core::rules::metered_cost(PRICE, 10).unwrap(),
            input: Some(serde_json::from_value(input).unwrap()),
            max_units: 10,
        })
        .await
        .unwrap();
    let (status, text) = c.get(&format!("/api/tasks/{id}/stream")).await;
    assert_eq!(status, 200, "{text}");
    let (chunks, done) = sse_chunks(&text);
    assert!(done, "{text}");
    assert_eq!(contents(&chunks).concat(), "the last question");
    let fetched = c.parrot.inputs.lock().unwrap().last().cloned().flatten();
    assert_eq!(fetched.as_deref(), Some(&body[..]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_input_store_holds_only_bounded_conversations() {
    let c = Chat::new().await;
    let conversation = br#"{"messages":[{"role":"user","content":"hi"}]}"#.to_vec();
    for (content_type, body, status, code) in [
        (
            "text/plain",
            conversation.clone(),
            415,
            "unsupported_media_type",
        ),
        (
            "application/json",
            b"{\"not\": \"a chat\"}".to_vec(),
            400,
            "invalid_conversation",
        ),
        (
            "application/json",
            br#"{"messages":[{"role":"wizard","content":"hi"}]}"#.to_vec(),
            400,
            "invalid_conversation",
        ),
        ("application/json", b"[1, 2".to_vec(), 400, "invalid_json"),
        (
            "application/json",
            serde_json::to_vec(
                &json!({ "messages": [{ "role": "user", "content": "x".repeat(70 * 1024) }] }),
            )
            .unwrap(),
            413,
            "request_too_large",
        ),
    ] {
        let (got, text) = c.post_raw("/api/inputs", content_type, body).await;
        assert_eq!(got, status, "{text}");
        let e: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(e["error"]["code"], code, "{text}");
    }
    let (status, text) = c
        .post_raw("/api/inputs", "application/json", conversation)
        .await;
    assert_eq!(status, 200, "{text}");

    // Images for the models that read one: past the body limit (up to their own), and
    // only what decodes.
    let mut noise = image::RgbImage::new(200, 200);
    for (i, p) in noise.pixels_mut().enumerate() {
        *p = image::Rgb([(i * 7) as u8, (i * 13 / 3) as u8, (i * 31 % 251) as u8]);
    }
    let mut png = Vec::new();
    noise
        .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .unwrap();
    assert!(png.len() > 64 * 1024, "{} bytes", png.len());
    let (status, text) = c.post_raw("/api/inputs", "image/png", png.clone()).await;
    assert_eq!(status, 200, "{text}");
    let held: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        (held["width"].as_u64(), held["height"].as_u64()),
        (Some(200), Some(200))
    );
    assert_eq!(held["size"].as_u64(), Some(png.len() as u64));
    assert_eq!(
        held["sha256"].as_str().unwrap(),
        flownet_core::crypto::sha256(&png).to_hex()
    );
    for (body, status, code) in [
        (b"not a png".to_vec(), 400, "invalid_image"),
        (vec![0x89; 5 * 1024 * 1024], 413, "request_too_large"),
    ] {
        let (got, text) = c.post_raw("/api/inputs", "image/png", body).await;
        assert_eq!(got, status, "{text}");
        let e: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(e["error"]["code"], code, "{text}");
    }
}
