//! FlowNet's chain adapters. [`EmbeddedLedger`] is the default ledger: one SQLite file
//! (WAL mode) that several processes open at once, applying the rulebook of
//! `flownet-core` to signed, sequence-numbered envelopes. It implements
//! [`flownet_core::Ledger`], as the Flow client will, so every frontend runs on either.
//!
//! ## Feature Flags
//! None yet; the Flow Access API client will come behind `flow`.
//!
//! ## Example
//! ```
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! use std::sync::Arc;
//! use flownet_chain::EmbeddedLedger;
//! use flownet_core::{Ledger, LedgerConfig, SigningKey, Wallet};
//!
//! let dir = tempfile::tempdir().unwrap();
//! let ledger = Arc::new(EmbeddedLedger::create(dir.path().join("ledger.db"), LedgerConfig::default()).unwrap());
//! let alice = Wallet::new(ledger.clone(), SigningKey::generate());
//! let granted = alice.ensure_funded().await.unwrap();
//! assert_eq!(ledger.account(alice.address()).await.unwrap().unwrap().balance, granted);
//! # });
//! ```

mod clock;
mod embedded;
mod error;
#[cfg(feature = "flow")]
pub mod flow;

pub use clock::{Clock, ManualClock, SystemClock};
pub use embedded::{EmbeddedLedger, EnvelopeRecord};
pub use error::{Error, Result};
