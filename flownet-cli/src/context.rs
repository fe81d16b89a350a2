//! What every command needs: the data dir, the key, the ledger, the output mode.

use std::{
    path::{Path, PathBuf},
    sync::Arc,
};

use anyhow::{Context as _, Result, bail};
use flownet_chain::EmbeddedLedger;
use flownet_core::{Address, Ledger, LedgerConfig, SigningKey, Wallet};
use serde::{Deserialize, Serialize};

use crate::blobs::FsBlobStore;

/// The resolved global options.
#[derive(Debug, Clone)]
pub struct Ctx {
    pub data_dir: PathBuf,
    pub key_name: String,
    pub models_dir: PathBuf,
    pub json: bool,
}

/// A key file: the account's private key, kept in the data dir with owner-only access.
#[derive(Debug, Serialize, Deserialize)]
struct KeyFile {
    address: Address,
    public_key: String,
    private_key: String,
    signature_algorithm: String,
    hash_algorithm: String,
}

impl Ctx {
    pub fn ledger_path(&self) -> PathBuf {
        self.data_dir.join("ledger.db")
    }

    pub fn key_path(&self, name: &str) -> PathBuf {
        self.data_dir.join("keys").join(format!("{name}.json"))
    }

    pub fn blobs(&self) -> Result<FsBlobStore> {
        Ok(FsBlobStore::open(self.data_dir.join("blobs"))?)
    }

    /// Opens the ledger of the data dir; it must exist.
    pub fn open_ledger(&self) -> Result<Arc<EmbeddedLedger>> {
        let path = self.ledger_path();
        if !path.exists() {
            bail!(
                "no ledger in {} (run `flownet init` or `flownet ledger init` first)",
                self.data_dir.display()
            );
        }
        Ok(Arc::new(EmbeddedLedger::open(&path).with_context(
            || format!("opening the ledger {}", path.display()),
        )?))
    }

    /// Opens the ledger of the data dir, creating it with defaults if missing.
    pub fn open_or_create_ledger(&self) -> Result<(Arc<EmbeddedLedger>, bool)> {
        let path = self.ledger_path();
        let created = !path.exists();
        let ledger = EmbeddedLedger::open_or_create(&path, LedgerConfig::default())
            .with_context(|| format!("opening the ledger {}", path.display()))?;
        Ok((Arc::new(ledger), created))
    }

    /// The key named `--key`, which must exist.
    pub fn load_key(&self) -> Result<SigningKey> {
        let path = self.key_path(&self.key_name);
        if !path.exists() {
            bail!(
                "no key named {:?} in {} (run `flownet init --key {}` or `flownet account create --key {}`)",
                self.key_name,
                self.data_dir.display(),
                self.key_name,
                self.key_name
            );
        }
        read_key(&path)
    }

    /// The key named `--key`, made and saved if missing. Returns whether it was made.
    pub fn load_or_create_key(&self) -> Result<(SigningKey, bool)> {
        let path = self.key_path(&self.key_name);
        if path.exists() {
            return Ok((read_key(&path)?, false));
        }
        let key = SigningKey::generate();
        write_key(&path, &key)?;
        Ok((key, true))
    }

    /// A wallet for the key named `--key` on the data dir's ledger.
    pub fn wallet(&self) -> Result<Wallet<dyn Ledger>> {
        let ledger: Arc<dyn Ledger> = self.open_ledger()?;
        Ok(Wallet::new(ledger, self.load_key()?))
    }

    /// Prints a result: its JSON with `--json`, else the text for people.
    pub fn print(&self, json: &serde_json::Value, human: impl FnOnce() -> String) {
        if self.json {
            println!("{}", serde_json::to_string_pretty(json).unwrap_or_default());
        } else {
            let text = human();
            if !text.is_empty() {
                println!("{}", text.trim_end());
            }
        }
    }
}

fn read_key(path: &Path) -> Result<SigningKey> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading key {}", path.display()))?;
    let file: KeyFile = serde_json::from_str(&text)
        .with_context(|| format!("key file {} is not valid", path.display()))?;
    let bytes = decode_hex(&file.private_key)
        .with_context(|| format!("key file {}: private_key is not hex", path.display()))?;
    Ok(SigningKey::from_bytes(&bytes)?)
}

fn write_key(path: &Path, key: &SigningKey) -> Result<()> {
    let dir = path.parent().context("key path has no directory")?;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let file = KeyFile {
        address: Address::derive(&key.public_key()),
        public_key: key.public_key().to_string(),
        private_key: encode_hex(&key.to_bytes()),
        signature_algorithm: "ECDSA_P256".into(),
        hash_algorithm: "SHA3_256".into(),
    };
    let json = serde_json::to_string_pretty(&file)?;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut f = options
        .open(path)
        .with_context(|| format!("creating key {}", path.display()))?;
    std::io::Write::write_all(&mut f, json.as_bytes())?;
    Ok(())
}

fn encode_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn decode_hex(s: &str) -> Result<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        bail!("odd length");
    }
    (0..s.len())
        .step_by(2)
        .map(|i| Ok(u8::from_str_radix(&s[i..i + 2], 16)?))
        .collect()
}

/// The default data dir: `$FLOWNET_HOME`, else `~/.flownet`.
pub fn default_data_dir() -> PathBuf {
    std::env::var_os("HOME").map_or_else(
        || PathBuf::from(".flownet"),
        |h| PathBuf::from(h).join(".flownet"),
    )
}
