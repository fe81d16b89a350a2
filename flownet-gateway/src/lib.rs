//! FlowNet's HTTP gateway, as a library: the user's side of the marketplace over HTTP.
//! [`Gateway::router`] returns an axum `Router` serving the page (built with Vite and
//! embedded at build time), the JSON API the page uses, a relay for envelopes the
//! browser signed with its own key, task events as server-sent events, output blobs by
//! SHA-256, an OpenAI-compatible API for programs (`/v1`, paid from custodial API
//! keys), `/metrics` and `/healthz`; [`serve`] serves a router with a header read
//! timeout. With the `flow` feature, [`sponsor`] is the gasless sponsor service (its
//! router and its client, `HttpPayer`).
//!
//! Layout: [`gateway`] holds the state, `router` the routes and the layers every
//! request passes (limits, host check, CORS, metrics); [`api`] the page's API; [`events`] the task
//! watcher behind the event streams; [`openai`] the `/v1` endpoints; [`keys`] the API
//! keys; [`limits`] the rate limits; [`metrics`] the counters; [`api_error`] the one
//! error shape all of them answer with.
//!
//! This crate knows HTTP; it reaches a chain only through the core's `Ledger` (and,
//! with `flow`, the Flow client of `flownet-chain`), runs no model and never knows a
//! terminal.
//!
//! ## Feature Flags
//! - `flow`: the gateway over FlowNet on Flow ([`Gateway::on_flow`], the page's
//!   `/api/flow/…` routes) and the [`sponsor`] service.
//!
//! ## Example
//! The gateway mounted under `/flownet` inside another axum app:
//! ```
//! use std::{net::SocketAddr, sync::Arc};
//!
//! use axum::{Router, routing::get};
//! use flownet_core::{Ledger, LedgerConfig, memory::MemoryLedger};
//! use flownet_gateway::{Gateway, GatewayConfig};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let ledger: Arc<dyn Ledger> = Arc::new(MemoryLedger::new(LedgerConfig::default(), 1_000));
//! let gateway = Gateway::new(ledger, None, [], None, GatewayConfig::default()).await?;
//! let (stop_tx, stop) = tokio::sync::watch::channel(false);
//! let events = gateway.spawn_events(stop.clone());
//! let app = Router::new()
//!     .route("/", get(|| async { "my app" }))
//!     .nest("/flownet", gateway.router());
//!
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! let addr: SocketAddr = listener.local_addr()?;
//! let server = tokio::spawn(flownet_gateway::serve(
//!     listener,
//!     app,
//!     flownet_gateway::HttpLimits::default(),
//!     async move {
//!         let _ = stop.clone().wait_for(|stopped| *stopped).await;
//!     },
//! ));
//! let health = tokio::task::spawn_blocking(move || {
//!     ureq::get(format!("http://{addr}/flownet/healthz")).call()?.body_mut().read_to_string()
//! })
//! .await??;
//! assert_eq!(health, "ok");
//! stop_tx.send(true)?;
//! server.await??;
//! events.await?;
//! # Ok(())
//! # }
//! ```

pub mod api;
pub mod api_error;
mod assets;
mod error;
pub mod events;
#[cfg(feature = "flow")]
pub mod flow;
pub mod gateway;
pub mod idempotency;
pub mod keys;
pub mod limits;
pub mod metrics;
pub mod openai;
mod router;
#[cfg(feature = "flow")]
pub mod sponsor;
mod stream;

pub use assets::page_built;
pub use error::{Error, Result};
/// Which node addresses a gateway fetches from (`GatewayConfig::fetch_policy`).
pub use flownet_node::FetchPolicy;
/// The serving loop of every FlowNet server (header and body timeouts, a connection
/// cap) and its limits.
pub use flownet_node::{HttpLimits, serve};
pub use gateway::{Gateway, GatewayConfig, ModelMeta};
