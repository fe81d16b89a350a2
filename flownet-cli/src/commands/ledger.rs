use std::sync::Arc;

use anyhow::{Result, bail};
use clap::Subcommand;
use flownet_chain::EmbeddedLedger;
use flownet_core::{Address, Amount, Ledger, LedgerConfig, Wallet};
use serde_json::json;

use crate::context::{Ctx, Network};

#[derive(Debug, Subcommand)]
pub enum LedgerCmd {
    /// Creates the data dir's ledger file
    Init {
        /// Seconds a node has to claim a task
        #[arg(long, default_value_t = 300)]
        claim_window: u64,
        /// Seconds a node has to fulfil a task it claimed
        #[arg(long, default_value_t = 600)]
        fulfil_window: u64,
        /// Seconds raters can earn a task's bounty
        #[arg(long, default_value_t = 7 * 24 * 3600)]
        bounty_window: u64,
        /// The faucet's one-time welcome amount (0 disables it)
        #[arg(long, default_value = "1000")]
        faucet: Amount,
    },
    /// The ledger's id, parameters and totals
    Info,
    /// Replays the ledger file's log from its first envelope and checks each stored
    /// state digest and chain link, then every row; names the first that differs
    Verify,
}

#[derive(Debug, Subcommand)]
pub enum AccountCmd {
    /// Makes a key (if `--key` has none) and registers it as an account
    Create,
    /// An account's balance [default: this key's]
    Balance { address: Option<Address> },
    /// An account's full record [default: this key's]
    Show { address: Option<Address> },
    /// Takes the dev faucet's one-time welcome amount
    Faucet,
    /// Sends tokens
    Transfer { to: Address, amount: Amount },
}

pub async fn ledger(ctx: &Ctx, cmd: LedgerCmd) -> Result<()> {
    match cmd {
        LedgerCmd::Init {
            claim_window,
            fulfil_window,
            bounty_window,
            faucet,
        } => {
            if ctx.network != Network::Embedded {
                bail!(
                    "on Flow the ledger is FlowNet's contracts: deploy them with `flownet --network {} flow deploy`",
                    ctx.network.as_str()
                );
            }
            let config = LedgerConfig {
                claim_window_s: claim_window,
                fulfil_window_s: fulfil_window,
                bounty_window_s: bounty_window,
                faucet_amount: faucet,
            };
            let ledger = EmbeddedLedger::create(ctx.ledger_path(), config)?;
            ctx.print(
                &json!({ "ledger": ledger.path(), "id": ledger.id(), "config": ledger.config() }),
                || {
                    format!(
                        "created ledger {} at {}",
                        ledger.id(),
                        ledger.path().display()
                    )
                },
            );
        }
        LedgerCmd::Info => {
            let ledger = ctx.ledger().await?;
            let info = ledger.info().await?;
            let place = match ctx.network {
                Network::Embedded => format!("file      {}", ctx.ledger_path().display()),
                other => format!("network   Flow {}", other.as_str()),
            };
            ctx.print(&serde_json::to_value(&info)?, || {
                let g = &info.globals;
                format!(
                    "ledger    {} ({})\n{place}\nheight    {}\ntasks     {}\nminted    {} FLOWNET\nescrowed  {} FLOWNET\nbounties  {} FLOWNET\ntreasury  {} FLOWNET\nwindows   claim {} s, fulfil {} s, bounty {} s; faucet {} FLOWNET",
                    info.id, info.network, info.height, g.task_count, g.total_minted,
                    g.escrowed, g.bounty_pools, g.treasury, info.config.claim_window_s, info.config.fulfil_window_s,
                    info.config.bounty_window_s, info.config.faucet_amount
                )
            });
        }
        LedgerCmd::Verify => {
            if ctx.network != Network::Embedded {
                bail!(
                    "`ledger verify` checks an embedded ledger's file; on Flow {} the chain itself keeps the record",
                    ctx.network.as_str()
                );
            }
            let path = ctx.ledger_path();
            if !path.exists() {
                bail!(
                    "no ledger in {} (run `flownet init` or `flownet ledger init` first)",
                    ctx.data_dir.display()
                );
            }
            let report = EmbeddedLedger::verify(&path)?.into_result()?;
            ctx.print(&serde_json::to_value(&report)?, || {
                format!(
                    "ledger {} verified: {} envelopes replayed (the chain starts at height {}), {} rows match\nstate     {}\nchain     {}",
                    report.ledger, report.envelopes, report.genesis_height, report.rows, report.state, report.chain
                )
            });
        }
    }
    Ok(())
}

