use std::sync::{Arc, Mutex};

use flownet_core::{
    Amount, Engine, Ledger, LedgerConfig, NodeEvent, NodeWorker, OfferedModel, TaskStatus, Wallet,
    memory::{EchoEngine, MemoryBlobs, MemoryLedger},
};

struct Setup {
    ledger: Arc<MemoryLedger>,
    engine: Arc<EchoEngine>,
    blobs: Arc<MemoryBlobs>,
    node: Arc<Wallet<MemoryLedger>>,
    node_key: flownet_core::SigningKey,
    user: Wallet<MemoryLedger>,
}

async fn setup() -> Setup {
    let ledger = Arc::new(MemoryLedger::new(LedgerConfig::default(), 1_000));
    let engine = Arc::new(EchoEngine::new("echo"));
    let node_key = flownet_core::SigningKey::generate();
    let node = Arc::new(Wallet::new(ledger.clone(), node_key.clone()));
    node.ensure_funded().await.unwrap();
    let m = &engine.models()[0];
    node.register_node(
        "echo node",
        "http://127.0.0.1:9",
        vec![OfferedModel {
            model_id: m.id.clone(),
            weights_sha256: m.weights_sha256,
            price: Amount::tokens(1),
            unit: flownet_core::PriceUnit::Task,
        }],
    )
    .await
    .unwrap();
    let user = Wallet::new(ledger.clone(), flownet_core::SigningKey::generate());
    user.ensure_funded().await.unwrap();
    Setup {
        ledger,
        engine,
        blobs: Arc::new(MemoryBlobs::default()),
        node,
        node_key,
        user,
    }
}

fn collect() -> (
    Arc<Mutex<Vec<NodeEvent>>>,
    impl Fn(&NodeEvent) + Send + Sync,
) {
    let events = Arc::new(Mutex::new(Vec::new()));
    let sink = events.clone();
    (events, move |e: &NodeEvent| {
        sink.lock().unwrap().push(e.clone())
    })
}

#[tokio::test]
async fn the_worker_claims_runs_stores_and_fulfils() {
    let s = setup().await;
    let id = s
        .user
        .submit(s.node.address(), "echo", "hello", "{}", Amount::tokens(1))
        .await
        .unwrap();
    let worker = NodeWorker::new(
        s.node.clone(),
        s.engine.clone(),
        s.blobs.clone(),
        "http://127.0.0.1:9/",
    );
    let (events, sink) = collect();
    assert_eq!(worker.tick(&sink).await.unwrap(), 1);
    let task = s.ledger.task(id).await.unwrap().unwrap();
    assert_eq!(task.status, TaskStatus::Fulfilled);
    let out = task.result.unwrap();
    assert_eq!(out.uri, format!("http://127.0.0.1:9/blobs/{}", out.sha256));
    use flownet_core::BlobStore;
    assert_eq!(s.blobs.get(&out.sha256).unwrap().unwrap(), b"hello");
    assert!(
        matches!(events.lock().unwrap().last(), Some(NodeEvent::Delivered { paid, .. }) if *paid == Amount(90_000_000))
    );
    // Nothing left to do.
    assert_eq!(worker.tick(&sink).await.unwrap(), 0);
    assert_eq!(*s.engine.calls.lock().unwrap(), 1);
}

#[tokio::test]
async fn a_restarted_worker_resumes_a_claimed_task_without_rerunning_the_model() {
    let s = setup().await;
    let id = s
        .user
        .submit(
            s.node.address(),
            "echo",
            "resume me",
            "{}",
            Amount::tokens(1),
        )
        .await
        .unwrap();
    // A first process claimed, ran and stored the output, then crashed before fulfilling.
    s.node.claim(id).await.unwrap();
    use flownet_core::BlobStore;
    let sha = s.blobs.put(b"resume me").unwrap();
    s.blobs
        .record_delivery(
            id,
            &flownet_core::OutputRef {
                sha256: sha,
                uri: format!("http://n/blobs/{sha}"),
                mime: "text/plain".into(),
                size: 9,
            },
        )
        .unwrap();
    let worker = NodeWorker::new(
        s.node.clone(),
        s.engine.clone(),
        s.blobs.clone(),
        "http://n",
    );
    let (_events, sink) = collect();
    assert_eq!(worker.tick(&sink).await.unwrap(), 1);
    assert_eq!(
        s.ledger.task(id).await.unwrap().unwrap().status,
        TaskStatus::Fulfilled
    );
    assert_eq!(*s.engine.calls.lock().unwrap(), 0, "the model ran twice");
}

