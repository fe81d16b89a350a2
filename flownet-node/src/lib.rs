//! FlowNet's node runtime: the I/O around the core's `NodeWorker`. [`FsBlobStore`]
//! keeps outputs on disk by SHA-256 with the delivery journal beside them, [`server`]
//! publishes them over HTTP (`GET /blobs/{sha256}`), [`worker`] ticks the worker on a
//! timer (and registers, starts or runs a whole node), and [`engine`] loads the ONNX
//! models. The `flownet node serve` command, `flownet web --node` and the Python
//! package's `Node.serve()` are this crate with different engines.
//!
//! This crate knows HTTP (as a server of blobs and a client fetching outputs) and the
//! inference runtime's loader; it never knows which ledger it runs on (a
//! `Wallet<dyn Ledger>`) nor a terminal.
//!
//! ## Feature Flags
//! - `cuda`: lets [`EngineSettings::cuda`] run models on ONNX Runtime's CUDA execution
//!   provider.
//!
//! ## Example
//! A node serving the core's echo engine on an in-memory ledger, one pass:
//! ```
//! use std::sync::Arc;
//!
//! use flownet_core::{
//!     Engine, Ledger, LedgerConfig, OfferedModel, PriceUnit, SigningKey, Wallet,
//!     memory::{EchoEngine, MemoryLedger},
//! };
//! use flownet_node::{FsBlobStore, ServeOptions, run_node};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let ledger: Arc<dyn Ledger> = Arc::new(MemoryLedger::new(LedgerConfig::default(), 1_000));
//! let engine = Arc::new(EchoEngine::new("echo"));
//! let node = Arc::new(Wallet::new(ledger.clone(), SigningKey::generate()));
//! node.ensure_funded().await?;
//! let model = engine.models().remove(0);
//! let offer = OfferedModel {
//!     model_id: model.id.clone(),
//!     weights_sha256: model.weights_sha256,
//!     price: "0.1".parse()?,
//!     // The echo model writes no token counts, so it is offered per task.
//!     unit: PriceUnit::Task,
//! };
//! node.register_node("docs node", "http://127.0.0.1:0", vec![offer]).await?;
//!
//! let user = Wallet::new(ledger.clone(), SigningKey::generate());
//! user.ensure_funded().await?;
//! user.submit(node.address(), "echo", "hello", "{}", "0.1".parse()?).await?;
//!
//! let dir = tempfile::tempdir()?;
//! let once = ServeOptions { once: true, ..ServeOptions::default() };
//! let delivered = run_node(node, engine, FsBlobStore::open(dir.path())?, &once, async {}).await?;
//! assert_eq!(delivered, 1);
//! # Ok(())
//! # }
//! ```

pub mod blobs;
pub mod engine;
mod error;
pub mod fetch;
pub mod follow;
pub mod http;
pub mod ipfs;
pub mod recount;
pub mod server;
pub mod streams;
pub mod worker;

pub use blobs::{FsBlobStore, fetch_output, fetch_output_within, sniff_mime};
pub use engine::{EngineSettings, load_engine, manifests};
pub use error::{Error, Result};
pub use fetch::{FetchPolicy, HttpFetcher};
pub use http::{HttpLimits, serve};
pub use ipfs::Ipfs;
pub use recount::{UnitsCheck, check_embedding_units, check_units};
pub use server::{
    node_router, router, spawn_blob_server, spawn_node_server, spawn_node_server_with,
};
pub use streams::StreamHub;
pub use worker::{
    DEFAULT_ENDPOINT, RunningNode, ServeOptions, Worker, ensure_registered, log_event, run_node,
    run_worker, start_node,
};
