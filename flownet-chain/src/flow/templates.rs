//! The project's Cadence (`cadence/`), compiled into the client, with string
//! imports (`import "FungibleToken"`) rewritten to address imports for one
//! network from `cadence/networks.json`.

use std::collections::BTreeMap;

use flownet_core::Address;

use super::{FlowError, Result, cadence::parse_address};

/// The networks file, as committed.
pub const NETWORKS_JSON: &str = include_str!("../../../cadence/networks.json");

macro_rules! cdc {
    ($path:literal) => {
        include_str!(concat!("../../../cadence/", $path))
    };
}

/// The contracts, in deployment order.
pub const CONTRACTS: [(&str, &str); 3] = [
    ("FlowNetToken", cdc!("contracts/FlowNetToken.cdc")),
    ("FlowNetOutput", cdc!("contracts/FlowNetOutput.cdc")),
    (
        "FlowNetMarketplace",
        cdc!("contracts/FlowNetMarketplace.cdc"),
    ),
];

/// A transaction or script of `cadence/`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Template {
    CreateAccount,
    SetupAccount,
    Faucet,
    Transfer,
    RegisterNode,
    SetNodeActive,
    Submit,
    Cancel,
    Claim,
    Fulfil,
    Expire,
    Decline,
    Rate,
    Sweep,
    CollectOutputs,
    CreateFundedAccount,
    DeployContract,
    DeployMarketplace,
    GetInfo,
    GetAccount,
    GetBalance,
    GetNode,
    GetNodes,
    GetTask,
    GetTasks,
    GetRatings,
    GetNfts,
}

impl Template {
    /// Every template.
    pub const ALL: [Self; 27] = [
        Self::CreateAccount,
        Self::SetupAccount,
        Self::Faucet,
        Self::Transfer,
        Self::RegisterNode,
        Self::SetNodeActive,
        Self::Submit,
        Self::Cancel,
        Self::Claim,
        Self::Fulfil,
        Self::Expire,
        Self::Decline,
        Self::Rate,
        Self::Sweep,
        Self::CollectOutputs,
        Self::CreateFundedAccount,
        Self::DeployContract,
        Self::DeployMarketplace,
        Self::GetInfo,
        Self::GetAccount,
        Self::GetBalance,
        Self::GetNode,
        Self::GetNodes,
        Self::GetTask,
        Self::GetTasks,
        Self::GetRatings,
        Self::GetNfts,
    ];

    /// The computation (gas) limit FlowNet's clients set on this transaction,
    /// and the most a sponsor pays for it: Flow charges for the computation a
    /// transaction used, but a sponsor's budget counts the limit, so a limit
    /// fitted to the template bounds what one signature can cost.
    ///
    /// Estimates with headroom, from what each template runs (no emulator
    /// measured them here): a transaction that moves a vault or updates one
    /// record uses tens of units, so 1000 (the Flow CLI's default limit) is
    /// about twentyfold; the ones that mint, escrow or loop over a bounded
    /// list get 2500; `collect_outputs` walks every output waiting for the
    /// account and keeps Flow's maximum, 9999, as do the deployer's and the
    /// sponsor's own transactions, which no user's budget pays for.
    pub fn gas_limit(self) -> u64 {
        match self {
            Self::SetupAccount
            | Self::Faucet
            | Self::Transfer
            | Self::SetNodeActive
            | Self::Cancel
            | Self::Claim
            | Self::Expire
            | Self::Decline
            | Self::Rate
            | Self::Sweep => 1000,
            Self::CreateAccount | Self::RegisterNode | Self::Submit | Self::Fulfil => 2500,
            _ => 9999,
        }
    }

    /// The source with string imports.
    pub fn source(self) -> &'static str {
        match self {
            Self::CreateAccount => cdc!("transactions/create_account.cdc"),
            Self::SetupAccount => cdc!("transactions/setup_account.cdc"),
            Self::Faucet => cdc!("transactions/faucet.cdc"),
            Self::Transfer => cdc!("transactions/transfer.cdc"),
            Self::RegisterNode => cdc!("transactions/register_node.cdc"),
            Self::SetNodeActive => cdc!("transactions/set_node_active.cdc"),
            Self::Submit => cdc!("transactions/submit.cdc"),
            Self::Cancel => cdc!("transactions/cancel.cdc"),
            Self::Claim => cdc!("transactions/claim.cdc"),
            Self::Fulfil => cdc!("transactions/fulfil.cdc"),
            Self::Expire => cdc!("transactions/expire.cdc"),
            Self::Decline => cdc!("transactions/decline.cdc"),
            Self::Rate => cdc!("transactions/rate.cdc"),
            Self::Sweep => cdc!("transactions/sweep.cdc"),
            Self::CollectOutputs => cdc!("transactions/collect_outputs.cdc"),
            Self::CreateFundedAccount => cdc!("transactions/admin/create_funded_account.cdc"),
            Self::DeployContract => cdc!("transactions/admin/deploy_contract.cdc"),
            Self::DeployMarketplace => cdc!("transactions/admin/deploy_marketplace.cdc"),
            Self::GetInfo => cdc!("scripts/get_info.cdc"),
            Self::GetAccount => cdc!("scripts/get_account.cdc"),
            Self::GetBalance => cdc!("scripts/get_balance.cdc"),
            Self::GetNode => cdc!("scripts/get_node.cdc"),
            Self::GetNodes => cdc!("scripts/get_nodes.cdc"),
            Self::GetTask => cdc!("scripts/get_task.cdc"),
            Self::GetTasks => cdc!("scripts/get_tasks.cdc"),
            Self::GetRatings => cdc!("scripts/get_ratings.cdc"),
            Self::GetNfts => cdc!("scripts/get_nfts.cdc"),
        }
    }
}

