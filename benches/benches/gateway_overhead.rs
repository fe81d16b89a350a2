//! Gateway overhead: how much later a task's delivery is seen through `flownet web`
//! than through the core, under 32 concurrent clients on loopback.
//!
//! Both paths run in the same process on the same ledger file, in alternating rounds
//! so that drift hits both:
//! - core: `Wallet::submit`, then the ledger is polled until the task is fulfilled;
//! - gateway: the client signs the envelope itself (SHA2-256, as the browser does),
//!   POSTs it to `/api/relay`, then reads `/api/tasks/{id}/events` until `delivered`.
//!
//! Each client has its own node (a worker whose model sleeps a fixed time), so no
//! client queues behind another's task; the inference time each node reports is
//! subtracted from each sample. What is left is the marketplace's own latency (three
//! ledger writes, the node's polling) plus, on the gateway path, HTTP, JSON and the
//! event hub. Run with `cargo bench -p flownet-benches --bench gateway_overhead`;
//! `FLOWNET_BENCH_CLIENTS`, `FLOWNET_BENCH_ROUNDS`, `FLOWNET_BENCH_INFER_MS` and
//! `FLOWNET_BENCH_POLL_MS` change the load. Under `cargo test` it runs a small smoke
//! round (4 clients, 1 round) and writes nothing.

use std::{
    collections::HashMap,
    io::BufRead as _,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};
use async_trait::async_trait;
use flownet_chain::EmbeddedLedger;
use flownet_core::{
    Action, Address, Amount, BlobStore, Engine, Envelope, HashAlgo, InferenceOutput,
    InferenceRequest, Ledger, LedgerConfig, ModelInfo, NodeEvent, NodeWorker, OfferedModel,
    SigningKey, TaskId, TaskKind, TaskStatus, Wallet, crypto, memory::MemoryBlobs,
};
use flownet_gateway::{Gateway, GatewayConfig, limits::Rate};
use serde_json::json;

const MODEL: &str = "sleepy";

/// A model that takes a fixed time and echoes the prompt.
struct Sleepy(Duration);

#[async_trait]
impl Engine for Sleepy {
    fn models(&self) -> Vec<ModelInfo> {
        vec![ModelInfo {
            id: MODEL.into(),
            kind: TaskKind::TextGeneration,
            name: "sleeps, then echoes".into(),
            weights_sha256: crypto::sha256(MODEL.as_bytes()),
            output_mime: "text/plain".into(),
            prompt_mapping: "the output is the prompt".into(),
            defaults: json!({}),
        }]
    }
    async fn infer(&self, req: InferenceRequest) -> flownet_core::Result<InferenceOutput> {
        tokio::time::sleep(self.0).await;
        Ok(InferenceOutput {
            bytes: req.prompt.into_bytes(),
            mime: "text/plain".into(),
            metadata: json!({}),
        })
    }
}

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Inference time each task's node reported, in milliseconds.
type Inference = Arc<Mutex<HashMap<TaskId, u64>>>;

struct Setup {
    ledger: Arc<dyn Ledger>,
    nodes: Vec<Address>,
    users: Vec<Arc<Wallet<dyn Ledger>>>,
    browsers: Vec<(SigningKey, Address)>,
    inference: Inference,
    base: String,
    poll: Duration,
    _stop: tokio::sync::watch::Sender<bool>,
    _dir: tempfile::TempDir,
}