#[tokio::test]
async fn a_failing_model_is_retried_then_declined_and_refunded() {
    let s = setup().await;
    let id = s
        .user
        .submit(s.node.address(), "echo", "fail", "{}", Amount::tokens(1))
        .await
        .unwrap();
    let worker = NodeWorker::new(
        s.node.clone(),
        s.engine.clone(),
        s.blobs.clone(),
        "http://n",
    );
    let (events, sink) = collect();
    for _ in 0..5 {
        assert_eq!(worker.tick(&sink).await.unwrap(), 0);
    }
    assert_eq!(
        *s.engine.calls.lock().unwrap(),
        u64::from(flownet_core::node::MAX_ATTEMPTS)
    );
    let failures = events
        .lock()
        .unwrap()
        .iter()
        .filter(|e| matches!(e, NodeEvent::Failed { .. }))
        .count();
    assert_eq!(failures, flownet_core::node::MAX_ATTEMPTS as usize);
    let task = s.ledger.task(id).await.unwrap().unwrap();
    assert_eq!(task.status, TaskStatus::Declined);
    assert!(
        task.declined_reason
            .as_deref()
            .is_some_and(|r| r.contains("asked to fail")),
        "{:?}",
        task.declined_reason
    );
    assert_eq!(task.refunded, Amount::tokens(1));
    let stats = s
        .ledger
        .node(s.node.address())
        .await
        .unwrap()
        .unwrap()
        .stats;
    assert_eq!((stats.declined, stats.missed), (1, 0));
    assert!(
        events
            .lock()
            .unwrap()
            .iter()
            .any(|e| matches!(e, NodeEvent::Declined { task, .. } if *task == id))
    );
}

#[tokio::test]
async fn bad_input_is_declined_at_the_first_try() {
    let s = setup().await;
    let before = s
        .ledger
        .account(s.user.address())
        .await
        .unwrap()
        .unwrap()
        .balance;
    let id = s
        .user
        .submit(
            s.node.address(),
            "echo",
            "bad input",
            "{}",
            Amount::tokens(1),
        )
        .await
        .unwrap();
    let worker = NodeWorker::new(
        s.node.clone(),
        s.engine.clone(),
        s.blobs.clone(),
        "http://n",
    );
    let (_events, sink) = collect();
    assert_eq!(worker.tick(&sink).await.unwrap(), 0);
    assert_eq!(*s.engine.calls.lock().unwrap(), 1);
    let task = s.ledger.task(id).await.unwrap().unwrap();
    assert_eq!(task.status, TaskStatus::Declined);
    let after = s
        .ledger
        .account(s.user.address())
        .await
        .unwrap()
        .unwrap()
        .balance;
    assert_eq!(after, before, "the escrow came back at once");
}

#[tokio::test]
async fn the_worker_declines_tasks_for_weights_it_does_not_run() {
    let s = setup().await;
    // The node re-registers the model with other weights than its engine has.
    s.node
        .register_node(
            "echo node",
            "http://n",
            vec![OfferedModel {
                model_id: "echo".into(),
                weights_sha256: flownet_core::Digest32([5; 32]),
                price: Amount::tokens(1),
                unit: flownet_core::PriceUnit::Task,
            }],
        )
        .await
        .unwrap();
    let id = s
        .user
        .submit(s.node.address(), "echo", "hi", "{}", Amount::tokens(1))
        .await
        .unwrap();
    let worker = NodeWorker::new(
        s.node.clone(),
        s.engine.clone(),
        s.blobs.clone(),
        "http://n",
    );
    let (events, sink) = collect();
    assert_eq!(worker.tick(&sink).await.unwrap(), 0);
    let task = s.ledger.task(id).await.unwrap().unwrap();
    assert_eq!(task.status, TaskStatus::Declined);
    assert!(task.declined_reason.unwrap().contains("weights"));
    assert_eq!(*s.engine.calls.lock().unwrap(), 0, "the model ran");
    assert!(
        events
            .lock()
            .unwrap()
            .iter()
            .any(|e| matches!(e, NodeEvent::Declined { .. }))
    );
}

