//! `--network emulator|testnet|mainnet`: the Flow side of the command's
//! context. Configuration comes from the environment, so keys never sit on
//! the command line:
//!
//! - `FLOWNET_FLOW_ACCESS`: the Access API (`http://host:port`), overriding
//!   `cadence/networks.json`;
//! - `FLOWNET_FLOW_CONTRACTS`: the account FlowNet's contracts are deployed
//!   to (required on testnet and mainnet after `flow deploy`);
//! - `FLOWNET_FLOW_SPONSOR`: `0xADDRESS:PRIVATE_KEY_HEX[:KEY_INDEX]` of the
//!   account that pays every transaction and grants the faucet (on the
//!   emulator, the service account);
//! - `FLOWNET_FLOW_ADMIN`: the same form, the account `flow deploy` deploys
//!   to (default: the sponsor);
//! - `FLOWNET_FLOW_SPONSOR_URL`: without a sponsor key, a `flownet sponsor`
//!   service that pays for the user's transactions, creates the user's
//!   account and co-signs the faucet.

use std::sync::Arc;

use anyhow::{Context as _, Result, bail};
use flownet_chain::flow::{
    FlowConfig, FlowKey, FlowLedger, FlowSigner, HashAlgorithm, Network, SignatureAlgorithm,
};
use flownet_core::{Address, LedgerConfig};

use crate::config::Network as Which;

fn network(which: Which) -> Result<Network> {
    let mut network = Network::named(which.as_str())?;
    if let Ok(api) = std::env::var("FLOWNET_FLOW_ACCESS") {
        network.access_api = api;
    }
    if let Ok(address) = std::env::var("FLOWNET_FLOW_CONTRACTS") {
        let address: Address = address
            .parse()
            .context("FLOWNET_FLOW_CONTRACTS must be an address")?;
        network = network.with_flownet_at(address);
    }
    Ok(network)
}

/// `0xADDRESS:PRIVATE_KEY_HEX[:KEY_INDEX]` from the environment variable `var`.
pub(crate) fn signer_from_env(var: &str) -> Result<Option<FlowSigner>> {
    let Ok(text) = std::env::var(var) else {
        return Ok(None);
    };
    let mut parts = text.trim().split(':');
    let (Some(address), Some(key)) = (parts.next(), parts.next()) else {
        bail!("{var} must be 0xADDRESS:PRIVATE_KEY_HEX[:KEY_INDEX]");
    };
    let address: Address = address
        .parse()
        .with_context(|| format!("{var}: bad address"))?;
    let key_index: u32 = match parts.next() {
        Some(i) => i.parse().with_context(|| format!("{var}: bad key index"))?,
        None => 0,
    };
    let scalar = hex_bytes(key).with_context(|| format!("{var}: the private key is not hex"))?;
    let key = FlowKey::from_bytes(
        SignatureAlgorithm::EcdsaP256,
        HashAlgorithm::Sha3_256,
        &scalar,
    )?;
    Ok(Some(FlowSigner::new(address, key_index, key)))
}

fn hex_bytes(s: &str) -> Result<Vec<u8>> {
    let s = s.strip_prefix("0x").unwrap_or(s);
    if !s.len().is_multiple_of(2) {
        bail!("odd length");
    }
    (0..s.len())
        .step_by(2)
        .map(|i| Ok(u8::from_str_radix(&s[i..i + 2], 16)?))
        .collect()
}

/// The FlowLedger of the Flow network `which`.
pub async fn connect(which: Which) -> Result<Arc<FlowLedger>> {
    let mut config = FlowConfig::new(network(which)?);
    config.sponsor = signer_from_env("FLOWNET_FLOW_SPONSOR")?;
    if config.sponsor.is_none()
        && let Ok(url) = std::env::var("FLOWNET_FLOW_SPONSOR_URL")
    {
        let payer = flownet_gateway::sponsor::HttpPayer::connect(&url)
            .await
            .with_context(|| format!("reaching the sponsor service {url}"))?;
        config.payer = Some(Arc::new(payer));
    }
    let name = which.as_str();
    let ledger = FlowLedger::connect(config)
        .await
        .with_context(|| format!("connecting to Flow {name}"))?;
    Ok(Arc::new(ledger))
}

/// The network and the paying key (FLOWNET_FLOW_SPONSOR) of `flownet sponsor`.
pub fn sponsor_setup(which: Which) -> Result<(Network, FlowSigner)> {
    let network = network(which)?;
    let payer = signer_from_env("FLOWNET_FLOW_SPONSOR")?.context(
        "set FLOWNET_FLOW_SPONSOR to 0xADDRESS:PRIVATE_KEY_HEX[:KEY_INDEX] of the paying account",
    )?;
    Ok((network, payer))
}

/// Deploys FlowNet with `config` to the admin account; returns its address.
pub async fn deploy(which: Which, config: &LedgerConfig) -> Result<Address> {
    let admin = match signer_from_env("FLOWNET_FLOW_ADMIN")? {
        Some(a) => a,
        None => signer_from_env("FLOWNET_FLOW_SPONSOR")?.context(
            "set FLOWNET_FLOW_ADMIN (or FLOWNET_FLOW_SPONSOR) to 0xADDRESS:PRIVATE_KEY_HEX of the deploying account",
        )?,
    };
    FlowLedger::deploy(&network(which)?, &admin, config).await?;
    Ok(admin.address)
}

/// The gateway's Flow side for `flownet web --network …`: the FlowLedger, and who
/// signs envelopes as payer: an in-process `Sponsor` with FLOWNET_FLOW_SPONSOR's key
/// (which also grants the faucet and creates accounts), else the `flownet sponsor`
/// service at FLOWNET_FLOW_SPONSOR_URL (which does too, when it offers them).
pub async fn web_side(
    which: Which,
    rest: Option<String>,
    discovery: Option<String>,
) -> Result<flownet_gateway::flow::FlowSide> {
    use flownet_chain::flow::{
        AccessClient, AccountPolicy, Payer, Sponsor, SponsorPolicy, Whitelist,
    };
    let ledger = connect(which).await?;
    let sponsor_key = signer_from_env("FLOWNET_FLOW_SPONSOR")?;
    let payer: Option<Arc<dyn Payer>> =
        match (&sponsor_key, std::env::var("FLOWNET_FLOW_SPONSOR_URL")) {
            (Some(key), _) => {
                let network = ledger.network();
                let client = AccessClient::connect(&network.access_api)
                    .await
                    .with_context(|| format!("connecting to {}", network.access_api))?;
                let whitelist = Whitelist::for_network(network)?;
                Some(Arc::new(
                    Sponsor::new(client, key.clone(), whitelist, &SponsorPolicy::default())
                        .with_accounts(network, &AccountPolicy::default())?,
                ))
            }
            (None, Ok(url)) => Some(Arc::new(
                flownet_gateway::sponsor::HttpPayer::connect(&url)
                    .await
                    .with_context(|| format!("reaching the sponsor service {url}"))?,
            )),
            (None, Err(_)) => None,
        };
    if payer.is_none() {
        tracing::warn!(
            "no sponsor (FLOWNET_FLOW_SPONSOR or FLOWNET_FLOW_SPONSOR_URL): the page can read but its users cannot send transactions"
        );
    }
    let rest = rest.or_else(|| {
        flownet_gateway::flow::FlowSide::default_rest(which.as_str()).map(str::to_owned)
    });
    Ok(flownet_gateway::flow::FlowSide {
        ledger,
        payer,
        rest,
        discovery,
    })
}
