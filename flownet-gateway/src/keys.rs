//! API keys for the OpenAI-compatible endpoints: each maps a bearer token to a
//! custodial account that the gateway's operator created and funds.
//!
//! The tokens themselves are shown once, when made, and stored only as their SHA-256;
//! the accounts' private keys sit beside them in `<data dir>/web/api-keys.json`, which
//! only its owner may read (the gateway signs for these accounts, so it must hold
//! them). The running gateway rereads the file when it changes, so keys made or revoked
//! with `flownet web keys` apply without a restart.

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
    time::{Instant, SystemTime},
};

use flownet_core::{Address, Amount, Digest32, SigningKey, crypto};
use serde::{Deserialize, Serialize};

use crate::{Error, Result, limits::Rate};

/// One key's record, as stored. The gateway is the custodian of these accounts: their
/// private keys are in the key file (owner-only, 0600) in plain hex, so whoever reads
/// the data dir holds the accounts' funds; `Debug` leaves the key out.
#[derive(Clone, Serialize, Deserialize)]
pub struct ApiKeyRecord {
    /// A short public id, for listing and revoking.
    pub id: String,
    pub label: String,
    /// SHA-256 of the bearer token.
    pub token_sha256: Digest32,
    pub address: Address,
    /// The account's P-256 scalar, hex.
    pub private_key: String,
    /// The most one task may cost.
    pub max_price: Amount,
    /// Requests per minute; bursts of up to `burst`.
    pub rate_per_minute: u32,
    pub burst: u32,
    pub created_at: u64,
    #[serde(default)]
    pub revoked: bool,
    /// The ledger the account lives on: `embedded`, or the Flow network whose
    /// address `address` is (Flow assigns addresses).
    #[serde(default = "embedded")]
    pub network: String,
}

impl std::fmt::Debug for ApiKeyRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiKeyRecord")
            .field("id", &self.id)
            .field("label", &self.label)
            .field("address", &self.address)
            .field("private_key", &"<redacted>")
            .field("max_price", &self.max_price)
            .field("revoked", &self.revoked)
            .field("network", &self.network)
            .finish_non_exhaustive()
    }
}

fn embedded() -> String {
    "embedded".into()
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct KeyFile {
    keys: Vec<ApiKeyRecord>,
}

/// A valid key, as a request's handler sees it.
#[derive(Debug, Clone)]
pub struct ApiKey {
    pub id: String,
    pub label: String,
    pub address: Address,
    pub key: SigningKey,
    pub max_price: Amount,
    pub rate: Rate,
    /// The ledger the account lives on (see [`ApiKeyRecord::network`]).
    pub network: String,
}

/// The key file, cached and reread when it changes on disk.
#[derive(Debug)]
pub struct ApiKeys {
    path: PathBuf,
    cache: Mutex<Cache>,
}

#[derive(Debug, Default)]
struct Cache {
    modified: Option<SystemTime>,
    checked: Option<Instant>,
    by_token: HashMap<Digest32, Arc<ApiKey>>,
}

/// The token's prefix, so a leaked token is recognisable in logs and scanners.
pub const TOKEN_PREFIX: &str = "fnk_";

impl ApiKeys {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            cache: Mutex::default(),
        }
    }

    /// The key file of a data dir.
    pub fn path_in(data_dir: &Path) -> PathBuf {
        data_dir.join("web").join("api-keys.json")
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The key a bearer token stands for, if it is valid and not revoked.
    pub fn lookup(&self, token: &str) -> Result<Option<Arc<ApiKey>>> {
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        // Stat the file at most every half second; a reload is cheap but not free.
        let stale = cache.checked.is_none_or(|t| t.elapsed().as_millis() >= 500);
        if stale {
            cache.checked = Some(Instant::now());
            let modified = std::fs::metadata(&self.path)
                .and_then(|m| m.modified())
                .ok();
            if modified != cache.modified {
                cache.by_token = load(&self.path)?
                    .keys
                    .into_iter()
                    .filter(|r| !r.revoked)
                    .map(|r| {
                        let bytes = hex::decode(&r.private_key).map_err(|e| e.to_string())?;
                        let key = SigningKey::from_bytes(&bytes).map_err(|e| e.to_string())?;
                        Ok((
                            r.token_sha256,
                            Arc::new(ApiKey {
                                id: r.id,
                                label: r.label,
                                address: r.address,
                                key,
                                max_price: r.max_price,
                                rate: Rate::new(r.rate_per_minute, r.burst),
                                network: r.network,
                            }),
                        ))
                    })
                    .collect::<Result<_, String>>()
                    .map_err(|e| {
                        Error::Invalid(format!("reading API keys {}: {e}", self.path.display()))
                    })?;
                cache.modified = modified;
            }
        }
        Ok(cache
            .by_token
            .get(&crypto::sha256(token.as_bytes()))
            .cloned())
    }

    /// Makes a key for a new custodial account. Returns the bearer token (shown once)
    /// and the record; the caller creates and funds the account on the ledger.
    pub fn create(
        &self,
        label: &str,
        max_price: Amount,
        rate: Rate,
        now: u64,
    ) -> Result<(String, ApiKeyRecord)> {
        let mut secret = [0u8; 32];
        rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut secret);
        let token = format!("{TOKEN_PREFIX}{}", hex::encode(secret));
        let key = SigningKey::generate();
        let mut file = load(&self.path)?;
        let id = loop {
            let mut raw = [0u8; 4];
            rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut raw);
            let id = hex::encode(raw);
            if !file.keys.iter().any(|k| k.id == id) {
                break id;
            }
        };
        let record = ApiKeyRecord {
            id,
            label: label.to_owned(),
            token_sha256: crypto::sha256(token.as_bytes()),
            address: Address::derive(&key.public_key()),
            private_key: hex::encode(key.to_bytes()),
            max_price,
            rate_per_minute: rate.per_minute,
            burst: rate.burst,
            created_at: now,
            revoked: false,
            network: embedded(),
        };
        file.keys.push(record.clone());
        save(&self.path, &file)?;
        Ok((token, record))
    }

    /// Every key, revoked ones included.
    pub fn list(&self) -> Result<Vec<ApiKeyRecord>> {
        Ok(load(&self.path)?.keys)
    }

    /// Records that key `id`'s account is `address` on the Flow `network`, where
    /// the account was created after the key.
    pub fn set_network_address(&self, id: &str, network: &str, address: Address) -> Result<()> {
        let mut file = load(&self.path)?;
        let Some(record) = file.keys.iter_mut().find(|k| k.id == id) else {
            return Err(Error::Invalid(format!("no API key with id {id:?}")));
        };
        record.network = network.to_owned();
        record.address = address;
        save(&self.path, &file)
    }

    /// Revokes the key with `id`: its token stops working; its account stays.
    pub fn revoke(&self, id: &str) -> Result<ApiKeyRecord> {
        let mut file = load(&self.path)?;
        let Some(record) = file.keys.iter_mut().find(|k| k.id == id) else {
            return Err(Error::Invalid(format!(
                "no API key with id {id:?} (see `flownet web keys list`)"
            )));
        };
        record.revoked = true;
        let record = record.clone();
        save(&self.path, &file)?;
        Ok(record)
    }
}

