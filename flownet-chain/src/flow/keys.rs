//! Flow account keys: ECDSA on P-256 or secp256k1, over SHA2-256 or SHA3-256,
//! with Flow's domain-tagged message hashing. Signatures are `r ‖ s`, 32 bytes
//! each; public keys are `X ‖ Y`, 32 bytes each.

use std::fmt;

use p256::ecdsa::signature::hazmat::{PrehashSigner, PrehashVerifier};
use sha2::Digest as _;

use super::{FlowError, Result};

/// The domain tag every transaction signature is over, right-padded to 32 bytes.
pub const TRANSACTION_DOMAIN_TAG: &str = "FLOW-V0.0-transaction";

/// Flow's padded form of a domain tag.
pub fn padded_tag(tag: &str) -> [u8; 32] {
    let mut out = [0u8; 32];
    out[..tag.len()].copy_from_slice(tag.as_bytes());
    out
}

/// A signature curve, with Flow's numbering.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SignatureAlgorithm {
    EcdsaP256 = 2,
    EcdsaSecp256k1 = 3,
}

impl SignatureAlgorithm {
    pub fn from_code(code: u32) -> Result<Self> {
        match code {
            2 => Ok(Self::EcdsaP256),
            3 => Ok(Self::EcdsaSecp256k1),
            other => Err(FlowError::Unsupported(format!(
                "signature algorithm {other}"
            ))),
        }
    }

    /// The Cadence `SignatureAlgorithm` case name.
    pub fn cadence_name(self) -> &'static str {
        match self {
            Self::EcdsaP256 => "ECDSA_P256",
            Self::EcdsaSecp256k1 => "ECDSA_secp256k1",
        }
    }
}

/// A hash algorithm, with Flow's numbering.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HashAlgorithm {
    Sha2_256 = 1,
    Sha3_256 = 3,
}

impl HashAlgorithm {
    pub fn from_code(code: u32) -> Result<Self> {
        flownet_core::crypto::HashAlgo::from_flow_code(code)
            .map(Self::from_core)
            .ok_or_else(|| FlowError::Unsupported(format!("hash algorithm {code}")))
    }

    /// The Flow algorithm of the core's (the same numbers, the core's mapping).
    pub fn from_core(h: flownet_core::crypto::HashAlgo) -> Self {
        match h {
            flownet_core::crypto::HashAlgo::Sha2_256 => Self::Sha2_256,
            flownet_core::crypto::HashAlgo::Sha3_256 => Self::Sha3_256,
        }
    }

    /// The core's algorithm of a Flow account key's.
    pub fn to_core(self) -> flownet_core::crypto::HashAlgo {
        match self {
            Self::Sha2_256 => flownet_core::crypto::HashAlgo::Sha2_256,
            Self::Sha3_256 => flownet_core::crypto::HashAlgo::Sha3_256,
        }
    }

    /// `H(parts…)`.
    pub fn hash(self, parts: &[&[u8]]) -> [u8; 32] {
        match self {
            Self::Sha2_256 => {
                let mut h = sha2::Sha256::new();
                for p in parts {
                    h.update(p);
                }
                h.finalize().into()
            }
            Self::Sha3_256 => {
                let mut h = sha3::Sha3_256::new();
                for p in parts {
                    h.update(p);
                }
                h.finalize().into()
            }
        }
    }
}

#[derive(Clone)]
enum Secret {
    P256(p256::ecdsa::SigningKey),
    K256(k256::ecdsa::SigningKey),
}

/// A private key that signs Flow transactions.
#[derive(Clone)]
pub struct FlowKey {
    secret: Secret,
    hash: HashAlgorithm,
}

impl fmt::Debug for FlowKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FlowKey")
            .field("algorithm", &self.algorithm())
            .field("hash", &self.hash)
            .field("public_key", &hex::encode(self.public_key()))
            .finish()
    }
}

impl FlowKey {
    /// The key from its 32-byte scalar.
    pub fn from_bytes(
        algorithm: SignatureAlgorithm,
        hash: HashAlgorithm,
        scalar: &[u8],
    ) -> Result<Self> {
        let bad = |_| FlowError::Key("private key must be a 32-byte scalar of its curve".into());
        let secret = match algorithm {
            SignatureAlgorithm::EcdsaP256 => {
                Secret::P256(p256::ecdsa::SigningKey::from_slice(scalar).map_err(bad)?)
            }
            SignatureAlgorithm::EcdsaSecp256k1 => {
                Secret::K256(k256::ecdsa::SigningKey::from_slice(scalar).map_err(bad)?)
            }
        };
        Ok(Self { secret, hash })
    }

    /// The FlowNet key (P-256) as a Flow key with SHA3-256, the pairing
    /// `flownet` accounts are created with: one key for both ledgers.
    pub fn from_core(key: &flownet_core::SigningKey) -> Self {
        Self::from_bytes(
            SignatureAlgorithm::EcdsaP256,
            HashAlgorithm::Sha3_256,
            &key.to_bytes(),
        )
        .expect("a core key is a valid P-256 scalar")
    }

    /// A fresh random key.
    pub fn generate(algorithm: SignatureAlgorithm, hash: HashAlgorithm) -> Self {
        let secret = match algorithm {
            SignatureAlgorithm::EcdsaP256 => {
                Secret::P256(p256::ecdsa::SigningKey::random(&mut rand_core::OsRng))
            }
            SignatureAlgorithm::EcdsaSecp256k1 => {
                Secret::K256(k256::ecdsa::SigningKey::random(&mut rand_core::OsRng))
            }
        };
        Self { secret, hash }
    }

