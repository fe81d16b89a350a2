//! Keys, signatures and hashes. The key type is the one Flow accounts use (ECDSA P-256),
//! hashed with SHA3-256 by default or SHA2-256 (each account records which, as each Flow
//! account key does), so one key works on the embedded ledger and on Flow.

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

/// A domain tag right-padded with zeros to 32 bytes (Flow's domain-tag scheme).
pub fn padded_tag(tag: &str) -> [u8; 32] {
    let mut padded = [0u8; 32];
    padded[..tag.len()].copy_from_slice(tag.as_bytes());
    padded
}

/// SHA3-256 over a tag right-padded with zeros to 32 bytes (Flow's domain-tag scheme),
/// followed by the parts.
pub fn tagged_hash(tag: &str, parts: &[&[u8]]) -> [u8; 32] {
    let mut h = Sha3_256::new();
    h.update(padded_tag(tag));
    for p in parts {
        h.update(p);
    }
    h.finalize().into()
}

/// SHA-256 of bytes: the content address of blobs and model weights.
pub fn sha256(bytes: &[u8]) -> Digest32 {
    Digest32(sha2::Sha256::digest(bytes).into())
}

/// The hash function an account's key signs with, named as Flow names them. SHA3-256 is
/// the default and what the CLI's keys use; SHA2-256 lets browsers sign with WebCrypto,
/// whose ECDSA hashes the message itself and knows no SHA-3.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum HashAlgo {
    #[default]
    #[serde(rename = "SHA3_256")]
    Sha3_256,
    #[serde(rename = "SHA2_256")]
    Sha2_256,
}

impl HashAlgo {
    /// Flow's name: `SHA3_256` or `SHA2_256`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sha3_256 => "SHA3_256",
            Self::Sha2_256 => "SHA2_256",
        }
    }

    /// Flow's number for the algorithm (its `HashAlgorithm` enum).
    pub fn flow_code(self) -> u8 {
        match self {
            Self::Sha2_256 => 1,
            Self::Sha3_256 => 3,
        }
    }

    /// The algorithm Flow numbers `code`, the inverse of [`HashAlgo::flow_code`].
    pub fn from_flow_code(code: u32) -> Option<Self> {
        [Self::Sha2_256, Self::Sha3_256]
            .into_iter()
            .find(|h| u32::from(h.flow_code()) == code)
    }

    /// The 32-byte digest of `message`.
    pub fn digest(self, message: &[u8]) -> [u8; 32] {
        match self {
            Self::Sha3_256 => Sha3_256::digest(message).into(),
            Self::Sha2_256 => sha2::Sha256::digest(message).into(),
        }
    }
}

impl fmt::Display for HashAlgo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
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

    /// Checks `signature` over the 32-byte `digest`. Both `s` and `n − s` verify, as
    /// in ECDSA itself: signers here emit low-s, but WebCrypto emits either.
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
        // Exactly 32: the curve library would also take a shorter scalar (zero-padded),
        // so a truncated key would silently be another key.
        if bytes.len() != 32 {
            return Err(Error::InvalidInput(format!(
                "private key must be a 32-byte P-256 scalar, got {} bytes",
                bytes.len()
            )));
        }
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

/// The 64-bit seed a prompt stands for: the first 8 bytes of the SHA-256 of its UTF-8
/// bytes, big-endian. A generative model seeds its noise with it unless the params
/// give a seed, so the same prompt gives the same output.
pub fn prompt_seed(prompt: &str) -> u64 {
    let digest = sha256(prompt.as_bytes()).0;
    u64::from_be_bytes(
        digest[..8]
            .try_into()
            .expect("a SHA-256 digest has 32 bytes"),
    )
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
    fn high_s_twins_verify_too() {
        // n, the order of P-256's group.
        let n = hex::decode("ffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551")
            .unwrap();
        let key = SigningKey::generate();
        let d = tagged_hash(ENVELOPE_TAG, &[b"twin"]);
        let low = key.sign_prehash(&d);
        // s' = n - s, by schoolbook subtraction on big-endian bytes.
        let mut high = low;
        let mut borrow = 0i16;
        for i in (0..32).rev() {
            let v = i16::from(n[i]) - i16::from(low.0[32 + i]) - borrow;
            borrow = i16::from(v < 0);
            high.0[32 + i] = v.rem_euclid(256) as u8;
        }
        assert_ne!(high, low);
        assert!(key.public_key().verify_prehash(&d, &low));
        assert!(key.public_key().verify_prehash(&d, &high));
    }

    #[test]
    fn hash_algorithms_have_flow_names_and_codes() {
        assert_eq!(HashAlgo::default(), HashAlgo::Sha3_256);
        assert_eq!(
            serde_json::to_string(&HashAlgo::Sha2_256).unwrap(),
            "\"SHA2_256\""
        );
        assert_eq!(
            (
                HashAlgo::Sha2_256.flow_code(),
                HashAlgo::Sha3_256.flow_code()
            ),
            (1, 3)
        );
        assert_eq!(
            hex::encode(HashAlgo::Sha2_256.digest(b"abc")),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(
            hex::encode(HashAlgo::Sha3_256.digest(b"abc")),
            "3a985da74fe225b2045c172d6bd390bd855f086e3e9d525b46bfe24511431532"
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
