//! Flow transactions: the RLP payload and envelope, the signer list and the
//! signature ordering rules, and the transaction id.
//!
//! Signing follows the protocol: every proposer and authorizer other than the
//! payer signs the payload; the payer signs the envelope (payload plus payload
//! signatures). Signatures carry the signer's index in the signer list
//! (proposer, payer, then authorizers, first occurrence only) and are kept
//! sorted by signer index, then key index.

use flownet_core::Address;

use super::{
    FlowError, Result,
    keys::{FlowKey, HashAlgorithm},
    rlp::Item,
};

/// The key that proposes a transaction; its sequence number is the
/// transaction's replay protection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProposalKey {
    pub address: Address,
    pub key_index: u32,
    pub sequence_number: u64,
}

/// One signature of a transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxSignature {
    pub address: Address,
    pub key_index: u32,
    pub signature: Vec<u8>,
}

/// A Flow transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transaction {
    pub script: Vec<u8>,
    /// JSON-Cadence encoded arguments, exactly as signed.
    pub arguments: Vec<Vec<u8>>,
    pub reference_block_id: [u8; 32],
    pub gas_limit: u64,
    pub proposal_key: ProposalKey,
    pub payer: Address,
    pub authorizers: Vec<Address>,
    pub payload_signatures: Vec<TxSignature>,
    pub envelope_signatures: Vec<TxSignature>,
}

impl Transaction {
    /// An unsigned transaction.
    pub fn new(
        script: impl Into<Vec<u8>>,
        arguments: Vec<Vec<u8>>,
        reference_block_id: [u8; 32],
        gas_limit: u64,
        proposal_key: ProposalKey,
        payer: Address,
        authorizers: Vec<Address>,
    ) -> Self {
        Self {
            script: script.into(),
            arguments,
            reference_block_id,
            gas_limit,
            proposal_key,
            payer,
            authorizers,
            payload_signatures: Vec::new(),
            envelope_signatures: Vec::new(),
        }
    }

    fn payload_item(&self) -> Item {
        Item::List(vec![
            Item::bytes(self.script.clone()),
            Item::List(self.arguments.iter().cloned().map(Item::Bytes).collect()),
            Item::bytes(self.reference_block_id.to_vec()),
            Item::uint(self.gas_limit),
            Item::bytes(self.proposal_key.address.0.to_vec()),
            Item::uint(u64::from(self.proposal_key.key_index)),
            Item::uint(self.proposal_key.sequence_number),
            Item::bytes(self.payer.0.to_vec()),
            Item::List(
                self.authorizers
                    .iter()
                    .map(|a| Item::bytes(a.0.to_vec()))
                    .collect(),
            ),
        ])
    }

    fn signatures_item(&self, signatures: &[TxSignature]) -> Result<Item> {
        let signers = self.signer_list();
        signatures
            .iter()
            .map(|s| {
                let index = signers
                    .iter()
                    .position(|a| *a == s.address)
                    .ok_or_else(|| {
                        FlowError::Transaction(format!(
                            "{} signed but is neither proposer, payer nor authorizer",
                            s.address
                        ))
                    })?;
                Ok(Item::List(vec![
                    Item::uint(index as u64),
                    Item::uint(u64::from(s.key_index)),
                    Item::bytes(s.signature.clone()),
                ]))
            })
            .collect::<Result<Vec<_>>>()
            .map(Item::List)
    }

    /// The bytes proposer and authorizers sign (before the domain tag).
    pub fn payload_message(&self) -> Vec<u8> {
        self.payload_item().encode()
    }

    /// The bytes the payer signs: the payload and its signatures.
    pub fn envelope_message(&self) -> Result<Vec<u8>> {
        Ok(Item::List(vec![
            self.payload_item(),
            self.signatures_item(&self.payload_signatures)?,
        ])
        .encode())
    }

    /// Proposer, payer, then authorizers, each once, in order of first mention.
    pub fn signer_list(&self) -> Vec<Address> {
        let mut out: Vec<Address> = Vec::new();
        for a in [self.proposal_key.address, self.payer]
            .into_iter()
            .chain(self.authorizers.iter().copied())
        {
            if !out.contains(&a) {
                out.push(a);
            }
        }
        out
    }

    fn signer_index(&self, address: Address) -> usize {
        self.signer_list()
            .iter()
            .position(|a| *a == address)
            .unwrap_or(usize::MAX)
    }

    fn sort(&mut self) {
        let list = self.signer_list();
        let index = |a: &Address| list.iter().position(|x| x == a).unwrap_or(usize::MAX);
        self.payload_signatures
            .sort_by_key(|s| (index(&s.address), s.key_index));
        self.envelope_signatures
            .sort_by_key(|s| (index(&s.address), s.key_index));
    }

