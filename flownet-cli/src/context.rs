//! What every command needs: the data dir, the key, the ledger, the output mode.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    sync::Arc,
};

use anyhow::{Context as _, Result, bail};
use flownet_chain::EmbeddedLedger;
use flownet_core::{Address, Ledger, LedgerConfig, SigningKey, Wallet};
use serde::{Deserialize, Serialize};

use flownet_node::FsBlobStore;

pub use crate::config::Network;

/// The resolved global options.
#[derive(Debug, Clone)]
pub struct Ctx {
    pub data_dir: PathBuf,
    pub key_name: String,
    pub models_dir: PathBuf,
    pub json: bool,
    pub network: Network,
    /// The embedded ledger's file, when not the data dir's `ledger.db`: two data dirs
    /// (two machines' keys and blob stores) can then reach one ledger.
    pub ledger_file: Option<PathBuf>,
    /// Fetch from nodes on loopback and private addresses on any network (the embedded
    /// ledger and the emulator allow loopback anyway).
    pub allow_private_endpoints: bool,
    /// The IPFS node (`--ipfs-api`) blobs are added to and read from, if any.
    pub ipfs: Option<flownet_node::Ipfs>,
}

/// A key file: the account's private key, kept in the data dir with owner-only access.
#[derive(Serialize, Deserialize)]
struct KeyFile {
    address: Address,
    public_key: String,
    private_key: String,
    signature_algorithm: String,
    hash_algorithm: String,
    /// The key's account on each Flow network (Flow assigns addresses).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    flow_addresses: BTreeMap<String, Address>,
}

impl std::fmt::Debug for KeyFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyFile")
            .field("address", &self.address)
            .field("public_key", &self.public_key)
            .field("private_key", &"<redacted>")
            .finish_non_exhaustive()
    }
}

/// Creates `dir` (and its missing parents) readable by its owner only (0700), so the
/// keys, the ledger and the blobs in a data dir are nobody else's to list or read. A
/// directory that exists keeps its mode.
pub fn create_private_dir(dir: &Path) -> Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder
        .create(dir)
        .with_context(|| format!("creating {}", dir.display()))
}

impl Ctx {
    /// Which addresses this command fetches outputs and streams from
    /// (`Network::fetch_policy`).
    pub fn fetch_policy(&self) -> flownet_node::FetchPolicy {
        self.network.fetch_policy(self.allow_private_endpoints)
    }

    pub fn ledger_path(&self) -> PathBuf {
        self.ledger_file
            .clone()
            .unwrap_or_else(|| self.data_dir.join("ledger.db"))
    }

    pub fn key_path(&self, name: &str) -> PathBuf {
        self.data_dir.join("keys").join(format!("{name}.json"))
    }

    pub fn blobs(&self) -> Result<FsBlobStore> {
        create_private_dir(&self.data_dir)?;
        Ok(FsBlobStore::open(self.data_dir.join("blobs"))?.with_ipfs(self.ipfs.clone()))
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
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            create_private_dir(dir)?;
        }
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

    /// The ledger `--network` names: the data dir's embedded ledger, or Flow.
    pub async fn ledger(&self) -> Result<Arc<dyn Ledger>> {
        match self.network {
            Network::Embedded => Ok(self.open_ledger()?),
            _ => self.flow_ledger().await,
        }
    }

    #[cfg(feature = "flow")]
    async fn flow_ledger(&self) -> Result<Arc<dyn Ledger>> {
        Ok(crate::flow::connect(self.network).await?)
    }

    #[cfg(not(feature = "flow"))]
    async fn flow_ledger(&self) -> Result<Arc<dyn Ledger>> {
        bail!(
            "this flownet was built without Flow support: rebuild with `cargo build -p flownet-cli --features flow` to use --network {}",
            self.network.as_str()
        )
    }

