//! `flownet demo`: the marketplace end to end on a fresh ledger, in one process.

use std::{path::PathBuf, sync::Arc, time::Duration};

use anyhow::{Context as _, Result, bail};
use clap::Args;
use flownet_chain::EmbeddedLedger;
use flownet_core::{
    Amount, BlobStore, Engine, Ledger, LedgerConfig, NodeWorker, OfferedModel, TaskKind, Wallet,
};
use serde_json::json;

use super::{EngineArgs, load_engine, node_lines, pick_node, task::wait_for};
use crate::context::Ctx;
use flownet_node::{FetchPolicy, blobs};

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// The prompt for the text-to-image model (its hash is the seed, keywords set the
    /// terrain's difficulty)
    #[arg(long, default_value = "jagged alpine peaks above a quiet valley")]
    pub prompt: String,
    /// The demo's data dir, wiped and made fresh on each run [default: <data dir>/demo]
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Where to save the image [default: <demo dir>/outputs/task-1.png]
    #[arg(long, short)]
    pub out: Option<PathBuf>,
    #[command(flatten)]
    pub engine: EngineArgs,
}

const MARKER: &str = ".flownet-demo";

fn step(text: impl AsRef<str>) {
    eprintln!("==> {}", text.as_ref());
}

pub async fn run(ctx: &Ctx, args: DemoArgs) -> Result<()> {
    let dir = args
        .dir
        .clone()
        .unwrap_or_else(|| ctx.data_dir.join("demo"));
    if dir.exists() {
        if !dir.join(MARKER).exists() && std::fs::read_dir(&dir)?.next().is_some() {
            bail!(
                "{} exists and is not a demo dir: choose another --dir",
                dir.display()
            );
        }
        std::fs::remove_dir_all(&dir).with_context(|| format!("clearing {}", dir.display()))?;
    }
    std::fs::create_dir_all(&dir)?;
    std::fs::write(
        dir.join(MARKER),
        "made by `flownet demo`; wiped on its next run\n",
    )?;
    // The demo makes its own embedded ledger, whatever --network says.
    let demo = Ctx {
        data_dir: dir.clone(),
        key_name: "alice".into(),
        network: crate::context::Network::Embedded,
        ledger_file: None,
        ..ctx.clone()
    };

    step(format!("fresh ledger in {}", dir.display()));
    let ledger: Arc<dyn Ledger> = Arc::new(EmbeddedLedger::create(
        demo.ledger_path(),
        LedgerConfig::default(),
    )?);
    let mut wallets = Vec::new();
    for name in ["node", "alice", "bob"] {
        let (key, _) = Ctx {
            key_name: name.into(),
            ..demo.clone()
        }
        .load_or_create_key()?;
        let wallet = Arc::new(Wallet::new(ledger.clone(), key));
        let granted = wallet.ensure_funded().await?;
        step(format!(
            "{name}: account {} got {granted} FLOWNET from the faucet",
            wallet.address()
        ));
        wallets.push(wallet);
    }
    let [node_wallet, alice, bob] = <[_; 3]>::try_from(wallets).expect("three wallets");

    step(format!(
        "loading the ONNX models in {}",
        ctx.models_dir.display()
    ));
    let engine = load_engine(ctx, None, &args.engine).await?;
    let models = engine.models();
    let Some(t2i) = models
        .iter()
        .find(|m| m.kind == TaskKind::TextToImage)
        .cloned()
    else {
        bail!(
            "no text-to-image model in {} (run scripts/setup.sh)",
            ctx.models_dir.display()
        );
    };
    let classifier = models
        .iter()
        .find(|m| m.kind == TaskKind::ImageClassification)
        .cloned();

    let blob_store = demo.blobs()?;
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let (addr, server) = flownet_node::spawn_blob_server(
        "127.0.0.1:0".parse()?,
        blob_store.clone(),
        json!({ "node": node_wallet.address() }),
        stop_rx.clone(),
    )
    .await?;
    let endpoint = format!("http://{addr}");
    let offers: Vec<OfferedModel> = models
        .iter()
        .map(|m| OfferedModel {
            model_id: m.id.clone(),
            weights_sha256: m.weights_sha256,
            price: if m.kind == TaskKind::TextToImage {
                "0.5".parse().expect("literal")
            } else {
                "0.1".parse().expect("literal")
            },
            unit: m.kind.price_unit(),
        })
        .collect();
    node_wallet
        .register_node("demo node", &endpoint, offers)
        .await?;
    step(format!("node registered, serving outputs at {endpoint}"));
    let engine_port: Arc<dyn Engine> = engine.clone();
    let blobs_port: Arc<dyn BlobStore> = Arc::new(blob_store.clone());
    let worker = Arc::new(NodeWorker::new(
        node_wallet.clone() as Arc<Wallet<dyn Ledger>>,
        engine_port,
        blobs_port,
        endpoint.clone(),
    ));
    let node_loop = tokio::spawn(flownet_node::run_worker(
        worker,
        Duration::from_millis(100),
        stop_rx,
        flownet_node::log_event,
    ));

    // The user's side: pick the best node for the model, pay, wait, fetch over HTTP.
    let (node, offer) = pick_node(ledger.as_ref(), &t2i.id, None).await?;
    step(format!(
        "alice picks node {} for {} at {} FLOWNET and submits {:?}",
        node.owner, t2i.id, offer.price, args.prompt
    ));
    let id = alice
        .submit(node.owner, &t2i.id, &args.prompt, "{}", offer.price)
        .await?;
    let task = wait_for(ledger.as_ref(), None, id, Duration::from_secs(120)).await?;
    let output = task
        .result
        .clone()
        .with_context(|| format!("task {id} ended {} without an output", task.status))?;
    let fetched = output.clone();
    let image = tokio::task::spawn_blocking(move || {
        blobs::fetch_output(&fetched, None, FetchPolicy::LOOPBACK)
    })
    .await??;
    let png_path = args
        .out
        .clone()
        .unwrap_or_else(|| dir.join("outputs").join(format!("task-{id}.png")));
    if let Some(parent) = png_path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(&png_path, &image)?;
    step(format!(
        "task {id} fulfilled: {} bytes from {}, sha256 {} matches the ledger; saved {}",
        image.len(),
        output.uri,
        output.sha256,
        png_path.display()
    ));

    let mut classification = None;
    let photo = ctx.models_dir.join("testdata").join("chelsea.png");
    if let (Some(c), true) = (&classifier, photo.exists()) {
        let bytes = std::fs::read(&photo)?;
        let sha = blob_store.put(&bytes)?;
        let (cnode, coffer) = pick_node(ledger.as_ref(), &c.id, None).await?;
        step(format!(
            "alice asks {} what is in {} (sha256:{sha})",
            c.id,
            photo.display()
        ));
        let cid = alice
            .submit(
                cnode.owner,
                &c.id,
                &format!("sha256:{sha}"),
                "{\"top_k\": 3}",
                coffer.price,
            )
            .await?;
        let ctask = wait_for(ledger.as_ref(), None, cid, Duration::from_secs(120)).await?;
        if let Some(out) = ctask.result {
            let json: serde_json::Value = serde_json::from_slice(&blobs::fetch_output(
                &out,
                Some(&blob_store),
                FetchPolicy::LOOPBACK,
            )?)?;
            let labels: Vec<String> = json["labels"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|l| {
                    format!(
                        "{} {:.3}",
                        l["label"].as_str().unwrap_or("?"),
                        l["score"].as_f64().unwrap_or(0.0)
                    )
                })
                .collect();
            step(format!("task {cid} fulfilled: {}", labels.join(", ")));
            classification = Some(json);
        }
    }

    // A language step: alice embeds three sentences, paid per 1,000 tokens read.
    let mut embeddings = None;
    if let Some(e) = models.iter().find(|m| m.kind == TaskKind::Embedding) {
        let texts: Vec<String> = [
            "A man is playing a guitar.",
            "Someone strums a guitar on stage.",
            "The stock market fell sharply today.",
        ]
        .map(String::from)
        .to_vec();
        let (enode, eoffer) = pick_node(ledger.as_ref(), &e.id, None).await?;
        let max_units = flownet_core::embedding::max_units(&texts, None);
        let (max_units, escrow, max_price) =
            flownet_core::rules::quote(&eoffer, Some(max_units), &serde_json::Map::new(), None)?;
        step(format!(
            "alice embeds 3 sentences with {}: escrows {escrow} FLOWNET for at most {max_units} tokens",
            e.id
        ));
        let eid = alice
            .submit_action(flownet_core::Action::Submit {
                node: enode.owner,
                model_id: e.id.clone(),
                prompt: flownet_core::embedding::prompt_for(&texts)?,
                params: "{}".into(),
                max_price,
                input: None,
                max_units,
            })
            .await?;
        let etask = wait_for(ledger.as_ref(), None, eid, Duration::from_secs(120)).await?;
        if let Some(out) = &etask.result {
            let bytes = blobs::fetch_output(out, Some(&blob_store), FetchPolicy::LOOPBACK)?;
            let v = flownet_core::Embeddings::from_bytes(&bytes)?;
            let cos = |i: usize, j: usize| {
                flownet_core::embedding::cosine(&v.embeddings[i], &v.embeddings[j])
            };
            step(format!(
                "task {eid} fulfilled: 3 vectors of {} dimensions from {} tokens; cosine \
                 guitar/guitar {:.3}, guitar/stocks {:.3}; {} FLOWNET of the escrow came back",
                v.dimensions,
                v.usage.prompt_tokens,
                cos(0, 1),
                cos(0, 2),
                etask.refunded
            ));
            embeddings = Some(json!({
                "task": eid, "model": e.id, "tokens": v.usage.prompt_tokens,
                "similarity": { "paraphrase": cos(0, 1), "unrelated": cos(0, 2) },
                "refunded": etask.refunded.to_string(),
            }));
        }
    }

    let before_bob = ledger
        .account(bob.address())
        .await?
        .map(|a| a.balance)
        .unwrap_or_default();
    let r1 = alice.rate(id, 5).await?;
    let r2 = bob.rate(id, 4).await?;
    step(format!(
        "alice (who paid) rates it 5★ and earns {}; bob rates it 4★ and earns {} FLOWNET",
        r1.outcome.credited.unwrap_or_default(),
        r2.outcome.credited.unwrap_or_default()
    ));
    let _ = stop_tx.send(true);
    let _ = node_loop.await;
    let _ = server.await;

    let info = ledger.info().await?;
    let node_after = ledger
        .node(node_wallet.address())
        .await?
        .context("node vanished")?;
    let mut balances = serde_json::Map::new();
    let mut lines = Vec::new();
    for (name, w) in [("alice", &alice), ("node", &node_wallet), ("bob", &bob)] {
        let b = ledger
            .account(w.address())
            .await?
            .map(|a| a.balance)
            .unwrap_or_default();
        balances.insert(name.into(), json!(b.to_string()));
        lines.push(format!("  {name:<8} {} {b:>14} FLOWNET", w.address()));
    }
    lines.push(format!(
        "  {:<8} {:<18} {:>14} FLOWNET",
        "treasury",
        "",
        info.globals.treasury.to_string()
    ));
    let nfts = ledger.nfts(alice.address()).await?;
    let bob_gain = ledger
        .account(bob.address())
        .await?
        .map(|a| a.balance)
        .unwrap_or_default()
        .checked_sub(before_bob)
        .unwrap_or(Amount::ZERO);
    let summary = json!({
        "dir": dir,
        "task": id,
        "image": png_path,
        "sha256": output.sha256,
        "uri": output.uri,
        "model": t2i.id,
        "weights_sha256": t2i.weights_sha256,
        "prompt_mapping": t2i.prompt_mapping,
        "classification": classification,
        "embeddings": embeddings,
        "balances": balances,
        "treasury": info.globals.treasury.to_string(),
        "node": super::node_json(&node_after),
        "nfts": nfts,
        "bob_bounty": bob_gain.to_string(),
    });
    demo.print(&summary, || {
        format!(
            "\nimage     {}\nsha256    {}\nmodel     {} (weights {})\nbalances\n{}\nnode\n  {}\nNFTs owned by alice: {}\n\nkeep going: flownet --data-dir {} --key alice nft list",
            png_path.display(),
            output.sha256,
            t2i.id,
            t2i.weights_sha256,
            lines.join("\n"),
            node_lines(&node_after).replace('\n', "\n  "),
            nfts.iter().map(|n| format!("#{} ({})", n.id, n.model_id)).collect::<Vec<_>>().join(", "),
            dir.display()
        )
    });
    Ok(())
}
