//! Actions, the envelopes that carry them, and their canonical signed encoding.
//!
//! The signed message is `H(pad32("FLOWNET-V1-ENVELOPE") ‖ ledger id ‖ signer ‖ sequence ‖
//! action)`, where every integer is big-endian and every string or byte string is
//! prefixed by its u32 length, and `H` is the signer's hash algorithm: SHA3-256 unless
//! the account was created with SHA2-256. The ledger id binds an envelope to one ledger,
//! the sequence number to one moment of its signer's history: an envelope cannot be
//! replayed on another ledger or twice on the same one.

use serde::{Deserialize, Serialize};

use crate::{
    Address, Amount, Digest32, InputRef, OfferedModel, OutputRef, PriceUnit, PublicKey, Signature,
    SigningKey, TaskId,
    crypto::{self, ENVELOPE_TAG, HashAlgo},
};

/// A state change, as its signer asks for it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Action {
    /// Registers the signer's key and the hash algorithm it signs with; the signer must
    /// be the key's derived address.
    CreateAccount {
        public_key: PublicKey,
        /// Absent in JSON means SHA3-256.
        #[serde(default)]
        hash_algo: HashAlgo,
    },
    /// Takes the dev faucet's one-time welcome amount (embedded ledger only).
    Faucet,
    /// Sends tokens to another account.
    Transfer { to: Address, amount: Amount },
    /// Registers the signer's node, or replaces its name, endpoint and offers.
    RegisterNode {
        name: String,
        endpoint: String,
        models: Vec<OfferedModel>,
    },
    /// Pauses or resumes the signer's node.
    SetNodeActive { active: bool },
    /// Pays the node's listed price into escrow for one inference: for a metered offer,
    /// its price for `max_units` units (0 for a per-task offer).
    Submit {
        node: Address,
        model_id: String,
        prompt: String,
        params: String,
        max_price: Amount,
        /// The input blob, named by hash and fetched by the node from its `uri`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        input: Option<InputRef>,
        #[serde(default, skip_serializing_if = "is_zero")]
        max_units: u64,
    },
    /// The requester takes back an unclaimed task's escrow.
    Cancel { task: TaskId },
    /// The addressed node's owner takes the task.
    Claim { task: TaskId },
    /// The claimer delivers the output and is paid; a metered task states the units
    /// the output holds, is paid for those, and the requester gets the rest back.
    Fulfil {
        task: TaskId,
        result: OutputRef,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        units: Option<u64>,
    },
    /// Anyone refunds a task whose deadline has passed.
    Expire { task: TaskId },
    /// The addressed node's owner says it cannot run an open or claimed task (before
    /// its deadline), with a reason; the requester is refunded at once.
    Decline { task: TaskId, reason: String },
    /// Rates a fulfilled task, 1 to 5 stars.
    Rate { task: TaskId, stars: u8 },
    /// Anyone moves an old task's unclaimed bounty to the treasury.
    Sweep { task: TaskId },
}

impl Action {
    /// The action's name, as logs and receipts show it.
    pub fn name(&self) -> &'static str {
        match self {
            Self::CreateAccount { .. } => "create_account",
            Self::Faucet => "faucet",
            Self::Transfer { .. } => "transfer",
            Self::RegisterNode { .. } => "register_node",
            Self::SetNodeActive { .. } => "set_node_active",
            Self::Submit { .. } => "submit",
            Self::Cancel { .. } => "cancel",
            Self::Claim { .. } => "claim",
            Self::Fulfil { .. } => "fulfil",
            Self::Expire { .. } => "expire",
            Self::Decline { .. } => "decline",
            Self::Rate { .. } => "rate",
            Self::Sweep { .. } => "sweep",
        }
    }

    fn encode(&self, e: &mut Encoder) {
        match self {
            Self::CreateAccount {
                public_key,
                hash_algo,
            } => {
                e.tag(1).bytes(public_key.as_bytes());
                // SHA3-256, the default, adds nothing, so its encoding is the one it had
                // before accounts chose a hash; others append Flow's code for theirs.
                if *hash_algo != HashAlgo::default() {
                    e.u8(hash_algo.flow_code());
                }
                e
            }
            Self::Faucet => e.tag(2),
            Self::Transfer { to, amount } => e.tag(3).address(to).u64(amount.0),
            Self::RegisterNode {
                name,
                endpoint,
                models,
            } => {
                e.tag(4).str(name).str(endpoint).u32(models.len() as u32);
                for m in models {
                    e.str(&m.model_id).bytes(&m.weights_sha256.0).u64(m.price.0);
                }
                // Per-task offers add nothing, so their encoding is the one they had
                // before offers had units; otherwise each offer's unit code follows.
                if models.iter().any(|m| m.unit != PriceUnit::Task) {
                    for m in models {
                        e.u8(m.unit.code());
                    }
                }
                e
            }
            Self::SetNodeActive { active } => e.tag(5).u8(u8::from(*active)),
            Self::Submit {
                node,
                model_id,
                prompt,
                params,
                max_price,
                input,
                max_units,
            } => {
                e.tag(6)
                    .address(node)
                    .str(model_id)
                    .str(prompt)
                    .str(params)
                    .u64(max_price.0);
                // A submission with neither adds nothing (its encoding from before).
                if input.is_some() || *max_units != 0 {
                    e.u64(*max_units);
                    match input {
                        None => e.u8(0),
                        Some(i) => e.u8(1).bytes(&i.sha256.0).u64(i.size).str(&i.uri),
                    };
                }
                e
            }
            Self::Cancel { task } => e.tag(7).u64(*task),
            Self::Claim { task } => e.tag(8).u64(*task),
            Self::Fulfil {
                task,
                result,
                units,
            } => {
                e.tag(9)
                    .u64(*task)
                    .bytes(&result.sha256.0)
                    .str(&result.uri)
                    .str(&result.mime)
                    .u64(result.size);
                if let Some(units) = units {
                    e.u64(*units);
                }
                e
            }
            Self::Expire { task } => e.tag(10).u64(*task),
            Self::Rate { task, stars } => e.tag(11).u64(*task).u8(*stars),
            Self::Sweep { task } => e.tag(12).u64(*task),
            Self::Decline { task, reason } => e.tag(13).u64(*task).str(reason),
        };
    }
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// Identifies one ledger: the domain-tagged hash of its genesis parameters.
pub type LedgerId = Digest32;

