//! FlowNet on Flow: [`FlowLedger`] implements [`flownet_core::Ledger`] over the
//! Flow Access API, so every frontend runs on the Flow emulator, testnet or
//! mainnet exactly as on the embedded ledger.
//!
//! The layers, bottom up: [`rlp`] and [`keys`] (ECDSA P-256 / secp256k1 with
//! SHA2-256 / SHA3-256 under Flow's domain tag), [`transaction`] (payload,
//! envelope, signer ordering, id), [`cadence`] (JSON-Cadence), the hand-written
//! protobuf messages and gRPC client of the Access API, the project's Cadence
//! templates with their imports resolved per network, and the mapping of
//! Cadence rejections back to the core's typed errors.

pub mod access;
mod account;
pub mod cadence;
pub mod errors;
pub mod keys;
mod ledger;
pub mod pow;
pub mod proto;
pub mod rlp;
pub mod sponsor;
pub mod sponsor_state;
pub mod templates;
pub mod transaction;

pub use access::AccessClient;
pub use account::{FlowSigner, ledger_id};
pub use cadence::Value;
pub use keys::{FlowKey, HashAlgorithm, SignatureAlgorithm};
pub use ledger::{FlowConfig, FlowLedger};
pub use pow::{Challenge, Proof};
pub use sponsor::{
    AccountPolicy, CreatedAccount, Payer, RateLimiter, Sponsor, SponsorError, SponsorPolicy,
    Whitelist,
};
pub use sponsor_state::SponsorState;
pub use templates::{Network, Template};
pub use transaction::{ProposalKey, Transaction, TxSignature};

/// Errors of the Flow client before they reach the core's error kinds.
#[derive(Debug, thiserror::Error)]
pub enum FlowError {
    #[error("key: {0}")]
    Key(String),
    #[error("transaction: {0}")]
    Transaction(String),
    #[error("json-cadence: {0}")]
    Cadence(String),
    #[error("unsupported: {0}")]
    Unsupported(String),
    #[error("access api: {0}")]
    Access(String),
    #[error("configuration: {0}")]
    Config(String),
}

/// Result with the Flow [`FlowError`].
pub type Result<T, E = FlowError> = std::result::Result<T, E>;

impl From<FlowError> for flownet_core::Error {
    fn from(e: FlowError) -> Self {
        match e {
            FlowError::Access(m) => flownet_core::Error::Network(m),
            other => flownet_core::Error::InvalidInput(other.to_string()),
        }
    }
}
