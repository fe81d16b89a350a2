//! The data dir's config file, `config.json`, written by `flownet init`: the network and
//! the key that commands use when no flag or environment variable names them.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result, bail};
use serde::{Deserialize, Serialize};

/// The config file's name inside the data dir.
pub const CONFIG_FILE: &str = "config.json";

/// The only network this build knows.
pub const EMBEDDED: &str = "embedded";

/// What `config.json` holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Config {
    /// Which ledger the data dir uses: `embedded` (its `ledger.db`).
    pub network: String,
    /// The key that signs when neither `--key` nor `FLOWNET_KEY` is given.
    pub key: String,
    /// The models dir when neither `--models-dir` nor `FLOWNET_MODELS` is given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub models_dir: Option<PathBuf>,
}

impl Config {
    pub fn path(data_dir: &Path) -> PathBuf {
        data_dir.join(CONFIG_FILE)
    }

    /// The data dir's config, if it has one. A config for a network this build does not
    /// know is an error, so commands never act on the wrong ledger.
    pub fn load(data_dir: &Path) -> Result<Option<Self>> {
        let path = Self::path(data_dir);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        };
        let config: Self = serde_json::from_str(&text)
            .with_context(|| format!("{} is not a valid config file", path.display()))?;
        if config.network != EMBEDDED {
            bail!(
                "{} names network {:?}, but this build only knows the {EMBEDDED} ledger",
                path.display(),
                config.network
            );
        }
        Ok(Some(config))
    }

    /// Writes the config unless the data dir has one. Returns whether it wrote it.
    pub fn save_new(&self, data_dir: &Path) -> Result<bool> {
        let path = Self::path(data_dir);
        if path.exists() {
            return Ok(false);
        }
        crate::context::create_private_dir(data_dir)?;
        let json = serde_json::to_string_pretty(self)? + "\n";
        std::fs::write(&path, json).with_context(|| format!("writing {}", path.display()))?;
        Ok(true)
    }
}

/// Which ledger the commands use: the data dir's embedded ledger, or FlowNet's
/// contracts on a Flow network (needs the `flow` build).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Network {
    #[default]
    Embedded,
    Emulator,
    Testnet,
    Mainnet,
}

impl std::str::FromStr for Network {
    type Err = flownet_core::Error;

    /// A network by the name `--network` takes (`embedded`, `emulator`, `testnet`,
    /// `mainnet`), for frontends without clap (the Python package).
    fn from_str(name: &str) -> Result<Self, Self::Err> {
        [Self::Embedded, Self::Emulator, Self::Testnet, Self::Mainnet]
            .into_iter()
            .find(|n| n.as_str() == name)
            .ok_or_else(|| {
                flownet_core::Error::InvalidInput(format!(
                    "unknown network {name:?}: expected embedded, emulator, testnet or mainnet"
                ))
            })
    }
}

impl Network {
    /// Which node addresses a client on this network fetches from: on one machine's
    /// ledgers (embedded, the emulator) loopback too, on public networks public
    /// addresses only; `allow_private` (`--allow-private-endpoints`) allows every
    /// unicast address.
    pub fn fetch_policy(self, allow_private: bool) -> flownet_node::FetchPolicy {
        match self {
            _ if allow_private => flownet_node::FetchPolicy::ANY,
            Self::Embedded | Self::Emulator => flownet_node::FetchPolicy::LOOPBACK,
            Self::Testnet | Self::Mainnet => flownet_node::FetchPolicy::PUBLIC,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Embedded => "embedded",
            Self::Emulator => "emulator",
            Self::Testnet => "testnet",
            Self::Mainnet => "mainnet",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_round_trips_and_is_written_once() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(Config::load(dir.path()).unwrap(), None);
        let config = Config {
            network: EMBEDDED.into(),
            key: "alice".into(),
            models_dir: None,
        };
        assert!(config.save_new(dir.path()).unwrap());
        let other = Config {
            key: "bob".into(),
            ..config.clone()
        };
        assert!(!other.save_new(dir.path()).unwrap());
        assert_eq!(Config::load(dir.path()).unwrap(), Some(config));
    }

    #[test]
    fn unknown_networks_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            Config::path(dir.path()),
            r#"{"network": "mainnet", "key": "default"}"#,
        )
        .unwrap();
        let err = Config::load(dir.path()).unwrap_err().to_string();
        assert!(err.contains("mainnet"), "{err}");
    }
}
