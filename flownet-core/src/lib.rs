//! FlowNet's core: the domain types and the marketplace rulebook as pure, deterministic
//! code, plus the ports ([`Ledger`], [`Engine`], [`BlobStore`]) that the adapter crates
//! implement and the node runtime's logic that drives them.
//!
//! This crate does no I/O and reads no clock: the ledger passes time into
//! [`rules::execute`], and the frontends drive [`NodeWorker::tick`] on their own timer.
//!
//! ## Feature Flags
//! None. The in-memory ledger, blob store and engine in [`memory`] are plain code, so
//! the layers above use them in their tests without a feature.
//!
//! ## Example
//! ```
//! use flownet_core::{Amount, LedgerConfig, SigningKey, Address, Action, Envelope, rules, memory::MemoryStore};
//!
//! let key = SigningKey::generate();
//! let me = Address::derive(&key.public_key());
//! let ledger = flownet_core::Digest32([7; 32]);
//! let config = LedgerConfig::default();
//! let mut store = MemoryStore::default();
//! let create = Envelope { ledger, signer: me, sequence: 0, action: Action::CreateAccount { public_key: key.public_key(), hash_algo: Default::default() } };
//! rules::execute(&mut store, &config, &ledger, &create.sign(&key), 1_000).unwrap();
//! let faucet = Envelope { ledger, signer: me, sequence: 1, action: Action::Faucet };
//! rules::execute(&mut store, &config, &ledger, &faucet.clone().sign(&key), 1_001).unwrap();
//! assert_eq!(store.state.accounts[&me].balance, Amount::tokens(1000));
//! // The same envelope again is a replay: its sequence number is spent.
//! assert!(rules::execute(&mut store, &config, &ledger, &faucet.sign(&key), 1_002).is_err());
//! ```

mod action;
mod address;
mod amount;
pub mod crypto;
mod error;
pub mod memory;
pub mod node;
mod ports;
pub mod rules;
mod types;
mod wallet;

pub use action::{Action, Envelope, LedgerId, SignedEnvelope};
pub use address::Address;
pub use amount::Amount;
pub use crypto::{Digest32, HashAlgo, PublicKey, Signature, SigningKey};
pub use error::{Error, ErrorKind, Result};
pub use node::{NodeEvent, NodeWorker};
pub use ports::{
    BlobStore, Engine, InferenceOutput, InferenceRequest, Ledger, LedgerInfo, ModelInfo, Receipt,
    TaskKind, TaskQuery,
};
pub use ports::{FinishReason, Generation, GenerationFold, StreamChunk, Usage};
pub use rules::{Outcome, StateStore};
pub use types::*;
pub use wallet::Wallet;

/// Sorts nodes best first: score (exact comparison), then the lowest price of any of
/// their offers, then address, so every ledger lists nodes in the same order.
pub fn rank_nodes(nodes: &mut [Node]) {
    let min_price = |n: &Node| n.models.iter().map(|m| m.price).min().unwrap_or_default();
    nodes.sort_by(|a, b| {
        b.stats
            .cmp_score(&a.stats)
            .then_with(|| min_price(a).cmp(&min_price(b)))
            .then_with(|| a.owner.cmp(&b.owner))
    });
}