fn load(path: &Path) -> Result<KeyFile> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
            Error::Invalid(format!("API key file {} is not valid: {e}", path.display()))
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(KeyFile::default()),
        Err(e) => Err(Error::io(format!("reading {}", path.display()))(e)),
    }
}

/// Writes the file owner-only, through a temporary file renamed into place, so a
/// gateway rereading it never sees half a file.
fn save(path: &Path, file: &KeyFile) -> Result<()> {
    let dir = path
        .parent()
        .ok_or_else(|| Error::Invalid("key file path has no directory".into()))?;
    std::fs::create_dir_all(dir).map_err(Error::io(format!("creating {}", dir.display())))?;
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let writing = || Error::io(format!("writing {}", tmp.display()));
    let mut f = options.open(&tmp).map_err(writing())?;
    let json = serde_json::to_vec_pretty(file).map_err(|e| Error::Invalid(e.to_string()))?;
    std::io::Write::write_all(&mut f, &json).map_err(writing())?;
    f.sync_all().map_err(writing())?;
    std::fs::rename(&tmp, path).map_err(Error::io(format!("writing {}", path.display())))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_stored_hashed_and_revocable() {
        let dir = tempfile::tempdir().unwrap();
        let keys = ApiKeys::new(ApiKeys::path_in(dir.path()));
        let (token, record) = keys
            .create("ci", Amount::tokens(1), Rate::new(60, 5), 1)
            .unwrap();
        assert!(token.starts_with(TOKEN_PREFIX));
        let text = std::fs::read_to_string(keys.path()).unwrap();
        assert!(!text.contains(&token), "the token itself is never stored");
        let found = keys.lookup(&token).unwrap().unwrap();
        assert_eq!(found.address, record.address);
        assert_eq!(found.key.public_key(), {
            let k = SigningKey::from_bytes(&hex::decode(&record.private_key).unwrap()).unwrap();
            k.public_key()
        });
        assert!(keys.lookup("fnk_wrong").unwrap().is_none());
        let shown = format!("{record:?} {found:?}");
        assert!(!shown.contains(&record.private_key), "{shown}");
        // A second handle (another process) revokes; the first sees it after reloading.
        ApiKeys::new(keys.path()).revoke(&record.id).unwrap();
        keys.cache.lock().unwrap().checked = None;
        keys.cache.lock().unwrap().modified = None;
        assert!(keys.lookup(&token).unwrap().is_none());
        assert!(keys.revoke("nope").is_err());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(keys.path()).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }
}