async fn setup(clients: usize, infer: Duration, poll: Duration) -> Result<Setup> {
    let dir = tempfile::tempdir()?;
    let ledger: Arc<dyn Ledger> = Arc::new(EmbeddedLedger::create(
        dir.path().join("ledger.db"),
        LedgerConfig::default(),
    )?);
    let gateway = Gateway::new(
        ledger.clone(),
        None,
        [],
        None,
        GatewayConfig {
            poll_interval: poll,
            ip_rate: Rate::new(0, 0),
            fetch_policy: flownet_gateway::FetchPolicy::LOOPBACK,
            ..GatewayConfig::default()
        },
    )
    .await?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    let (stop, stop_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(gateway.clone().serve(listener, stop_rx));

    let engine: Arc<dyn Engine> = Arc::new(Sleepy(infer));
    let inference: Inference = Arc::default();
    let mut nodes = Vec::new();
    for i in 0..clients {
        let wallet = Arc::new(Wallet::new(ledger.clone(), SigningKey::generate()));
        wallet.ensure_funded().await?;
        wallet
            .register_node(
                &format!("bench node {i}"),
                "http://127.0.0.1:9",
                vec![OfferedModel {
                    model_id: MODEL.into(),
                    weights_sha256: crypto::sha256(MODEL.as_bytes()),
                    price: Amount(100_000),
                    unit: flownet_core::PriceUnit::Task,
                }],
            )
            .await?;
        nodes.push(wallet.address());
        let blobs: Arc<dyn BlobStore> = Arc::new(MemoryBlobs::default());
        let worker = NodeWorker::new(wallet, engine.clone(), blobs, "http://127.0.0.1:9");
        let (gw, inference) = (gateway.clone(), inference.clone());
        tokio::spawn(async move {
            let on_event = move |e: &NodeEvent| {
                if let NodeEvent::Delivered {
                    task, inference_ms, ..
                } = e
                {
                    inference.lock().unwrap().insert(*task, *inference_ms);
                }
                gw.node_event(e);
            };
            loop {
                if let Err(e) = worker.tick(&on_event).await {
                    eprintln!("node tick failed: {e}");
                }
                tokio::time::sleep(poll).await;
            }
        });
    }
    let mut users = Vec::new();
    let mut browsers = Vec::new();
    for _ in 0..clients {
        let user = Arc::new(Wallet::new(ledger.clone(), SigningKey::generate()));
        user.ensure_funded().await?;
        users.push(user);
        let key = SigningKey::generate();
        let address = Address::derive(&key.public_key());
        let id = ledger.info().await?.id;
        for (sequence, action) in [
            Action::CreateAccount {
                public_key: key.public_key(),
                hash_algo: HashAlgo::Sha2_256,
            },
            Action::Faucet,
        ]
        .into_iter()
        .enumerate()
        {
            ledger
                .send(
                    Envelope {
                        ledger: id,
                        signer: address,
                        sequence: sequence as u64,
                        action,
                    }
                    .sign_with(&key, HashAlgo::Sha2_256),
                )
                .await?;
        }
        browsers.push((key, address));
    }
    Ok(Setup {
        ledger,
        nodes,
        users,
        browsers,
        inference,
        base,
        poll,
        _stop: stop,
        _dir: dir,
    })
}

/// Waits for the node's report of `task`'s inference time.
async fn inference_ms(s: &Setup, task: TaskId) -> Result<u64> {
    for _ in 0..200 {
        if let Some(ms) = s.inference.lock().unwrap().get(&task) {
            return Ok(*ms);
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    bail!("no inference time for task {task}")
}

/// One task through the core: submit, then poll the ledger as often as the hub does.
async fn direct(s: Arc<Setup>, client: usize, round: usize) -> Result<f64> {
    let started = Instant::now();
    let id = s.users[client]
        .submit(
            s.nodes[client],
            MODEL,
            &format!("direct {client} {round}"),
            "{}",
            Amount(100_000),
        )
        .await?;
    loop {
        let t = s.ledger.task(id).await?.context("task vanished")?;
        if t.status == TaskStatus::Fulfilled {
            break;
        }
        if t.status.is_final() {
            bail!("task {id} ended {}", t.status);
        }
        tokio::time::sleep(s.poll).await;
    }
    let elapsed = started.elapsed().as_secs_f64() * 1000.0;
    Ok(elapsed - inference_ms(&s, id).await? as f64)
}

/// One task through the gateway, as a browser does it.
async fn gateway(
    s: Arc<Setup>,
    agent: ureq::Agent,
    client: usize,
    round: usize,
    sequence: u64,
) -> Result<f64> {
    let (key, address) = s.browsers[client].clone();
    let ledger = s.ledger.info().await?.id;
    let node = s.nodes[client];
    let base = s.base.clone();
    let (elapsed, id) = tokio::task::spawn_blocking(move || -> Result<(f64, TaskId)> {
        let started = Instant::now();
        let signed = Envelope {
            ledger,
            signer: address,
            sequence,
            action: Action::Submit {
                node,
                model_id: MODEL.into(),
                prompt: format!("gateway {client} {round}"),
                params: "{}".into(),
                max_price: Amount(100_000),
                input: None,
                max_units: 0,
            },
        }
        .sign_with(&key, HashAlgo::Sha2_256);
        let mut resp = agent
            .post(&format!("{base}/api/relay"))
            .header("content-type", "application/json")
            .send(serde_json::to_vec(&signed)?)?;
        let receipt: serde_json::Value = serde_json::from_slice(&resp.body_mut().read_to_vec()?)?;
        let id = receipt["receipt"]["outcome"]["task"]
            .as_u64()
            .with_context(|| format!("relay refused: {receipt}"))?;
        let mut events = agent.get(&format!("{base}/api/tasks/{id}/events")).call()?;
        let reader = std::io::BufReader::new(events.body_mut().as_reader());
        for line in reader.lines() {
            match line?.as_str() {
                "event: delivered" => {
                    return Ok((started.elapsed().as_secs_f64() * 1000.0, id));
                }
                "event: expired" | "event: cancelled" => bail!("task {id} ended undelivered"),
                _ => {}
            }
        }
        bail!("the event stream of task {id} ended early")
    })
    .await??;
    Ok(elapsed - inference_ms(&s, id).await? as f64)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn summary(samples: &mut [f64]) -> (f64, f64, f64) {
    samples.sort_by(f64::total_cmp);
    let mean = samples.iter().sum::<f64>() / samples.len() as f64;
    (percentile(samples, 50.0), percentile(samples, 99.0), mean)
}

fn main() -> Result<()> {
    // `cargo test --all-targets` runs benches once without `--bench`: a small smoke run
    // then, so CI checks the program works without paying for the measurement.
    let measuring = std::env::args().any(|a| a == "--bench");
    let clients = env("FLOWNET_BENCH_CLIENTS", if measuring { 32 } else { 4 }) as usize;
    let rounds = env("FLOWNET_BENCH_ROUNDS", if measuring { 10 } else { 1 }) as usize;
    let infer = Duration::from_millis(env("FLOWNET_BENCH_INFER_MS", 20));
    let poll = Duration::from_millis(env("FLOWNET_BENCH_POLL_MS", 10));
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        eprintln!("setting up {clients} clients, each with its own node …");
        let s = Arc::new(setup(clients, infer, poll).await?);
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(Duration::from_secs(120)))
            .max_idle_connections_per_host(clients * 2)
            .build()
            .into();
        let mut sequences = vec![2u64; clients];
        let (mut core, mut web) = (Vec::new(), Vec::new());
        // Round 0 warms both paths up and is not counted.
        for round in 0..=rounds {
            let batch: Vec<_> = (0..clients)
                .map(|c| tokio::spawn(direct(s.clone(), c, round)))
                .collect();
            for h in batch {
                let ms = h.await??;
                if round > 0 {
                    core.push(ms);
                }
            }
            let batch: Vec<_> = (0..clients)
                .map(|c| tokio::spawn(gateway(s.clone(), agent.clone(), c, round, sequences[c])))
                .collect();
            for (c, h) in batch.into_iter().enumerate() {
                let ms = h.await??;
                sequences[c] += 1;
                if round > 0 {
                    web.push(ms);
                }
            }
            eprintln!("round {round}/{rounds} done");
        }
        let (c50, c99, cmean) = summary(&mut core);
        let (w50, w99, wmean) = summary(&mut web);
        println!(
            "gateway overhead: submit -> delivery minus inference ({} ms sleep model), {clients} concurrent clients, {rounds} rounds, poll {} ms, {threads} threads, loopback",
            infer.as_millis(),
            poll.as_millis()
        );
        println!("{:<34} {:>9} {:>9} {:>9} {:>8}", "path", "p50 ms", "p99 ms", "mean ms", "tasks");
        println!(
            "{:<34} {c50:>9.1} {c99:>9.1} {cmean:>9.1} {:>8}",
            "core (Wallet + ledger polling)",
            core.len()
        );
        println!(
            "{:<34} {w50:>9.1} {w99:>9.1} {wmean:>9.1} {:>8}",
            "gateway (HTTP relay + SSE)",
            web.len()
        );
        println!(
            "{:<34} {:>+9.1} {:>+9.1} {:>+9.1}",
            "gateway minus core",
            w50 - c50,
            w99 - c99,
            wmean - cmean
        );
        let json = json!({
            "clients": clients, "rounds": rounds, "inference_ms": infer.as_millis() as u64,
            "poll_ms": poll.as_millis() as u64, "threads": threads,
            "core": { "p50_ms": c50, "p99_ms": c99, "mean_ms": cmean, "tasks": core.len() },
            "gateway": { "p50_ms": w50, "p99_ms": w99, "mean_ms": wmean, "tasks": web.len() },
        });
        if measuring {
            let out = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/bench");
            std::fs::create_dir_all(&out)?;
            std::fs::write(out.join("gateway_overhead.json"), serde_json::to_vec_pretty(&json)?)?;
        }
        anyhow::Ok(())
    })
}