#[tokio::test]
async fn each_tick_reads_only_tasks_after_those_it_is_done_with() {
    let s = setup().await;
    let worker = NodeWorker::new(
        s.node.clone(),
        s.engine.clone(),
        s.blobs.clone(),
        "http://n",
    );
    let (events, sink) = collect();
    let submit = |prompt: &'static str| {
        let user = &s.user;
        let node = s.node.address();
        async move {
            user.submit(node, "echo", prompt, "{}", Amount::tokens(1))
                .await
                .unwrap()
        }
    };
    assert_eq!(worker.floor(), 0);
    // Delivered: the floor passes it once a tick has seen it settled.
    let t1 = submit("hello").await;
    assert_eq!(worker.tick(&sink).await.unwrap(), 1);
    assert_eq!(worker.floor(), t1 - 1, "t1 was still to act on when read");
    assert_eq!(worker.tick(&sink).await.unwrap(), 0);
    assert_eq!(worker.floor(), t1);
    // A failing task holds the floor below it while attempts are left.
    let t2 = submit("fail").await;
    let t3 = submit("after the failing one").await;
    assert_eq!(worker.tick(&sink).await.unwrap(), 1, "t3 is served anyway");
    assert_eq!(worker.floor(), t2 - 1);
    for _ in 1..flownet_core::node::MAX_ATTEMPTS {
        worker.tick(&sink).await.unwrap();
    }
    worker.tick(&sink).await.unwrap();
    assert_eq!(worker.floor(), t3, "out of attempts on t2, t3 delivered");
    // A task left open past its claim deadline is passed over, never claimed; a
    // later one is served.
    let t4 = submit("too late").await;
    s.ledger.advance(301);
    let t5 = submit("in time").await;
    assert_eq!(worker.tick(&sink).await.unwrap(), 1);
    assert_eq!(
        s.ledger.task(t4).await.unwrap().unwrap().status,
        TaskStatus::Open
    );
    assert_eq!(
        s.ledger.task(t5).await.unwrap().unwrap().status,
        TaskStatus::Fulfilled
    );
    assert!(
        !events
            .lock()
            .unwrap()
            .iter()
            .any(|e| matches!(e, NodeEvent::Claimed { task, .. } if *task == t4))
    );
    worker.tick(&sink).await.unwrap();
    assert_eq!(worker.floor(), t5);
}

/// A ledger whose fulfilments fail with the queued errors first; counts them.
struct FlakyLedger {
    inner: Arc<MemoryLedger>,
    errors: Mutex<Vec<flownet_core::Error>>,
    fulfils: Mutex<u32>,
}

#[async_trait::async_trait]
impl Ledger for FlakyLedger {
    async fn info(&self) -> flownet_core::Result<flownet_core::LedgerInfo> {
        self.inner.info().await
    }
    async fn send(
        &self,
        envelope: flownet_core::SignedEnvelope,
    ) -> flownet_core::Result<flownet_core::Receipt> {
        if matches!(
            envelope.envelope.action,
            flownet_core::Action::Fulfil { .. }
        ) {
            *self.fulfils.lock().unwrap() += 1;
            if let Some(e) = self.errors.lock().unwrap().pop() {
                return Err(e);
            }
        }
        self.inner.send(envelope).await
    }
    async fn account(
        &self,
        a: flownet_core::Address,
    ) -> flownet_core::Result<Option<flownet_core::Account>> {
        self.inner.account(a).await
    }
    async fn node(
        &self,
        a: flownet_core::Address,
    ) -> flownet_core::Result<Option<flownet_core::Node>> {
        self.inner.node(a).await
    }
    async fn nodes(&self) -> flownet_core::Result<Vec<flownet_core::Node>> {
        self.inner.nodes().await
    }
    async fn task(&self, id: u64) -> flownet_core::Result<Option<flownet_core::Task>> {
        self.inner.task(id).await
    }
    async fn tasks(
        &self,
        q: flownet_core::TaskQuery,
    ) -> flownet_core::Result<Vec<flownet_core::Task>> {
        self.inner.tasks(q).await
    }
    async fn ratings(&self, id: u64) -> flownet_core::Result<Vec<flownet_core::Rating>> {
        self.inner.ratings(id).await
    }
    async fn nfts(
        &self,
        a: flownet_core::Address,
    ) -> flownet_core::Result<Vec<flownet_core::OutputNft>> {
        self.inner.nfts(a).await
    }
}