    /// Adds `key`'s payload signature for `address`. The payer signs the
    /// envelope instead; signing the payload again replaces the old signature.
    pub fn sign_payload(&mut self, address: Address, key_index: u32, key: &FlowKey) -> Result<()> {
        if self.signer_index(address) == usize::MAX {
            return Err(FlowError::Transaction(format!(
                "{address} is neither proposer, payer nor authorizer"
            )));
        }
        if !self.envelope_signatures.is_empty() {
            return Err(FlowError::Transaction(
                "the envelope is already signed: payload signatures must come first".into(),
            ));
        }
        let signature = key
            .sign_transaction_message(&self.payload_message())
            .to_vec();
        self.payload_signatures
            .retain(|s| !(s.address == address && s.key_index == key_index));
        self.payload_signatures.push(TxSignature {
            address,
            key_index,
            signature,
        });
        self.sort();
        Ok(())
    }

    /// Adds `key`'s envelope signature for `address` (the payer).
    pub fn sign_envelope(&mut self, address: Address, key_index: u32, key: &FlowKey) -> Result<()> {
        if address != self.payer {
            return Err(FlowError::Transaction(format!(
                "only the payer {} signs the envelope, not {address}",
                self.payer
            )));
        }
        let signature = key
            .sign_transaction_message(&self.envelope_message()?)
            .to_vec();
        self.envelope_signatures
            .retain(|s| !(s.address == address && s.key_index == key_index));
        self.envelope_signatures.push(TxSignature {
            address,
            key_index,
            signature,
        });
        self.sort();
        Ok(())
    }

    /// The transaction's id: SHA3-256 of the RLP of the payload and both
    /// signature lists, as Flow computes it.
    pub fn id(&self) -> Result<[u8; 32]> {
        let encoded = Item::List(vec![
            self.payload_item(),
            self.signatures_item(&self.payload_signatures)?,
            self.signatures_item(&self.envelope_signatures)?,
        ])
        .encode();
        Ok(HashAlgorithm::Sha3_256.hash(&[&encoded]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flow::keys::{self, SignatureAlgorithm};

    fn addr(b: u8) -> Address {
        Address([0, 0, 0, 0, 0, 0, 0, b])
    }

    fn tx(proposer: Address, payer: Address, authorizers: Vec<Address>) -> Transaction {
        Transaction::new(
            b"transaction { execute {} }".to_vec(),
            vec![br#"{"type":"UInt64","value":"7"}"#.to_vec()],
            [9; 32],
            9999,
            ProposalKey {
                address: proposer,
                key_index: 1,
                sequence_number: 42,
            },
            payer,
            authorizers,
        )
    }

    #[test]
    fn the_signer_list_deduplicates_in_order_of_mention() {
        let t = tx(addr(1), addr(2), vec![addr(3), addr(1), addr(2), addr(4)]);
        assert_eq!(t.signer_list(), [addr(1), addr(2), addr(3), addr(4)]);
    }

    #[test]
    fn payload_signatures_are_sorted_and_bound_to_the_payload() {
        let keys: Vec<FlowKey> = (0..3)
            .map(|_| FlowKey::generate(SignatureAlgorithm::EcdsaP256, HashAlgorithm::Sha3_256))
            .collect();
        let mut t = tx(addr(1), addr(9), vec![addr(3), addr(1)]);
        t.sign_payload(addr(3), 0, &keys[2]).unwrap();
        t.sign_payload(addr(1), 1, &keys[0]).unwrap();
        t.sign_envelope(addr(9), 0, &keys[1]).unwrap();
        let order: Vec<Address> = t.payload_signatures.iter().map(|s| s.address).collect();
        assert_eq!(order, [addr(1), addr(3)]);
        let tag = keys::padded_tag(keys::TRANSACTION_DOMAIN_TAG);
        let payload = t.payload_message();
        let p = &t.payload_signatures[0];
        assert!(keys::verify(
            SignatureAlgorithm::EcdsaP256,
            HashAlgorithm::Sha3_256,
            &keys[0].public_key(),
            &tag,
            &payload,
            &p.signature
        ));
        let envelope = t.envelope_message().unwrap();
        assert!(keys::verify(
            SignatureAlgorithm::EcdsaP256,
            HashAlgorithm::Sha3_256,
            &keys[1].public_key(),
            &tag,
            &envelope,
            &t.envelope_signatures[0].signature
        ));
        assert!(
            t.sign_envelope(addr(1), 0, &keys[0]).is_err(),
            "only the payer signs the envelope"
        );
        assert!(
            t.sign_payload(addr(7), 0, &keys[0]).is_err(),
            "strangers do not sign"
        );
    }

    #[test]
    fn the_id_changes_with_any_signature() {
        let key = FlowKey::generate(SignatureAlgorithm::EcdsaSecp256k1, HashAlgorithm::Sha2_256);
        let mut t = tx(addr(1), addr(1), vec![addr(1)]);
        let unsigned = t.id().unwrap();
        t.sign_envelope(addr(1), 1, &key).unwrap();
        assert_ne!(t.id().unwrap(), unsigned);
    }
}
