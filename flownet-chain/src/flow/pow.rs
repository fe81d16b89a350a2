//! The proof of work a public [`Sponsor`](super::Sponsor) asks for before it
//! creates an account: keys cost nothing to make, so without a price per
//! account one client could have the sponsor pay for thousands.
//!
//! The sponsor hands out a [`Challenge`] bound to the key and an expiry,
//! authenticated with HMAC-SHA256 under the sponsor's secret (stateless: the
//! sponsor stores nothing until the challenge is spent). The client finds a
//! nonce such that `SHA-256(challenge ‖ public key ‖ nonce as 8 bytes big
//! endian)` starts with `difficulty` zero bits ([`solve`]): 2^difficulty
//! hashes on average, about a second of one laptop core at 20 bits. The
//! sponsor checks the proof ([`PowIssuer::verify`]) and spends the challenge
//! (each is good for one account).

use sha2::{Digest, Sha256};

/// Bytes of a challenge: the expiry (unix seconds, 8 bytes big endian), 16
/// random bytes, the HMAC-SHA256 of both and the key.
pub const CHALLENGE_LEN: usize = 8 + 16 + 32;

/// Most difficulty a sponsor may ask for: 2^40 hashes is hours of a core.
pub const MAX_DIFFICULTY: u8 = 40;

/// What a client must solve before the sponsor creates its account.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Challenge {
    /// [`CHALLENGE_LEN`] bytes, hex.
    pub challenge: String,
    /// Leading zero bits the work hash must have.
    pub difficulty: u8,
    /// Unix seconds after which the challenge is refused.
    pub expires: u64,
}

/// A solved [`Challenge`].
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Proof {
    /// The challenge as handed out, hex.
    pub challenge: String,
    pub nonce: u64,
}

/// `SHA-256(challenge ‖ key ‖ nonce)`, the hash whose leading zeros are the work.
pub fn work_hash(challenge: &[u8], key: &[u8], nonce: u64) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(challenge);
    h.update(key);
    h.update(nonce.to_be_bytes());
    h.finalize().into()
}

/// The number of leading zero bits of `hash`.
pub fn leading_zero_bits(hash: &[u8]) -> u32 {
    let mut n = 0;
    for b in hash {
        if *b == 0 {
            n += 8;
        } else {
            return n + b.leading_zeros();
        }
    }
    n
}

/// The first nonce whose work hash has `difficulty` leading zero bits.
pub fn solve(challenge: &[u8], key: &[u8], difficulty: u8) -> u64 {
    let mut prefix = Sha256::new();
    prefix.update(challenge);
    prefix.update(key);
    (0u64..)
        .find(|nonce| {
            let mut h = prefix.clone();
            h.update(nonce.to_be_bytes());
            leading_zero_bits(&h.finalize()) >= u32::from(difficulty)
        })
        .expect("a nonce below 2^64 is found")
}

/// Solves `challenge` for `key` (the 64 bytes of a P-256 public key).
pub fn solve_challenge(challenge: &Challenge, key: &[u8]) -> Result<Proof, String> {
    let bytes = hex::decode(&challenge.challenge).map_err(|e| format!("challenge: {e}"))?;
    if challenge.difficulty > MAX_DIFFICULTY {
        return Err(format!(
            "the sponsor asks for {} bits of work, more than {MAX_DIFFICULTY}",
            challenge.difficulty
        ));
    }
    Ok(Proof {
        nonce: solve(&bytes, key, challenge.difficulty),
        challenge: challenge.challenge.clone(),
    })
}

/// HMAC-SHA256 (RFC 2104) of `parts`, concatenated, under `key`.
pub fn hmac_sha256(key: &[u8; 32], parts: &[&[u8]]) -> [u8; 32] {
    let mut block = [0u8; 64];
    block[..32].copy_from_slice(key);
    let pad = |byte: u8| block.map(|b| b ^ byte);
    let mut inner = Sha256::new();
    inner.update(pad(0x36));
    for p in parts {
        inner.update(p);
    }
    let mut outer = Sha256::new();
    outer.update(pad(0x5c));
    outer.update(inner.finalize());
    outer.finalize().into()
}

/// Hands out and checks the challenges of one sponsor.
#[derive(Clone)]
pub struct PowIssuer {
    secret: [u8; 32],
    /// 0: no work asked (tests, a private sponsor).
    pub difficulty: u8,
    /// Seconds a challenge is good for.
    pub ttl_s: u64,
}

impl std::fmt::Debug for PowIssuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PowIssuer")
            .field("difficulty", &self.difficulty)
            .field("ttl_s", &self.ttl_s)
            .finish_non_exhaustive()
    }
}

/// Why a proof of work was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PowError {
    #[error("this sponsor asks for a proof of work: get a challenge first")]
    Missing,
    #[error("the challenge is malformed or not this sponsor's for this key")]
    Forged,
    #[error("the challenge expired: get a new one")]
    Expired,
    #[error("the work hash has {got} leading zero bits, {needed} needed")]
    TooLittle { got: u32, needed: u8 },
}

impl PowIssuer {
    pub fn new(secret: [u8; 32], difficulty: u8, ttl_s: u64) -> Self {
        Self {
            secret,
            difficulty: difficulty.min(MAX_DIFFICULTY),
            ttl_s,
        }
    }

    fn mac(&self, key: &[u8], head: &[u8]) -> [u8; 32] {
        hmac_sha256(&self.secret, &[b"flownet-pow-v1", head, key])
    }