    /// A wallet for the key named `--key` on the `--network` ledger.
    pub async fn wallet(&self) -> Result<Wallet<dyn Ledger>> {
        match self.network {
            Network::Embedded => {
                let ledger: Arc<dyn Ledger> = self.open_ledger()?;
                Ok(Wallet::new(ledger, self.load_key()?))
            }
            #[cfg(feature = "flow")]
            _ => self.flow_wallet(crate::flow::connect(self.network).await?),
            #[cfg(not(feature = "flow"))]
            _ => {
                self.flow_ledger().await?;
                unreachable!("flow_ledger fails without the flow feature")
            }
        }
    }

    /// A wallet for the key named `--key` at its account on the `--network` Flow
    /// network, on `ledger` (a client of that network), which from then on signs
    /// that account's transactions with the key.
    #[cfg(feature = "flow")]
    pub fn flow_wallet(
        &self,
        ledger: Arc<flownet_chain::flow::FlowLedger>,
    ) -> Result<Wallet<dyn Ledger>> {
        let key = self.load_key()?;
        let address = self.flow_address()?;
        ledger.add_signer(flownet_chain::flow::FlowSigner::new(
            address,
            0,
            flownet_chain::flow::FlowKey::from_core(&key),
        ));
        Ok(Wallet::with_address(
            ledger as Arc<dyn Ledger>,
            key,
            address,
        ))
    }

    /// Creates an account for the `--key` key (made if missing) on `ledger`, a
    /// client of the `--network` Flow network (its sponsor pays), and records
    /// the account's address in the key file. A key that has an account on
    /// that network already is refused with `AlreadyExists`.
    #[cfg(feature = "flow")]
    pub async fn create_flow_account(
        &self,
        ledger: &flownet_chain::flow::FlowLedger,
    ) -> Result<Address> {
        if let Ok(existing) = self.flow_address() {
            return Err(flownet_core::Error::AlreadyExists(format!(
                "key {:?} has account {existing} on {} already",
                self.key_name,
                self.network.as_str()
            ))
            .into());
        }
        let (key, _) = self.load_or_create_key()?;
        let address = ledger.create_account(&key).await?;
        self.save_flow_address(address)?;
        Ok(address)
    }

    /// The `--key` account's address on the `--network` ledger.
    pub async fn my_address(&self) -> Result<Address> {
        match self.network {
            Network::Embedded => Ok(Address::derive(&self.load_key()?.public_key())),
            _ => self.flow_address(),
        }
    }

    /// The `--key` account's address on the `--network` Flow network, as
    /// recorded in its key file when the account was created.
    pub fn flow_address(&self) -> Result<Address> {
        let path = self.key_path(&self.key_name);
        let file = read_key_file(&path)?;
        file.flow_addresses
            .get(self.network.as_str())
            .copied()
            .with_context(|| {
                format!(
                    "key {:?} has no account on {} yet (run `flownet --network {} account create --key {}`)",
                    self.key_name,
                    self.network.as_str(),
                    self.network.as_str(),
                    self.key_name
                )
            })
    }

    /// Records the `--key` account's address on the `--network` Flow network.
    pub fn save_flow_address(&self, address: Address) -> Result<()> {
        let path = self.key_path(&self.key_name);
        let mut file = read_key_file(&path)?;
        file.flow_addresses
            .insert(self.network.as_str().to_owned(), address);
        let json = serde_json::to_string_pretty(&file)?;
        // Write beside and rename, so a crash never leaves half a key file.
        let tmp = path.with_extension("json.tmp");
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut f = options
            .open(&tmp)
            .with_context(|| format!("writing {}", tmp.display()))?;
        std::io::Write::write_all(&mut f, json.as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, &path).with_context(|| format!("replacing {}", path.display()))?;
        Ok(())
    }

    /// Prints a result: its JSON with `--json`, else the text for people.
    /// Prints `json` under `--json` (with a `cid` beside each blob of one block),
    /// else the human line.
    pub fn print(&self, json: &serde_json::Value, human: impl FnOnce() -> String) {
        if self.json {
            let mut json = json.clone();
            flownet_core::cid::add_cids(&mut json);
            println!(
                "{}",
                serde_json::to_string_pretty(&json).unwrap_or_default()
            );
        } else {
            let text = human();
            if !text.is_empty() {
                println!("{}", text.trim_end());
            }
        }
    }
}