    pub fn algorithm(&self) -> SignatureAlgorithm {
        match self.secret {
            Secret::P256(_) => SignatureAlgorithm::EcdsaP256,
            Secret::K256(_) => SignatureAlgorithm::EcdsaSecp256k1,
        }
    }

    pub fn hash_algorithm(&self) -> HashAlgorithm {
        self.hash
    }

    /// The 32-byte scalar; keep it secret.
    pub fn to_bytes(&self) -> [u8; 32] {
        match &self.secret {
            Secret::P256(k) => k.to_bytes().into(),
            Secret::K256(k) => k.to_bytes().into(),
        }
    }

    /// The public key, `X ‖ Y`.
    pub fn public_key(&self) -> [u8; 64] {
        let mut out = [0u8; 64];
        match &self.secret {
            Secret::P256(k) => {
                out.copy_from_slice(&k.verifying_key().to_encoded_point(false).as_bytes()[1..])
            }
            Secret::K256(k) => {
                out.copy_from_slice(&k.verifying_key().to_encoded_point(false).as_bytes()[1..])
            }
        }
        out
    }

    /// Signs `message` under Flow's transaction domain tag.
    pub fn sign_transaction_message(&self, message: &[u8]) -> [u8; 64] {
        self.sign_with_tag(&padded_tag(TRANSACTION_DOMAIN_TAG), message)
    }

    /// Signs `H(tag ‖ message)` with deterministic nonces (RFC 6979), low-s.
    pub fn sign_with_tag(&self, tag: &[u8], message: &[u8]) -> [u8; 64] {
        let digest = self.hash.hash(&[tag, message]);
        match &self.secret {
            Secret::P256(k) => {
                let sig: p256::ecdsa::Signature = k
                    .sign_prehash(&digest)
                    .expect("a 32-byte digest always signs");
                sig.normalize_s().unwrap_or(sig).to_bytes().into()
            }
            Secret::K256(k) => {
                let sig: k256::ecdsa::Signature = k
                    .sign_prehash(&digest)
                    .expect("a 32-byte digest always signs");
                sig.normalize_s().unwrap_or(sig).to_bytes().into()
            }
        }
    }
}

/// Checks a Flow signature: `signature` over `H(tag ‖ message)` by `public_key`
/// (`X ‖ Y`). High-s signatures are accepted, as Flow's own verifier does.
pub fn verify(
    algorithm: SignatureAlgorithm,
    hash: HashAlgorithm,
    public_key: &[u8],
    tag: &[u8],
    message: &[u8],
    signature: &[u8],
) -> bool {
    if public_key.len() != 64 || signature.len() != 64 {
        return false;
    }
    let digest = hash.hash(&[tag, message]);
    let mut sec1 = [0u8; 65];
    sec1[0] = 4;
    sec1[1..].copy_from_slice(public_key);
    match algorithm {
        SignatureAlgorithm::EcdsaP256 => {
            let (Ok(key), Ok(sig)) = (
                p256::ecdsa::VerifyingKey::from_sec1_bytes(&sec1),
                p256::ecdsa::Signature::from_slice(signature),
            ) else {
                return false;
            };
            let sig = sig.normalize_s().unwrap_or(sig);
            key.verify_prehash(&digest, &sig).is_ok()
        }
        SignatureAlgorithm::EcdsaSecp256k1 => {
            let (Ok(key), Ok(sig)) = (
                k256::ecdsa::VerifyingKey::from_sec1_bytes(&sec1),
                k256::ecdsa::Signature::from_slice(signature),
            ) else {
                return false;
            };
            let sig = sig.normalize_s().unwrap_or(sig);
            key.verify_prehash(&digest, &sig).is_ok()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_pairing_signs_and_verifies() {
        let tag = padded_tag(TRANSACTION_DOMAIN_TAG);
        for algorithm in [
            SignatureAlgorithm::EcdsaP256,
            SignatureAlgorithm::EcdsaSecp256k1,
        ] {
            for hash in [HashAlgorithm::Sha2_256, HashAlgorithm::Sha3_256] {
                let key = FlowKey::generate(algorithm, hash);
                let sig = key.sign_transaction_message(b"payload");
                let pk = key.public_key();
                assert!(verify(algorithm, hash, &pk, &tag, b"payload", &sig));
                assert!(!verify(algorithm, hash, &pk, &tag, b"payloae", &sig));
                let other = match hash {
                    HashAlgorithm::Sha2_256 => HashAlgorithm::Sha3_256,
                    HashAlgorithm::Sha3_256 => HashAlgorithm::Sha2_256,
                };
                assert!(!verify(algorithm, other, &pk, &tag, b"payload", &sig));
                let again = FlowKey::from_bytes(algorithm, hash, &key.to_bytes()).unwrap();
                assert_eq!(again.public_key(), pk);
            }
        }
    }

    #[test]
    fn the_core_key_is_the_same_p256_key() {
        let core = flownet_core::SigningKey::generate();
        let flow = FlowKey::from_core(&core);
        assert_eq!(&flow.public_key(), core.public_key().as_bytes());
    }

    #[test]
    fn the_domain_tag_is_padded_to_32_bytes() {
        let tag = padded_tag(TRANSACTION_DOMAIN_TAG);
        assert_eq!(&tag[..21], b"FLOW-V0.0-transaction");
        assert!(tag[21..].iter().all(|b| *b == 0));
    }
}