/// An action with the fields that make its signature unique.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    pub ledger: LedgerId,
    pub signer: Address,
    pub sequence: u64,
    pub action: Action,
}

impl Envelope {
    /// The canonical bytes that are hashed for signing.
    pub fn canonical_bytes(&self) -> Vec<u8> {
        let mut e = Encoder::default();
        e.bytes(&self.ledger.0)
            .address(&self.signer)
            .u64(self.sequence);
        self.action.encode(&mut e);
        e.0
    }

    /// The message a signer hashes: the padded domain tag, then the canonical bytes.
    /// A WebCrypto signer signs exactly these bytes with ECDSA P-256 and SHA-256.
    pub fn signing_message(&self) -> Vec<u8> {
        let mut m = crypto::padded_tag(ENVELOPE_TAG).to_vec();
        m.extend_from_slice(&self.canonical_bytes());
        m
    }

    /// The SHA3-256 digest that is signed by default keys.
    pub fn signing_digest(&self) -> [u8; 32] {
        crypto::tagged_hash(ENVELOPE_TAG, &[&self.canonical_bytes()])
    }

    /// The digest a key with hash algorithm `algo` signs.
    pub fn signing_digest_with(&self, algo: HashAlgo) -> [u8; 32] {
        match algo {
            HashAlgo::Sha3_256 => self.signing_digest(),
            HashAlgo::Sha2_256 => algo.digest(&self.signing_message()),
        }
    }

    /// Signs the envelope with SHA3-256.
    pub fn sign(self, key: &SigningKey) -> SignedEnvelope {
        self.sign_with(key, HashAlgo::Sha3_256)
    }

    /// Signs the envelope for a key whose account hashes with `algo`.
    pub fn sign_with(self, key: &SigningKey, algo: HashAlgo) -> SignedEnvelope {
        let signature = key.sign_prehash(&self.signing_digest_with(algo));
        SignedEnvelope {
            envelope: self,
            signature,
        }
    }
}

/// An envelope with its signer's signature.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedEnvelope {
    #[serde(flatten)]
    pub envelope: Envelope,
    pub signature: Signature,
}

impl SignedEnvelope {
    /// The envelope's identity: SHA3-256 of its SHA3 signing digest and signature
    /// (whatever hash the signer's key uses, so identities never depend on accounts).
    pub fn hash(&self) -> Digest32 {
        Digest32(crypto::tagged_hash(
            ENVELOPE_TAG,
            &[&self.envelope.signing_digest(), &self.signature.0],
        ))
    }

    /// Whether `key` signed this envelope with SHA3-256.
    pub fn verify(&self, key: &PublicKey) -> bool {
        self.verify_with(key, HashAlgo::Sha3_256)
    }

    /// Whether `key` signed this envelope, hashing with `algo`.
    pub fn verify_with(&self, key: &PublicKey, algo: HashAlgo) -> bool {
        key.verify_prehash(&self.envelope.signing_digest_with(algo), &self.signature)
    }
}

#[derive(Default)]
struct Encoder(Vec<u8>);

