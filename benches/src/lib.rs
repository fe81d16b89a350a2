//! Shared set-up for FlowNet's benchmarks: a funded marketplace on a fresh embedded
//! ledger, and the inputs each model is timed on.
//!
//! ## Feature Flags
//! None.
//!
//! ## Example
//! ```no_run
//! let rt = tokio::runtime::Runtime::new().unwrap();
//! let market = rt.block_on(flownet_benches::Market::new()).unwrap();
//! rt.block_on(market.lifecycle()).unwrap();
//! ```

use std::sync::Arc;

use anyhow::{Context, Result};
use flownet_chain::EmbeddedLedger;
use flownet_core::{
    Amount, Digest32, Ledger, LedgerConfig, OfferedModel, OutputRef, SigningKey, Wallet,
};
use flownet_infer::RawTensor;

/// A node and a requester on a fresh embedded ledger in a temporary directory.
#[derive(Debug)]
pub struct Market {
    _dir: tempfile::TempDir,
    pub ledger: Arc<EmbeddedLedger>,
    pub node: Wallet<EmbeddedLedger>,
    pub user: Wallet<EmbeddedLedger>,
    pub rater: Wallet<EmbeddedLedger>,
}

impl Market {
    pub async fn new() -> Result<Self> {
        let dir = tempfile::tempdir()?;
        let config = LedgerConfig {
            faucet_amount: Amount::tokens(1_000_000),
            ..LedgerConfig::default()
        };
        let ledger = Arc::new(EmbeddedLedger::create(dir.path().join("bench.db"), config)?);
        let wallet = || Wallet::new(ledger.clone(), SigningKey::generate());
        let (node, user, rater) = (wallet(), wallet(), wallet());
        for w in [&node, &user, &rater] {
            w.ensure_funded().await?;
        }
        let offer = OfferedModel {
            model_id: "bench".into(),
            weights_sha256: Digest32([1; 32]),
            price: Amount(1_000_000),
            unit: flownet_core::PriceUnit::Task,
        };
        node.register_node("bench node", "http://127.0.0.1:9", vec![offer])
            .await?;
        Ok(Self {
            _dir: dir,
            ledger,
            node,
            user,
            rater,
        })
    }

    /// One task's whole life: submit, claim, fulfil, rated by the requester and by one
    /// other account. Five signed envelopes, five ledger transactions.
    pub async fn lifecycle(&self) -> Result<()> {
        let id = self
            .user
            .submit(
                self.node.address(),
                "bench",
                "a prompt",
                "{}",
                Amount(1_000_000),
            )
            .await?;
        self.node.claim(id).await?;
        let output = OutputRef {
            sha256: Digest32([2; 32]),
            uri: "http://127.0.0.1:9/blobs/02".into(),
            mime: "image/png".into(),
            size: 1,
        };
        self.node.fulfil(id, output).await?;
        self.user.rate(id, 5).await?;
        self.rater.rate(id, 4).await?;
        let task = self.ledger.task(id).await?.context("task vanished")?;
        anyhow::ensure!(task.bounty_paid == 2, "task {id} was not rated twice");
        Ok(())
    }
}

/// The raw input tensors each model is timed on: the same shapes and kind of data the
/// Python baseline (`benches/python/infer_bench.py`) feeds.
pub fn model_inputs(model_id: &str) -> Option<Vec<(&'static str, RawTensor)>> {
    match model_id {
        "terrain-diffusion-128" => Some(vec![
            (
                "noisy",
                (vec![1, 1, 128, 128], flownet_infer::terrain::noise(0)),
            ),
            ("sigma", (vec![1], vec![80.0])),
            ("difficulty", (vec![1], vec![0.5])),
        ]),
        "mobilenet-v2" => {
            // Values in the normalised range of a real photo; the run time of a CNN does
            // not depend on them.
            let mut rng = flownet_infer::rng::Xoshiro256::new(7);
            let mut data = vec![0.0f32; 3 * 224 * 224];
            rng.fill_standard_normal(&mut data);
            Some(vec![("input", (vec![1, 3, 224, 224], data))])
        }
        _ => None,
    }
}

/// A full request for each model (prompt or image, default params).
pub fn model_request(
    model_id: &str,
    models_dir: &std::path::Path,
) -> Result<flownet_core::InferenceRequest> {
    let (prompt, input) = match model_id {
        "mobilenet-v2" => (
            String::new(),
            Some(std::fs::read(models_dir.join("testdata/chelsea.png"))?),
        ),
        "all-minilm-l6-v2" => {
            let sentences: Vec<String> =
                serde_json::from_str(include_str!("../python/embed_sentences.json"))?;
            (serde_json::json!({ "input": sentences }).to_string(), None)
        }
        "terrain-diffusion-128" | "smollm2-135m-instruct" => {
            ("jagged alpine peaks".to_owned(), None)
        }
        other => anyhow::bail!("no benchmark request for model {other}"),
    };
    Ok(flownet_core::InferenceRequest {
        model_id: model_id.into(),
        prompt,
        params: serde_json::Map::new(),
        input,
    })
}