/// A node on a [`FlakyLedger`] whose first fulfilments fail with `errors`
/// (the last one first), and a task for it.
async fn flaky(
    errors: Vec<flownet_core::Error>,
) -> (
    Setup,
    Arc<FlakyLedger>,
    NodeWorker<FlakyLedger, EchoEngine, MemoryBlobs>,
    u64,
) {
    let s = setup().await;
    let flaky = Arc::new(FlakyLedger {
        inner: s.ledger.clone(),
        errors: Mutex::new(errors),
        fulfils: Mutex::new(0),
    });
    let id = s
        .user
        .submit(s.node.address(), "echo", "hello", "{}", Amount::tokens(1))
        .await
        .unwrap();
    let node = Arc::new(Wallet::with_address(
        flaky.clone(),
        s.node_key.clone(),
        s.node.address(),
    ));
    let worker = NodeWorker::new(node, s.engine.clone(), s.blobs.clone(), "http://n");
    (s, flaky, worker, id)
}

fn network_error() -> flownet_core::Error {
    flownet_core::Error::Network("the access node did not answer".into())
}

#[tokio::test]
async fn a_fulfilment_that_fails_for_a_passing_reason_backs_off_then_succeeds() {
    let (s, flaky, worker, id) = flaky(vec![network_error(), network_error()]).await;
    let (events, sink) = collect();
    assert_eq!(
        worker.tick(&sink).await.unwrap(),
        0,
        "the error stays with the task"
    );
    assert_eq!(*flaky.fulfils.lock().unwrap(), 1);
    assert!(matches!(
        events.lock().unwrap().last(),
        Some(NodeEvent::Failed {
            will_retry: true,
            ..
        })
    ));
    // Backing off: 2 s of ledger time after the first failure, 4 after the second.
    assert_eq!(worker.tick(&sink).await.unwrap(), 0);
    assert_eq!(*flaky.fulfils.lock().unwrap(), 1, "retried without waiting");
    s.ledger.advance(2);
    assert_eq!(worker.tick(&sink).await.unwrap(), 0);
    assert_eq!(*flaky.fulfils.lock().unwrap(), 2);
    s.ledger.advance(3);
    assert_eq!(worker.tick(&sink).await.unwrap(), 0);
    assert_eq!(*flaky.fulfils.lock().unwrap(), 2, "retried before 4 s");
    s.ledger.advance(1);
    assert_eq!(worker.tick(&sink).await.unwrap(), 1);
    assert_eq!(*flaky.fulfils.lock().unwrap(), 3);
    assert_eq!(
        s.ledger.task(id).await.unwrap().unwrap().status,
        TaskStatus::Fulfilled
    );
    assert_eq!(*s.engine.calls.lock().unwrap(), 1, "the model ran again");
}

#[tokio::test]
async fn a_fulfilment_that_keeps_failing_is_given_up_after_a_few_tries() {
    let errors = (0..20).map(|_| network_error()).collect();
    let (s, flaky, worker, id) = flaky(errors).await;
    let (events, sink) = collect();
    for _ in 0..20 {
        worker.tick(&sink).await.unwrap();
        s.ledger.advance(flownet_core::node::MAX_FULFIL_BACKOFF_S);
    }
    assert_eq!(
        *flaky.fulfils.lock().unwrap(),
        flownet_core::node::MAX_FULFIL_TRIES
    );
    assert!(matches!(
        events.lock().unwrap().last(),
        Some(NodeEvent::Failed {
            will_retry: false,
            ..
        })
    ));
    // The task is left to expire, and the requester is refunded.
    assert_eq!(
        s.ledger.task(id).await.unwrap().unwrap().status,
        TaskStatus::Claimed
    );
}

