//! FlowNet's chain adapters. [`EmbeddedLedger`] is the default ledger: one SQLite file
//! (WAL mode) that several processes open at once, applying the rulebook of
//! `flownet-core` to signed, sequence-numbered envelopes. It implements
//! [`flownet_core::Ledger`], as the Flow client does, so every frontend runs on either.
//! Each envelope's record chains a digest of the whole state to the record before it:
//! opening refuses a file edited outside the ledger's code ([`Error::Tampered`]), and
//! [`EmbeddedLedger::verify`] replays the log and names the first [`Mismatch`].
//!
//! ## Feature Flags
//! - `flow`: [`flow::FlowLedger`], the same ledger over FlowNet's Cadence contracts
//!   on a Flow network (emulator, testnet, mainnet) through the Access API, with the
//!   project's own transaction encoder and signer and JSON-Cadence codec.
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
mod digest;
mod embedded;
mod error;
#[cfg(feature = "flow")]
pub mod flow;
mod verify;

pub use clock::{Clock, ManualClock, SystemClock};
pub use embedded::{EmbeddedLedger, EnvelopeRecord};
pub use error::{Error, Mismatch, Result};
pub use verify::VerifyReport;