impl Encoder {
    fn tag(&mut self, t: u8) -> &mut Self {
        self.u8(t)
    }
    fn u8(&mut self, v: u8) -> &mut Self {
        self.0.push(v);
        self
    }
    fn u32(&mut self, v: u32) -> &mut Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    fn u64(&mut self, v: u64) -> &mut Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    fn bytes(&mut self, b: &[u8]) -> &mut Self {
        self.u32(b.len() as u32);
        self.0.extend_from_slice(b);
        self
    }
    fn str(&mut self, s: &str) -> &mut Self {
        self.bytes(s.as_bytes())
    }
    fn address(&mut self, a: &Address) -> &mut Self {
        self.0.extend_from_slice(&a.0);
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(action: Action) -> Envelope {
        Envelope {
            ledger: Digest32([1; 32]),
            signer: Address([2; 8]),
            sequence: 7,
            action,
        }
    }

    #[test]
    fn any_change_to_a_signed_envelope_breaks_its_signature() {
        let key = SigningKey::generate();
        let signed = env(Action::Rate { task: 3, stars: 4 }).sign(&key);
        assert!(signed.verify(&key.public_key()));
        let mut tampered = signed.clone();
        tampered.envelope.action = Action::Rate { task: 3, stars: 5 };
        assert!(!tampered.verify(&key.public_key()));
        let mut replayed = signed.clone();
        replayed.envelope.sequence = 8;
        assert!(!replayed.verify(&key.public_key()));
        let mut other_ledger = signed;
        other_ledger.envelope.ledger = Digest32([9; 32]);
        assert!(!other_ledger.verify(&key.public_key()));
    }

    #[test]
    fn length_prefixes_keep_fields_apart() {
        let a = env(Action::Submit {
            node: Address([0; 8]),
            model_id: "ab".into(),
            prompt: "c".into(),
            params: "{}".into(),
            max_price: Amount(1),
            input: None,
            max_units: 0,
        });
        let b = env(Action::Submit {
            node: Address([0; 8]),
            model_id: "a".into(),
            prompt: "bc".into(),
            params: "{}".into(),
            max_price: Amount(1),
            input: None,
            max_units: 0,
        });
        assert_ne!(a.canonical_bytes(), b.canonical_bytes());
    }

    #[test]
    fn a_signature_verifies_only_under_its_hash_algorithm() {
        let key = SigningKey::generate();
        let e = env(Action::Rate { task: 3, stars: 4 });
        let sha2 = e.clone().sign_with(&key, HashAlgo::Sha2_256);
        assert!(sha2.verify_with(&key.public_key(), HashAlgo::Sha2_256));
        assert!(!sha2.verify_with(&key.public_key(), HashAlgo::Sha3_256));
        let sha3 = e.clone().sign(&key);
        assert!(sha3.verify(&key.public_key()));
        assert!(!sha3.verify_with(&key.public_key(), HashAlgo::Sha2_256));
        // The SHA2 digest is plain SHA-256 of the padded tag and the canonical bytes,
        // which is what WebCrypto's ECDSA with SHA-256 hashes.
        let mut message = b"FLOWNET-V1-ENVELOPE".to_vec();
        message.resize(32, 0);
        message.extend_from_slice(&e.canonical_bytes());
        assert_eq!(e.signing_message(), message);
        assert_eq!(
            e.signing_digest_with(HashAlgo::Sha2_256),
            crate::crypto::sha256(&message).0
        );
    }

    #[test]
    fn create_account_encodes_a_hash_algorithm_only_when_not_the_default() {
        let pk = SigningKey::generate().public_key();
        let sha3 = env(Action::CreateAccount {
            public_key: pk,
            hash_algo: HashAlgo::Sha3_256,
        });
        let sha2 = env(Action::CreateAccount {
            public_key: pk,
            hash_algo: HashAlgo::Sha2_256,
        });
        let (a, b) = (sha3.canonical_bytes(), sha2.canonical_bytes());
        assert_eq!(b.len(), a.len() + 1);
        assert_eq!(&b[..a.len()], &a[..]);
        assert_eq!(b[a.len()], 1, "Flow's code for SHA2_256");
        // JSON without the field reads as SHA3-256.
        let json = format!(r#"{{"type":"create_account","public_key":"{pk}"}}"#);
        let action: Action = serde_json::from_str(&json).unwrap();
        assert_eq!(action, sha3.action);
    }

    #[test]
    fn envelopes_round_trip_through_json() {
        let key = SigningKey::generate();
        let signed = env(Action::Transfer {
            to: Address([3; 8]),
            amount: Amount(5),
        })
        .sign(&key);
        let json = serde_json::to_string(&signed).unwrap();
        let back: SignedEnvelope = serde_json::from_str(&json).unwrap();
        assert_eq!(back, signed);
        assert!(back.verify(&key.public_key()));
    }
}