#[tokio::test]
async fn a_rejected_fulfilment_is_never_retried() {
    let rejection = flownet_core::Error::InvalidInput(
        "the Flow transaction failed: panic: hostile collection".into(),
    );
    let (s, flaky, worker, _id) = flaky(vec![rejection]).await;
    let (events, sink) = collect();
    for _ in 0..5 {
        worker.tick(&sink).await.unwrap();
        s.ledger.advance(30);
    }
    assert_eq!(*flaky.fulfils.lock().unwrap(), 1, "a rejection was retried");
    let failed: Vec<_> = events
        .lock()
        .unwrap()
        .iter()
        .filter(|e| matches!(e, NodeEvent::Failed { .. }))
        .cloned()
        .collect();
    assert!(matches!(
        failed[..],
        [NodeEvent::Failed {
            will_retry: false,
            ..
        }]
    ));
}

/// A language model in miniature: answers with one token per word of its input (or
/// prompt), at most `params.max_tokens`, as a text-generation output.
struct WordModel {
    requests: Mutex<Vec<flownet_core::InferenceRequest>>,
}

#[async_trait::async_trait]
impl Engine for WordModel {
    fn models(&self) -> Vec<flownet_core::ModelInfo> {
        vec![flownet_core::ModelInfo {
            id: "words".into(),
            kind: flownet_core::TaskKind::TextGeneration,
            name: "words".into(),
            weights_sha256: flownet_core::Digest32([5; 32]),
            output_mime: flownet_core::Generation::MIME.into(),
            prompt_mapping: "one token per word".into(),
            defaults: serde_json::json!({}),
        }]
    }

    async fn infer(
        &self,
        request: flownet_core::InferenceRequest,
    ) -> flownet_core::Result<flownet_core::InferenceOutput> {
        let text = match &request.input {
            Some(bytes) => String::from_utf8(bytes.clone()).unwrap(),
            None => request.prompt.clone(),
        };
        let max = request.params["max_tokens"].as_u64().unwrap_or(u64::MAX);
        let words: Vec<&str> = text.split_whitespace().take(max as usize).collect();
        let generation = flownet_core::Generation {
            text: words.join(" "),
            finish_reason: flownet_core::FinishReason::Stop,
            usage: flownet_core::Usage {
                prompt_tokens: 1,
                completion_tokens: words.len() as u64,
            },
        };
        self.requests.lock().unwrap().push(request);
        Ok(flownet_core::InferenceOutput {
            bytes: generation.to_bytes(),
            mime: flownet_core::Generation::MIME.into(),
            metadata: serde_json::Value::Null,
        })
    }
}

/// Inputs held at URLs, as a requester's blob server would hold them.
#[derive(Default)]
struct Holders(Mutex<std::collections::HashMap<String, Vec<u8>>>);

#[async_trait::async_trait]
impl flownet_core::InputFetcher for Holders {
    async fn fetch(
        &self,
        input: &flownet_core::InputRef,
        max_bytes: u64,
    ) -> flownet_core::Result<Vec<u8>> {
        let uri = &input.uri;
        let bytes = self
            .0
            .lock()
            .unwrap()
            .get(uri)
            .cloned()
            .ok_or_else(|| flownet_core::Error::Network(format!("{uri} is not held")))?;
        if bytes.len() as u64 > max_bytes {
            return Err(flownet_core::Error::Network("too large".into()));
        }
        Ok(bytes)
    }
}

async fn word_node() -> (Setup, Arc<WordModel>) {
    let s = setup().await;
    let model = Arc::new(WordModel {
        requests: Mutex::default(),
    });
    let m = &model.models()[0];
    s.node
        .register_node(
            "words",
            "http://127.0.0.1:9",
            vec![OfferedModel {
                model_id: m.id.clone(),
                weights_sha256: m.weights_sha256,
                price: Amount::tokens(10),
                unit: flownet_core::PriceUnit::ThousandTokens,
            }],
        )
        .await
        .unwrap();
    (s, model)
}

