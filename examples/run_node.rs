//! A node in a few lines, on the node runtime's library: an embedded ledger in a
//! temporary directory, the terrain model, the output server and one pass of the worker
//! loop; a user pays for a prompt first and fetches the output over HTTP after.
//!
//! Run after `eval "$(scripts/setup.sh)"`:
//! `cargo run -p flownet-examples --example run_node -- "rolling hills"`

use std::sync::Arc;

use anyhow::{Context, Result};
use flownet_chain::EmbeddedLedger;
use flownet_core::{Engine, Ledger, LedgerConfig, SigningKey, Wallet};
use flownet_node::{EngineSettings, FsBlobStore, ServeOptions};

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

    // The node: an account, the terrain model, its offer at 0.5 FLOWNET.
    let settings = EngineSettings {
        models: Some(vec!["terrain-diffusion-128".into()]),
        ..EngineSettings::default()
    };
    let engine = flownet_node::load_engine(&flownet_infer::default_models_dir(), &settings).await?;
    let model = engine
        .models()
        .into_iter()
        .next()
        .context("no model loaded")?;
    let node = Arc::new(Wallet::new(ledger.clone(), SigningKey::generate()));
    node.ensure_funded().await?;
    let offer = flownet_core::OfferedModel {
        model_id: model.id.clone(),
        weights_sha256: model.weights_sha256,
        price: "0.5".parse()?,
        unit: flownet_core::PriceUnit::Task,
    };
    flownet_node::ensure_registered(
        &node,
        Some("example node"),
        Some("http://127.0.0.1:7071"),
        vec![offer],
    )
    .await?;

    // A user pays for a prompt; the node serves one pass and delivers.
    let user = Wallet::new(ledger.clone(), SigningKey::generate());
    user.ensure_funded().await?;
    let id = user
        .submit(node.address(), &model.id, &prompt, "{}", "0.5".parse()?)
        .await?;
    let blobs = FsBlobStore::open(dir.path().join("blobs"))?;
    let once = ServeOptions {
        once: true,
        ..ServeOptions::default()
    };
    let delivered = flownet_node::run_node(node, engine, blobs.clone(), &once, async {}).await?;
    println!("the node delivered {delivered} task(s)");

    // The output, read back by its content address and checked against the ledger.
    let output = ledger
        .task(id)
        .await?
        .and_then(|t| t.result)
        .context("no output")?;
    let png =
        flownet_node::fetch_output(&output, Some(&blobs), flownet_node::FetchPolicy::LOOPBACK)?;
    println!(
        "task {id}: {} bytes of {}, sha256 {}",
        png.len(),
        output.mime,
        output.sha256
    );
    Ok(())
}