/// One network's entry of the networks file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Network {
    pub name: String,
    pub chain_id: String,
    /// The Access API's gRPC endpoint, `http://host:port`.
    pub access_api: String,
    /// Import name → address; FlowNet's own contracts may be unset (not deployed).
    pub contracts: BTreeMap<String, Option<Address>>,
}

impl Network {
    /// The named network of the committed networks file.
    pub fn named(name: &str) -> Result<Self> {
        Self::from_networks_json(NETWORKS_JSON, name)
    }

    /// The named network of a networks file's text.
    pub fn from_networks_json(text: &str, name: &str) -> Result<Self> {
        let all: serde_json::Value = serde_json::from_str(text)
            .map_err(|e| FlowError::Config(format!("networks file is not JSON: {e}")))?;
        let entry = all.get(name).filter(|e| e.is_object()).ok_or_else(|| {
            FlowError::Config(format!(
                "unknown network {name:?} (the networks file has emulator, testnet, mainnet)"
            ))
        })?;
        let text_field = |k: &str| {
            entry
                .get(k)
                .and_then(|v| v.as_str())
                .map(str::to_owned)
                .ok_or_else(|| FlowError::Config(format!("network {name}: no {k}")))
        };
        let mut contracts = BTreeMap::new();
        for (k, v) in entry
            .get("contracts")
            .and_then(|c| c.as_object())
            .ok_or_else(|| FlowError::Config(format!("network {name}: no contracts")))?
        {
            let address = match v {
                serde_json::Value::Null => None,
                serde_json::Value::String(s) => Some(parse_address(s)?),
                other => {
                    return Err(FlowError::Config(format!(
                        "network {name}: contract {k} has address {other}"
                    )));
                }
            };
            contracts.insert(k.clone(), address);
        }
        Ok(Self {
            name: name.to_owned(),
            chain_id: text_field("chain_id")?,
            access_api: text_field("access_api")?,
            contracts,
        })
    }

    /// Puts FlowNet's three contracts at `address` (after a deployment).
    pub fn with_flownet_at(mut self, address: Address) -> Self {
        for (name, _) in CONTRACTS {
            self.contracts.insert(name.to_owned(), Some(address));
        }
        self
    }

    /// The address FlowNet's marketplace is deployed at.
    pub fn marketplace(&self) -> Result<Address> {
        self.address_of("FlowNetMarketplace")
    }

    pub fn address_of(&self, contract: &str) -> Result<Address> {
        self.contracts.get(contract).copied().flatten().ok_or_else(|| {
            FlowError::Config(format!(
                "no address for contract {contract} on {} (deploy FlowNet with `flownet flow deploy`, \
                 then set FLOWNET_FLOW_CONTRACTS or the networks file)",
                self.name
            ))
        })
    }

    /// `source` with every `import "Name"` rewritten to `import Name from 0x…`.
    pub fn resolve(&self, source: &str) -> Result<String> {
        let mut out = String::with_capacity(source.len() + 64);
        for line in source.split_inclusive('\n') {
            let trimmed = line.trim();
            if let Some(rest) = trimmed.strip_prefix("import \"")
                && let Some(name) = rest.strip_suffix('"')
            {
                let address = self.address_of(name)?;
                out.push_str(&format!("import {name} from {address}"));
                if line.ends_with('\n') {
                    out.push('\n');
                }
            } else {
                out.push_str(line);
            }
        }
        Ok(out)
    }

    /// A template's source for this network.
    pub fn template(&self, t: Template) -> Result<String> {
        self.resolve(t.source())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_template_resolves_on_the_emulator() {
        let emulator = Network::named("emulator").unwrap();
        assert_eq!(emulator.chain_id, "flow-emulator");
        for t in Template::ALL {
            let code = emulator.template(t).unwrap();
            assert!(!code.contains("import \""), "{t:?} kept a string import");
        }
        for (_, code) in CONTRACTS {
            let resolved = emulator.resolve(code).unwrap();
            assert!(!resolved.contains("import \""));
        }
        let submit = emulator.template(Template::Submit).unwrap();
        assert!(submit.contains("import FungibleToken from 0xee82856bf20e2aa6\n"));
        assert!(submit.contains("import FlowNetMarketplace from 0xf8d6e0586b0a20c7\n"));
    }

    #[test]
    fn an_undeployed_network_says_what_to_do() {
        let testnet = Network::named("testnet").unwrap();
        let err = testnet.template(Template::Submit).unwrap_err().to_string();
        assert!(err.contains("flownet flow deploy"), "{err}");
        let deployed = testnet.with_flownet_at(Address([1; 8]));
        assert!(
            deployed
                .template(Template::Submit)
                .unwrap()
                .contains("import FlowNetMarketplace from 0x0101010101010101")
        );
        assert!(Network::named("moon").is_err());
    }
}
