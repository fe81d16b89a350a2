//! Flow accounts as both the ledger and the sponsor see them: an account a client
//! signs for, the address an account creation made, and the ledger id of a
//! deployment.

use flownet_core::{Address, Digest32, Error, LedgerId, crypto};

use super::{access::TransactionResult, keys::FlowKey};

/// An account this client signs for.
#[derive(Debug, Clone)]
pub struct FlowSigner {
    pub address: Address,
    pub key_index: u32,
    pub key: FlowKey,
}

impl FlowSigner {
    pub fn new(address: Address, key_index: u32, key: FlowKey) -> Self {
        Self {
            address,
            key_index,
            key,
        }
    }
}

/// The ledger id of FlowNet deployed at `marketplace` on the Flow chain
/// `chain_id` (`flow-emulator`, `flow-testnet`, `flow-mainnet`): what every
/// envelope for that deployment names.
pub fn ledger_id(chain_id: &str, marketplace: Address) -> LedgerId {
    Digest32(crypto::tagged_hash(
        crypto::LEDGER_TAG,
        &[b"flow", chain_id.as_bytes(), &marketplace.0],
    ))
}

/// The address of the account a sealed creation transaction made.
pub(crate) fn created_address(r: &TransactionResult) -> Result<Address, Error> {
    r.events
        .iter()
        .find(|e| e.r#type == "flow.AccountCreated")
        .and_then(|e| e.value.field("address").ok()?.as_address().ok())
        .ok_or_else(|| Error::Storage("account creation emitted no flow.AccountCreated".into()))
}
