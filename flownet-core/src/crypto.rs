//! Keys, signatures and hashes. The key type is the one Flow accounts use (ECDSA P-256
//! with SHA3-256), so one key works on the embedded ledger and on Flow.

use std::fmt;

use p256::ecdsa::{
    self,
    signature::hazmat::{PrehashSigner, PrehashVerifier},
};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha3::{Digest, Sha3_256};

use crate::Error;

/// Domain tag of a signed envelope.
pub const ENVELOPE_TAG: &str = "FLOWNET-V1-ENVELOPE";
/// Domain tag of an address derivation.
pub const ADDRESS_TAG: &str = "FLOWNET-V1-ADDRESS";
/// Domain tag of a ledger's identity.
pub const LEDGER_TAG: &str = "FLOWNET-V1-LEDGER";

/// SHA3-256 over a tag right-padded with zeros to 32 bytes (Flow's domain-tag scheme),
/// followed by the parts.
pub fn tagged_hash(tag: &str, parts: &[&[u8]]) -> [u8; 32] {
    let mut padded = [0u8; 32];
    padded[..tag.len()].copy_from_slice(tag.as_bytes());
    let mut h = Sha3_256::new();
    h.update(padded);
    for p in parts {
        h.update(p);
    }
    h.finalize().into()
}

/// SHA-256 of bytes: the content address of blobs and model weights.
pub fn sha256(bytes: &[u8]) -> Digest32 {
    Digest32(sha2::Sha256::digest(bytes).into())
}

/// A 32-byte digest written as 64 lowercase hex digits.
#[derive(Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Digest32(pub [u8; 32]);

impl Digest32 {
    /// Lowercase hex.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// Parses 64 hex digits.
    pub fn from_hex(s: &str) -> Result<Self, Error> {
        let mut out = [0u8; 32];
        hex::decode_to_slice(s, &mut out).map_err(|_| {
            Error::InvalidInput(format!("invalid sha256 {s:?}: expected 64 hex digits"))
        })?;
        Ok(Self(out))
    }
}

impl fmt::Display for Digest32 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for Digest32 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl Serialize for Digest32 {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_hex())
    }
}

impl<'de> Deserialize<'de> for Digest32 {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Self::from_hex(&String::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

/// A P-256 public key: 64 bytes, X then Y (Flow's encoding).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct PublicKey([u8; 64]);

impl PublicKey {
    /// Parses and validates the 64-byte X‖Y encoding: the point must be on the curve.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, Error> {
        let arr: [u8; 64] = bytes.try_into().map_err(|_| {
            Error::InvalidInput(format!("public key must be 64 bytes, got {}", bytes.len()))
        })?;
        let key = Self(arr);
        key.verifying_key()?;
        Ok(key)
    }

    /// Parses 128 hex digits.
    pub fn from_hex(s: &str) -> Result<Self, Error> {
        let bytes = hex::decode(s.strip_prefix("0x").unwrap_or(s))
            .map_err(|_| Error::InvalidInput("public key is not hex".into()))?;
        Self::from_bytes(&bytes)
    }

    /// The 64 raw bytes.
    pub fn as_bytes(&self) -> &[u8; 64] {
        &self.0
    }

    fn verifying_key(&self) -> Result<ecdsa::VerifyingKey, Error> {
        let mut sec1 = [0u8; 65];
        sec1[0] = 4;
        sec1[1..].copy_from_slice(&self.0);
        ecdsa::VerifyingKey::from_sec1_bytes(&sec1)
            .map_err(|_| Error::InvalidInput("public key is not a point on P-256".into()))
    }

    /// Checks `signature` over the 32-byte `digest`.
    pub fn verify_prehash(&self, digest: &[u8; 32], signature: &Signature) -> bool {
        let Ok(key) = self.verifying_key() else {
            return false;
        };
        let Ok(sig) = ecdsa::Signature::from_slice(&signature.0) else {
            return false;
        };
        key.verify_prehash(digest, &sig).is_ok()
    }
}

impl fmt::Display for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({self})")
    }
}

impl Serialize for PublicKey {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for PublicKey {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Self::from_hex(&String::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

/// An ECDSA signature: 64 bytes, r then s (Flow's encoding).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Signature(pub [u8; 64]);

impl fmt::Debug for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Signature({})", hex::encode(self.0))
    }
}

impl Serialize for Signature {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(self.0))
    }
}

impl<'de> Deserialize<'de> for Signature {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        let mut out = [0u8; 64];
        hex::decode_to_slice(&s, &mut out).map_err(serde::de::Error::custom)?;
        Ok(Self(out))
    }
}

/// A P-256 private key. Its `Debug` never shows the secret.
#[derive(Clone)]
pub struct SigningKey(ecdsa::SigningKey);

impl SigningKey {
    /// A fresh key from the operating system's randomness.
    pub fn generate() -> Self {
        Self(ecdsa::SigningKey::random(&mut rand_core::OsRng))
    }

    /// The key from its 32-byte scalar.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, Error> {
        ecdsa::SigningKey::from_slice(bytes)
            .map(Self)
            .map_err(|_| Error::InvalidInput("private key must be a 32-byte P-256 scalar".into()))
    }

    /// The 32-byte scalar; keep it secret.
    pub fn to_bytes(&self) -> [u8; 32] {
        self.0.to_bytes().into()
    }

    /// The matching public key.
    pub fn public_key(&self) -> PublicKey {
        let point = self.0.verifying_key().to_encoded_point(false);
        let mut out = [0u8; 64];
        out.copy_from_slice(&point.as_bytes()[1..]);
        PublicKey(out)
    }

    /// Signs a 32-byte digest (deterministic nonces, RFC 6979), normalised to low-s.
    pub fn sign_prehash(&self, digest: &[u8; 32]) -> Signature {
        let sig: ecdsa::Signature = self
            .0
            .sign_prehash(digest)
            .expect("a 32-byte digest always signs");
        let sig = sig.normalize_s().unwrap_or(sig);
        Signature(sig.to_bytes().into())
    }
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SigningKey(public: {})", self.public_key())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_verify_only_for_their_digest_and_key() {
        let key = SigningKey::generate();
        let other = SigningKey::generate();
        let d = tagged_hash(ENVELOPE_TAG, &[b"hello"]);
        let sig = key.sign_prehash(&d);
        assert!(key.public_key().verify_prehash(&d, &sig));
        assert!(!other.public_key().verify_prehash(&d, &sig));
        let d2 = tagged_hash(ENVELOPE_TAG, &[b"hellp"]);
        assert!(!key.public_key().verify_prehash(&d2, &sig));
    }

    #[test]
    fn keys_round_trip() {
        let key = SigningKey::generate();
        let again = SigningKey::from_bytes(&key.to_bytes()).unwrap();
        assert_eq!(key.public_key(), again.public_key());
        let pk = PublicKey::from_hex(&key.public_key().to_string()).unwrap();
        assert_eq!(pk, key.public_key());
        assert!(
            PublicKey::from_bytes(&[7u8; 64]).is_err(),
            "off-curve points are rejected"
        );
    }

    #[test]
    fn domain_tags_separate_hashes() {
        assert_ne!(
            tagged_hash(ENVELOPE_TAG, &[b"x"]),
            tagged_hash(ADDRESS_TAG, &[b"x"])
        );
    }
}
