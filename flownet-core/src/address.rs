//! Account addresses: 8 bytes, written `0x` and 16 hex digits, as on Flow.

use std::{fmt, str::FromStr};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::{Error, crypto};

/// An account address.
#[derive(Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Address(pub [u8; 8]);

impl Address {
    /// The address the embedded ledger gives an account key: the first 8 bytes of the
    /// domain-tagged SHA3-256 of the public key, so anyone can derive it offline.
    pub fn derive(public_key: &crypto::PublicKey) -> Self {
        let digest = crypto::tagged_hash(crypto::ADDRESS_TAG, &[public_key.as_bytes()]);
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(&digest[..8]);
        Self(bytes)
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "0x{}", hex::encode(self.0))
    }
}

impl fmt::Debug for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl FromStr for Address {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        let hex_part = s.strip_prefix("0x").unwrap_or(s);
        let mut bytes = [0u8; 8];
        if hex_part.len() != 16 || hex::decode_to_slice(hex_part, &mut bytes).is_err() {
            return Err(Error::InvalidInput(format!(
                "invalid address {s:?}: expected 0x and 16 hex digits"
            )));
        }
        Ok(Self(bytes))
    }
}

impl Serialize for Address {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Address {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_through_text() {
        let a: Address = "0x01cf0e2f2f715450".parse().unwrap();
        assert_eq!(a.to_string(), "0x01cf0e2f2f715450");
        assert_eq!("01cf0e2f2f715450".parse::<Address>().unwrap(), a);
        assert!("0x01cf".parse::<Address>().is_err());
        assert!("0xzzcf0e2f2f715450".parse::<Address>().is_err());
    }
}