    /// A fresh challenge for `key` at `now` (unix seconds), 16 bytes of it
    /// from `random`.
    pub fn issue(&self, key: &[u8], now: u64, random: [u8; 16]) -> Challenge {
        let expires = now.saturating_add(self.ttl_s);
        let mut bytes = Vec::with_capacity(CHALLENGE_LEN);
        bytes.extend_from_slice(&expires.to_be_bytes());
        bytes.extend_from_slice(&random);
        let mac = self.mac(key, &bytes);
        bytes.extend_from_slice(&mac);
        Challenge {
            challenge: hex::encode(bytes),
            difficulty: self.difficulty,
            expires,
        }
    }

    /// Checks `proof` for `key` at `now`: the challenge is this sponsor's for
    /// this key, unexpired, and the work is done. Returns the challenge's MAC,
    /// by which the caller spends it, and its expiry.
    pub fn verify(
        &self,
        proof: Option<&Proof>,
        key: &[u8],
        now: u64,
    ) -> Result<Option<([u8; 32], u64)>, PowError> {
        if self.difficulty == 0 {
            return Ok(None);
        }
        let proof = proof.ok_or(PowError::Missing)?;
        let bytes = hex::decode(&proof.challenge).map_err(|_| PowError::Forged)?;
        if bytes.len() != CHALLENGE_LEN {
            return Err(PowError::Forged);
        }
        let (head, mac) = bytes.split_at(24);
        // Compared in full either way; a timing leak of a MAC bound to a key
        // the client chose tells it nothing it can use.
        if self.mac(key, head) != mac {
            return Err(PowError::Forged);
        }
        let expires = u64::from_be_bytes(head[..8].try_into().expect("8 bytes"));
        if now > expires {
            return Err(PowError::Expired);
        }
        let got = leading_zero_bits(&work_hash(&bytes, key, proof.nonce));
        if got < u32::from(self.difficulty) {
            return Err(PowError::TooLittle {
                got,
                needed: self.difficulty,
            });
        }
        Ok(Some((mac.try_into().expect("32 bytes"), expires)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_matches_rfc_4231_case_1() {
        // RFC 4231 test case 1 with a 20-byte key, zero padded to 32 (HMAC pads
        // short keys with zeros, so the result is the same).
        let mut key = [0u8; 32];
        key[..20].copy_from_slice(&[0x0b; 20]);
        assert_eq!(
            hex::encode(hmac_sha256(&key, &[b"Hi ", b"There"])),
            "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"
        );
    }

    #[test]
    fn leading_zeros_count_bits() {
        assert_eq!(leading_zero_bits(&[0xff]), 0);
        assert_eq!(leading_zero_bits(&[0x00, 0x10]), 11);
        assert_eq!(leading_zero_bits(&[0, 0]), 16);
    }

    #[test]
    fn a_solved_challenge_verifies_for_its_key_only_until_it_expires() {
        let issuer = PowIssuer::new([7; 32], 12, 300);
        let key = [1u8; 64];
        let c = issuer.issue(&key, 1000, [9; 16]);
        assert_eq!((c.difficulty, c.expires), (12, 1300));
        let proof = solve_challenge(&c, &key).unwrap();
        let (mac, expires) = issuer.verify(Some(&proof), &key, 1200).unwrap().unwrap();
        assert_eq!(expires, 1300);
        assert_eq!(hex::encode(mac), &c.challenge[48..]);
        assert_eq!(issuer.verify(None, &key, 1200), Err(PowError::Missing));
        // Another key, another sponsor's secret, a changed expiry: forged.
        assert_eq!(
            issuer.verify(Some(&proof), &[2u8; 64], 1200),
            Err(PowError::Forged)
        );
        let other = PowIssuer::new([8; 32], 12, 300);
        assert_eq!(
            other.verify(Some(&proof), &key, 1200),
            Err(PowError::Forged)
        );
        let mut later = proof.clone();
        later.challenge.replace_range(0..16, "00000000ffffffff");
        assert_eq!(
            issuer.verify(Some(&later), &key, 1200),
            Err(PowError::Forged)
        );
        assert_eq!(
            issuer.verify(Some(&proof), &key, 1301),
            Err(PowError::Expired)
        );
        // A nonce that does not do the work.
        let lazy = (0u64..)
            .find(|n| {
                leading_zero_bits(&work_hash(&hex::decode(&c.challenge).unwrap(), &key, *n)) < 12
            })
            .unwrap();
        assert!(matches!(
            issuer.verify(
                Some(&Proof {
                    nonce: lazy,
                    ..proof
                }),
                &key,
                1200
            ),
            Err(PowError::TooLittle { needed: 12, .. })
        ));
        // Difficulty 0 asks for nothing.
        let free = PowIssuer::new([7; 32], 0, 300);
        assert_eq!(free.verify(None, &key, 1200), Ok(None));
    }

    /// The page's solver (web/src/pow.ts) is checked against this vector.
    #[test]
    fn the_work_hash_vector() {
        let challenge = [0xabu8; CHALLENGE_LEN];
        let key = [0x01u8; 64];
        assert_eq!(solve(&challenge, &key, 8), 200);
        assert_eq!(
            hex::encode(work_hash(&challenge, &key, 200)),
            "00fe3256a98e5afb5d781c6297d55990a24bc5de989d44174ac1c4e840ba574f"
        );
    }
}