pub async fn account(ctx: &Ctx, cmd: AccountCmd) -> Result<()> {
    match cmd {
        AccountCmd::Create if ctx.network != Network::Embedded => {
            let address = create_flow_account(ctx).await?;
            ctx.print(
                &json!({ "address": address, "network": ctx.network.as_str(), "key": ctx.key_path(&ctx.key_name) }),
                || {
                    format!(
                        "created account {address} on Flow {} (key {})",
                        ctx.network.as_str(),
                        ctx.key_path(&ctx.key_name).display()
                    )
                },
            );
        }
        AccountCmd::Create => {
            let ledger: Arc<dyn Ledger> = ctx.ledger().await?;
            let (key, _) = ctx.load_or_create_key()?;
            let wallet = Wallet::new(ledger.clone(), key);
            if ledger.account(wallet.address()).await?.is_some() {
                bail!("account {} already exists", wallet.address());
            }
            wallet.create_account().await?;
            ctx.print(
                &json!({ "address": wallet.address(), "key": ctx.key_path(&ctx.key_name) }),
                || {
                    format!(
                        "created account {} (key {})",
                        wallet.address(),
                        ctx.key_path(&ctx.key_name).display()
                    )
                },
            );
        }
        AccountCmd::Balance { address } => {
            let (ledger, address) = (ctx.ledger().await?, resolve(ctx, address).await?);
            let account = ledger
                .account(address)
                .await?
                .ok_or_else(|| flownet_core::Error::NotFound(format!("account {address}")))?;
            ctx.print(
                &json!({ "address": address, "balance": account.balance.to_string() }),
                || format!("{} FLOWNET", account.balance),
            );
        }
        AccountCmd::Show { address } => {
            let (ledger, address) = (ctx.ledger().await?, resolve(ctx, address).await?);
            let account = ledger
                .account(address)
                .await?
                .ok_or_else(|| flownet_core::Error::NotFound(format!("account {address}")))?;
            ctx.print(&serde_json::to_value(&account)?, || {
                format!(
                    "address   {}\nbalance   {} FLOWNET\nsequence  {}\nkey       {} (ECDSA P-256, {})\nfaucet    {}",
                    account.address, account.balance, account.sequence, account.public_key, account.hash_algo,
                    if account.faucet_used { "used" } else { "available" }
                )
            });
        }
        AccountCmd::Faucet => {
            let receipt = ctx.wallet().await?.faucet().await?;
            let got = receipt.outcome.credited.unwrap_or_default();
            ctx.print(&json!({ "granted": got.to_string() }), || {
                format!("received {got} FLOWNET")
            });
        }
        AccountCmd::Transfer { to, amount } => {
            ctx.wallet().await?.transfer(to, amount).await?;
            ctx.print(&json!({ "to": to, "amount": amount.to_string() }), || {
                format!("sent {amount} FLOWNET to {to}")
            });
        }
    }
    Ok(())
}

async fn resolve(ctx: &Ctx, address: Option<Address>) -> Result<Address> {
    match address {
        Some(a) => Ok(a),
        None => ctx.my_address().await,
    }
}

/// Creates the `--key` account on the `--network` Flow network (the sponsor
/// pays) and records its address in the key file.
#[cfg(feature = "flow")]
pub async fn create_flow_account(ctx: &Ctx) -> Result<Address> {
    ctx.create_flow_account(&*crate::flow::connect(ctx.network).await?)
        .await
}

#[cfg(not(feature = "flow"))]
pub async fn create_flow_account(ctx: &Ctx) -> Result<Address> {
    ctx.ledger().await?;
    unreachable!("ledger() fails on Flow without the flow feature")
}
