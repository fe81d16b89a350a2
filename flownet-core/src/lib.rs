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
pub mod cid;
pub mod crypto;
pub mod embedding;
pub mod endpoint;
mod error;
pub mod memory;
pub mod mime;
pub mod node;
pub mod ocr;
mod ports;
pub mod rate;
pub mod rules;
pub mod speech;
mod types;
pub mod waiting;
mod wallet;

pub use action::{Action, Envelope, LedgerId, SignedEnvelope};
pub use address::Address;
pub use amount::Amount;
pub use crypto::{Digest32, HashAlgo, PublicKey, Signature, SigningKey};
pub use embedding::Embeddings;
pub use endpoint::Endpoint;
pub use error::{Error, ErrorKind, Result};
pub use node::{NodeEvent, NodeWorker};
pub use ports::{
    BlobStore, Engine, InferenceOutput, InferenceRequest, InputFetcher, Ledger, LedgerInfo,
    ModelInfo, Receipt, TaskKind, TaskQuery, TaskStreams,
};
pub use ports::{FinishReason, Generation, GenerationFold, LedgerChange, StreamChunk, Usage};
pub use rules::{Outcome, StateStore};
pub use types::*;
pub use wallet::Wallet;

/// Sorts nodes best first: score (exact comparison), then the lowest price of any of
/// their offers, then address, so every ledger lists nodes in the same order.
pub fn rank_nodes(nodes: &mut [Node]) {
    let min_price = |n: &Node| n.models.iter().map(|m| m.price).min().unwrap_or_default();
    nodes.sort_by(|a, b| {
        b.stats
            .cmp_rank(&a.stats)
            .then_with(|| min_price(a).cmp(&min_price(b)))
            .then_with(|| a.owner.cmp(&b.owner))
    });
}

/// The data dir when none is named on the command line: `$FLOWNET_HOME` when set and
/// not empty, else `.flownet` in `$HOME`, else `.flownet` here. The values of the two
/// variables are arguments (this crate reads no environment); the CLI and the Python
/// package pass them.
pub fn default_data_dir(
    flownet_home: Option<std::ffi::OsString>,
    home: Option<std::ffi::OsString>,
) -> std::path::PathBuf {
    use std::path::PathBuf;
    match (flownet_home.filter(|h| !h.is_empty()), home) {
        (Some(dir), _) => PathBuf::from(dir),
        (None, Some(home)) => PathBuf::from(home).join(".flownet"),
        (None, None) => PathBuf::from(".flownet"),
    }
}

/// Why [`best_offer`] found no offer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoOffer {
    /// No active node offers the model.
    Unoffered,
    /// Every offer is above the max price; the cheapest one costs this much.
    AboveMax { cheapest: Amount },
}

/// The best offer of `model` at or under `max_price` (any price without one): the
/// first active node of `nodes` that has one, `nodes` being in ranking order as
/// ledgers list them (see [`rank_nodes`]).
pub fn best_offer<'a>(
    nodes: &'a [Node],
    model: &str,
    max_price: Option<Amount>,
) -> std::result::Result<(&'a Node, &'a OfferedModel), NoOffer> {
    offers_within(nodes, model, max_price).map(|mut all| all.remove(0))
}

/// Every offer of `model` at or under `max_price` by an active node, best first (the
/// order of `nodes`): the best one and those to fall back on when it does not claim.
/// Never empty: without one, why.
pub fn offers_within<'a>(
    nodes: &'a [Node],
    model: &str,
    max_price: Option<Amount>,
) -> std::result::Result<Vec<(&'a Node, &'a OfferedModel)>, NoOffer> {
    let mut cheapest: Option<Amount> = None;
    let mut within = Vec::new();
    for node in nodes.iter().filter(|n| n.active) {
        if let Some(offer) = node.offer(model) {
            if max_price.is_none_or(|max| offer.price <= max) {
                within.push((node, offer));
            } else {
                cheapest = Some(cheapest.map_or(offer.price, |c| c.min(offer.price)));
            }
        }
    }
    if !within.is_empty() {
        return Ok(within);
    }
    Err(
        cheapest.map_or(NoOffer::Unoffered, |cheapest| NoOffer::AboveMax {
            cheapest,
        }),
    )
}
