//! A marketplace in one program, on the libraries alone: an embedded ledger in a
//! temporary directory, a node serving the terrain model with the core's node worker, a
//! user who pays for a prompt and rates the output.
//!
//! Run after `eval "$(scripts/setup.sh)"`:
//! `cargo run -p flownet-examples --example embedded_market -- "rolling hills"`

use std::sync::Arc;

use anyhow::{Context, Result};
use flownet_chain::EmbeddedLedger;
use flownet_core::{
    BlobStore, Engine, Ledger, LedgerConfig, NodeWorker, OfferedModel, SigningKey, Wallet,
    memory::MemoryBlobs,
};
use flownet_infer::{EngineOptions, OnnxEngine, default_models_dir};

#[tokio::main]
async fn main() -> Result<()> {
    let prompt = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "rolling hills".into());
    let dir = tempfile::tempdir()?;
    let ledger: Arc<dyn Ledger> = Arc::new(EmbeddedLedger::create(
        dir.path().join("ledger.db"),
        LedgerConfig::default(),
    )?);

    // The node: an account, the terrain model, an offer at 0.5 FLOWNET.
    let engine = Arc::new(OnnxEngine::load(
        default_models_dir(),
        &EngineOptions::default().with_models(["terrain-diffusion-128"]),
    )?);
    let model = engine
        .models()
        .into_iter()
        .next()
        .context("no model loaded")?;
    let node = Arc::new(Wallet::new(ledger.clone(), SigningKey::generate()));
    node.ensure_funded().await?;
    let offer = OfferedModel {
        model_id: model.id.clone(),
        weights_sha256: model.weights_sha256,
        price: "0.5".parse()?,
        unit: flownet_core::PriceUnit::Task,
    };
    node.register_node("example node", "http://127.0.0.1:7070", vec![offer])
        .await?;
    // Outputs stay in memory here; `flownet node serve` keeps them on disk and serves them.
    let blobs = Arc::new(MemoryBlobs::default());
    let worker = NodeWorker::new(
        node.clone(),
        engine as Arc<dyn Engine>,
        blobs.clone() as Arc<dyn BlobStore>,
        "http://127.0.0.1:7070",
    );

    // The user: pays, the node works one tick, the user rates.
    let user = Wallet::new(ledger.clone(), SigningKey::generate());
    user.ensure_funded().await?;
    let id = user
        .submit(node.address(), &model.id, &prompt, "{}", "0.5".parse()?)
        .await?;
    let delivered = worker.tick(&|event| println!("node: {event:?}")).await?;
    anyhow::ensure!(delivered == 1, "the node delivered {delivered} tasks");
    let task = ledger.task(id).await?.context("task vanished")?;
    let output = task.result.context("no output")?;
    let png = blobs.get(&output.sha256)?.context("output not stored")?;
    let path = dir.path().join("output.png");
    std::fs::write(&path, &png)?;
    let bounty = user.rate(id, 5).await?.outcome.credited.unwrap_or_default();
    println!(
        "task {id}: {} bytes of {}, sha256 {}; rated 5, bounty {bounty} FLOWNET",
        png.len(),
        output.mime,
        output.sha256
    );
    let node_after = ledger
        .node(node.address())
        .await?
        .context("node vanished")?;
    println!(
        "node score {:.2} after {} payer rating(s)",
        node_after.stats.score(),
        node_after.stats.ratings_count
    );
    Ok(())
}