fn read_key_file(path: &Path) -> Result<KeyFile> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading key {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("key file {} is not valid", path.display()))
}

fn read_key(path: &Path) -> Result<SigningKey> {
    let file = read_key_file(path)?;
    let bytes = decode_hex(&file.private_key)
        .with_context(|| format!("key file {}: private_key is not hex", path.display()))?;
    let key = SigningKey::from_bytes(&bytes)
        .with_context(|| format!("key file {}: private_key", path.display()))?;
    // A file whose key is another account's must not sign as that account.
    let derived = Address::derive(&key.public_key());
    if derived != file.address || key.public_key().to_string() != file.public_key {
        bail!(
            "key file {}: its private key belongs to account {derived}, not to the address {}              (and public key) the file names; the file was edited or mixed up, so it is not used",
            path.display(),
            file.address
        );
    }
    Ok(key)
}

fn write_key(path: &Path, key: &SigningKey) -> Result<()> {
    let dir = path.parent().context("key path has no directory")?;
    create_private_dir(dir)?;
    let file = KeyFile {
        address: Address::derive(&key.public_key()),
        public_key: key.public_key().to_string(),
        private_key: encode_hex(&key.to_bytes()),
        signature_algorithm: "ECDSA_P256".into(),
        hash_algorithm: "SHA3_256".into(),
        flow_addresses: BTreeMap::new(),
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

/// The default data dir: `$FLOWNET_HOME`, else `~/.flownet` (the core's rule over
/// this process's environment).
pub fn default_data_dir() -> PathBuf {
    flownet_core::default_data_dir(std::env::var_os("FLOWNET_HOME"), std::env::var_os("HOME"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(unix)]
    #[test]
    fn a_new_data_dir_is_owner_only() {
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::tempdir().unwrap();
        let ctx = Ctx {
            data_dir: tmp.path().join("home"),
            key_name: "k".into(),
            models_dir: tmp.path().into(),
            json: false,
            network: Network::Embedded,
            ledger_file: None,
            allow_private_endpoints: false,
            ipfs: None,
        };
        ctx.load_or_create_key().unwrap();
        ctx.blobs().unwrap();
        for dir in [ctx.data_dir.clone(), ctx.data_dir.join("keys")] {
            let mode = std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o700, "{}", dir.display());
        }
        let file = KeyFile {
            address: Address([1; 8]),
            public_key: "pk".into(),
            private_key: "secret-hex".into(),
            signature_algorithm: String::new(),
            hash_algorithm: String::new(),
            flow_addresses: BTreeMap::new(),
        };
        assert!(!format!("{file:?}").contains("secret-hex"));
    }

    #[test]
    fn a_key_file_with_another_accounts_or_a_truncated_key_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("keys").join("k.json");
        let key = SigningKey::generate();
        write_key(&path, &key).unwrap();
        assert_eq!(read_key(&path).unwrap().to_bytes(), key.to_bytes());
        let original = std::fs::read_to_string(&path).unwrap();
        let mut file: KeyFile = serde_json::from_str(&original).unwrap();

        // Another account's private key under this file's address.
        let other = SigningKey::generate();
        file.private_key = encode_hex(&other.to_bytes());
        std::fs::write(&path, serde_json::to_string(&file).unwrap()).unwrap();
        let err = format!("{:#}", read_key(&path).unwrap_err());
        assert!(err.contains("belongs to account"), "{err}");
        assert!(
            err.contains(&Address::derive(&other.public_key()).to_string()),
            "{err}"
        );

        // The right key with its last two bytes cut off.
        let mut file: KeyFile = serde_json::from_str(&original).unwrap();
        file.private_key.truncate(60);
        std::fs::write(&path, serde_json::to_string(&file).unwrap()).unwrap();
        let err = format!("{:#}", read_key(&path).unwrap_err());
        assert!(err.contains("32-byte") && err.contains("30 bytes"), "{err}");
    }
}