fn submit_words(
    s: &Setup,
    prompt: &str,
    params: &str,
    input: Option<flownet_core::InputRef>,
    max_units: u64,
) -> flownet_core::Action {
    flownet_core::Action::Submit {
        node: s.node.address(),
        model_id: "words".into(),
        prompt: prompt.into(),
        params: params.into(),
        max_price: Amount::tokens(100),
        input,
        max_units,
    }
}

#[tokio::test]
async fn a_metered_task_is_capped_at_its_units_and_paid_for_the_tokens_written() {
    let (s, model) = word_node().await;
    let before = s
        .ledger
        .account(s.user.address())
        .await
        .unwrap()
        .unwrap()
        .balance;
    let id = s
        .user
        .submit_action(submit_words(
            &s,
            "one two three four five six",
            r#"{"max_tokens": 100}"#,
            None,
            4,
        ))
        .await
        .unwrap();
    let worker = NodeWorker::new(s.node.clone(), model.clone(), s.blobs.clone(), "http://n");
    let (_events, sink) = collect();
    assert_eq!(worker.tick(&sink).await.unwrap(), 1);
    // The model was told the task's limit, not the larger one in its params.
    assert_eq!(model.requests.lock().unwrap()[0].params["max_tokens"], 4);
    let task = s.ledger.task(id).await.unwrap().unwrap();
    assert_eq!(task.status, TaskStatus::Fulfilled);
    assert_eq!(task.units, Some(4));
    let after = s
        .ledger
        .account(s.user.address())
        .await
        .unwrap()
        .unwrap()
        .balance;
    // 4 tokens at 10 FLOWNET per 1,000.
    assert_eq!(before.checked_sub(after).unwrap(), Amount(4_000_000));
}

#[tokio::test]
async fn a_task_input_is_fetched_checked_and_fed_to_the_model() {
    let (s, model) = word_node().await;
    let holders = Arc::new(Holders::default());
    let bytes = b"alpha beta gamma".to_vec();
    let sha256 = flownet_core::crypto::sha256(&bytes);
    let uri = format!("http://127.0.0.1:8/blobs/{sha256}");
    holders.0.lock().unwrap().insert(uri.clone(), bytes.clone());
    let input = flownet_core::InputRef {
        sha256,
        size: bytes.len() as u64,
        uri: uri.clone(),
    };
    let id = s
        .user
        .submit_action(submit_words(
            &s,
            "see input",
            "{}",
            Some(input.clone()),
            100,
        ))
        .await
        .unwrap();
    // A worker with no way to fetch fails the task and says why.
    let blind = NodeWorker::new(s.node.clone(), model.clone(), s.blobs.clone(), "http://n");
    let (events, sink) = collect();
    assert_eq!(blind.tick(&sink).await.unwrap(), 0);
    assert!(events.lock().unwrap().iter().any(
        |e| matches!(e, NodeEvent::Failed { error, .. } if error.contains("fetches no inputs"))
    ));
    let worker = NodeWorker::new(s.node.clone(), model.clone(), s.blobs.clone(), "http://n")
        .with_fetcher(holders.clone());
    assert_eq!(worker.tick(&sink).await.unwrap(), 1);
    assert_eq!(
        model
            .requests
            .lock()
            .unwrap()
            .last()
            .unwrap()
            .input
            .as_deref(),
        Some(&bytes[..])
    );
    let task = s.ledger.task(id).await.unwrap().unwrap();
    assert_eq!(task.units, Some(3));

    // A holder that serves other bytes than the ledger names is refused.
    let id = s
        .user
        .submit_action(submit_words(
            &s,
            "see input",
            "{}",
            Some(flownet_core::InputRef {
                sha256: flownet_core::Digest32([1; 32]),
                ..input
            }),
            100,
        ))
        .await
        .unwrap();
    let (events, sink) = collect();
    assert_eq!(worker.tick(&sink).await.unwrap(), 0);
    assert!(
        events.lock().unwrap().iter().any(|e| matches!(e, NodeEvent::Failed { task, error, .. } if *task == id && error.contains("hash"))),
        "{:?}",
        events.lock().unwrap()
    );
    assert_eq!(
        model.requests.lock().unwrap().len(),
        1,
        "the model saw unchecked bytes"
    );
}
