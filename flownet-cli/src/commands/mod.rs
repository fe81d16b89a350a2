//! The command tree and one function per verb.

mod chat;
mod demo;
mod ledger;
mod node;
mod task;
pub use task::{
    Holder, SubmitReq, Submitted, conversation_prompt, hold_until_settled, input_label, submit,
};
mod web;

use std::{path::PathBuf, sync::Arc};

use anyhow::{Context as _, Result, bail};
use clap::{Args, Subcommand};
use flownet_core::{Address, Amount, Ledger, Node, OfferedModel};
use flownet_infer::{ModelManifest, OnnxEngine};
use serde_json::json;

use crate::{config::Config, context::Ctx};

#[derive(Debug, Subcommand)]
pub enum Command {
    /// The whole marketplace in one go on a fresh ledger: a node serves the real
    /// models, a user pays for a prompt, gets the image, rates it
    Demo(demo::DemoArgs),
    /// Sets up this data dir: ledger (if missing), key, account, welcome tokens and the
    /// config file that makes this key the default
    Init,
    /// The ledger file: create it, show its state, verify it against its log
    #[command(subcommand)]
    Ledger(ledger::LedgerCmd),
    /// Accounts: create, balance, faucet, transfer
    #[command(subcommand)]
    Account(ledger::AccountCmd),
    /// Nodes: register, serve, list, status
    #[command(subcommand)]
    Node(node::NodeCmd),
    /// Tasks: submit a prompt, wait for its output, show, cancel, expire
    #[command(subcommand)]
    Task(task::TaskCmd),
    /// A conversation with a language model: each answer streamed as it is written,
    /// paid per token, with what it cost
    Chat(chat::ChatArgs),
    /// Rates a fulfilled task, 1 to 5 stars (the first three raters share its bounty)
    Rate {
        task: u64,
        #[arg(value_parser = clap::value_parser!(u8).range(1..=5))]
        stars: u8,
    },
    /// Moves a task's unclaimed rating bounty to the treasury once its window has passed
    Sweep { task: u64 },
    /// Output NFTs: what was asked of which weights, and what came back
    #[command(subcommand)]
    Nft(NftCmd),
    /// The models in the models dir, with their weights' SHA-256 and prompt mapping
    Models,
    /// The content-addressed blob store of the data dir
    #[command(subcommand)]
    Blob(BlobCmd),
    /// FlowNet on Flow: deploy the contracts (needs the `flow` build)
    #[command(subcommand)]
    Flow(FlowCmd),
    /// The web page and HTTP gateway (JSON API, OpenAI-compatible API, metrics); `web
    /// keys` manages its API keys
    Web(web::WebArgs),
    /// The gasless service: pays, as payer only, for transactions that run one of
    /// FlowNet's own templates, rate limited per account. The paying key comes from
    /// FLOWNET_FLOW_SPONSOR (`0xADDRESS:PRIVATE_KEY_HEX[:KEY_INDEX]`), never argv
    #[cfg(feature = "flow")]
    Sponsor(SponsorArgs),
}

#[cfg(feature = "flow")]
#[derive(Debug, Args)]
pub struct SponsorArgs {
    /// Where to listen
    #[arg(long, default_value = "127.0.0.1:8099")]
    listen: std::net::SocketAddr,
    /// Transactions an account may send at once …
    #[arg(long, default_value_t = 10)]
    burst: u32,
    /// … refilled over this many seconds
    #[arg(long, default_value_t = 60)]
    period: u64,
    /// The highest gas limit paid for (each template has its own, lower one)
    #[arg(long, default_value_t = 9999)]
    max_gas_limit: u64,
    /// Gas (computation limit units) signed for per --fee-period, all clients
    /// together; every signed transaction counts its gas limit, failed ones too
    #[arg(long, default_value_t = 10_000_000)]
    fee_budget: u64,
    /// The same per client IP address (a gateway in front counts as one client)
    #[arg(long, default_value_t = 250_000)]
    fee_budget_per_client: u64,
    /// … over this many seconds
    #[arg(long, default_value_t = 24 * 3600)]
    fee_period: u64,
    /// Leading zero bits of the proof of work before an account is created
    /// (20 ≈ 1 s of a laptop core; 0 asks none: only for a private sponsor)
    #[arg(long, default_value_t = 20)]
    pow_difficulty: u8,
    /// A client exempt from the per-client budgets and account limits (not the
    /// global ones): the address a gateway in front reaches the sponsor from,
    /// which limits its users per IP itself; repeatable
    #[arg(long = "trusted-client")]
    trusted_clients: Vec<std::net::IpAddr>,
    /// The state file of the limits, budgets, spent challenges and faucet
    /// reservations (default: sponsor.sqlite in the data dir), kept across restarts
    #[arg(long)]
    state: Option<std::path::PathBuf>,
    /// New accounts the service creates at once …
    #[arg(long, default_value_t = 30)]
    accounts_burst: u32,
    /// … refilled over this many seconds
    #[arg(long, default_value_t = 60)]
    accounts_period: u64,
    /// New accounts one client IP address may ask for at once …
    #[arg(long, default_value_t = 5)]
    accounts_per_client: u32,
    /// … refilled over this many seconds
    #[arg(long, default_value_t = 3600)]
    accounts_per_client_period: u64,
}

#[derive(Debug, Subcommand)]
pub enum FlowCmd {
    /// Deploys FlowNetToken, FlowNetOutput and FlowNetMarketplace to the admin
    /// account (FLOWNET_FLOW_ADMIN, else FLOWNET_FLOW_SPONSOR, as
    /// `0xADDRESS:PRIVATE_KEY_HEX[:KEY_INDEX]`, a P-256/SHA3-256 key), which
    /// keeps the token minter and the faucet sponsor
    Deploy {
        /// Seconds a node has to claim a task
        #[arg(long, default_value_t = 300)]
        claim_window: u64,
        /// Seconds a node has to fulfil a task it claimed
        #[arg(long, default_value_t = 600)]
        fulfil_window: u64,
        /// Seconds raters can earn a task's bounty
        #[arg(long, default_value_t = 7 * 24 * 3600)]
        bounty_window: u64,
        /// The faucet's one-time welcome amount (0 disables it: use 0 on mainnet)
        #[arg(long, default_value = "1000")]
        faucet: Amount,
    },
}

impl Command {
    /// Whether the command runs until stopped (and so logs its progress by default).
    pub fn is_long_running(&self) -> bool {
        #[cfg(feature = "flow")]
        if matches!(self, Self::Sponsor(_)) {
            return true;
        }
        matches!(self, Self::Demo(_) | Self::Node(node::NodeCmd::Serve(_)))
            || matches!(self, Self::Web(w) if w.command.is_none())
    }
}

#[derive(Debug, Subcommand)]
pub enum NftCmd {
    /// The NFTs an account owns [default: this key's]
    List {
        #[arg(long)]
        owner: Option<Address>,
    },
}

#[derive(Debug, Subcommand)]
pub enum BlobCmd {
    /// Stores a file and prints its sha256 (use `sha256:<hex>` as an image prompt)
    Put { file: PathBuf },
    /// Writes a stored blob to a file
    Get {
        sha256: String,
        #[arg(long, short)]
        out: PathBuf,
    },
}

/// How to run models, for the commands that serve them.
#[derive(Debug, Clone, Args)]
pub struct EngineArgs {
    /// Threads per model session [default: all cores]
    #[arg(long)]
    pub threads: Option<usize>,
    /// Run models on the GPU with ONNX Runtime's CUDA provider (needs the `cuda` build)
    #[arg(long)]
    pub cuda: bool,
}

pub async fn dispatch(ctx: &Ctx, command: Command) -> Result<()> {
    match command {
        Command::Demo(args) => demo::run(ctx, args).await,
        Command::Init => init(ctx).await,
        Command::Ledger(cmd) => ledger::ledger(ctx, cmd).await,
        Command::Account(cmd) => ledger::account(ctx, cmd).await,
        Command::Node(cmd) => node::run(ctx, cmd).await,
        Command::Task(cmd) => task::run(ctx, cmd).await,
        Command::Chat(args) => chat::run(ctx, args).await,
        Command::Rate { task, stars } => {
            let wallet = ctx.wallet().await?;
            let receipt = wallet.rate(task, stars).await?;
            let bounty = receipt.outcome.credited.unwrap_or_default();
            ctx.print(
                &json!({ "task": task, "stars": stars, "bounty": bounty.to_string() }),
                || format!("rated task {task} {stars}★, earned {bounty} FLOWNET"),
            );
            Ok(())
        }
        Command::Sweep { task } => {
            ctx.wallet().await?.sweep(task).await?;
            ctx.print(&json!({ "task": task, "swept": true }), || {
                format!("swept task {task}'s bounty to the treasury")
            });
            Ok(())
        }
        Command::Nft(NftCmd::List { owner }) => {
            let ledger = ctx.ledger().await?;
            let owner = match owner {
                Some(o) => o,
                None => ctx.my_address().await?,
            };
            let nfts = ledger.nfts(owner).await?;
            ctx.print(&serde_json::to_value(&nfts)?, || {
                if nfts.is_empty() {
                    return format!("{owner} owns no output NFTs");
                }
                nfts.iter()
                    .map(|n| {
                        format!(
                            "#{} task {} {} (weights {}…)\n    prompt {:?} params {}\n    output sha256 {} {} {}",
                            n.id, n.task, n.model_id, &n.weights_sha256.to_hex()[..12], n.prompt, n.params,
                            n.output.sha256, n.output.mime, n.output.uri
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            });
            Ok(())
        }
        Command::Models => models(ctx),
        Command::Flow(cmd) => flow_cmd(ctx, cmd).await,
        Command::Web(args) => web::run(ctx, args).await,
        #[cfg(feature = "flow")]
        Command::Sponsor(args) => sponsor_cmd(ctx, args).await,
        Command::Blob(BlobCmd::Put { file }) => {
            use flownet_core::BlobStore;
            let bytes =
                std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
            let sha = ctx.blobs()?.put(&bytes)?;
            ctx.print(&json!({ "sha256": sha, "size": bytes.len() }), || {
                format!("sha256:{sha}")
            });
            Ok(())
        }
        Command::Blob(BlobCmd::Get { sha256, out }) => {
            use flownet_core::BlobStore;
            let sha = flownet_core::Digest32::from_hex(sha256.trim_start_matches("sha256:"))?;
            let bytes = ctx
                .blobs()?
                .get(&sha)?
                .with_context(|| format!("no blob {sha} in this data dir"))?;
            std::fs::write(&out, &bytes).with_context(|| format!("writing {}", out.display()))?;
            ctx.print(&json!({ "sha256": sha, "path": out }), || {
                format!("wrote {}", out.display())
            });
            Ok(())
        }
    }
}

async fn init(ctx: &Ctx) -> Result<()> {
    if ctx.network != crate::context::Network::Embedded {
        return init_flow(ctx).await;
    }
    let (ledger, ledger_created) = ctx.open_or_create_ledger()?;
    let (key, key_created) = ctx.load_or_create_key()?;
    let wallet = flownet_core::Wallet::new(ledger.clone() as Arc<dyn Ledger>, key);
    let granted = wallet.ensure_funded().await?;
    let config_path = Config::path(&ctx.data_dir);
    let config_created = Config {
        network: crate::config::EMBEDDED.into(),
        key: ctx.key_name.clone(),
        models_dir: None,
    }
    .save_new(&ctx.data_dir)?;
    let balance = ledger
        .account(wallet.address())
        .await?
        .map(|a| a.balance)
        .unwrap_or_default();
    ctx.print(
        &json!({
            "address": wallet.address(),
            "key": ctx.key_path(&ctx.key_name),
            "ledger": ctx.ledger_path(),
            "ledger_created": ledger_created,
            "key_created": key_created,
            "config": config_path,
            "config_created": config_created,
            "granted": granted.to_string(),
            "balance": balance.to_string(),
        }),
        || {
            format!(
                "address  {}\nkey      {}{}\nledger   {}{}\nconfig   {}{}\nbalance  {balance} FLOWNET{}",
                wallet.address(),
                ctx.key_path(&ctx.key_name).display(),
                if key_created { " (new)" } else { "" },
                ctx.ledger_path().display(),
                if ledger_created { " (new)" } else { "" },
                config_path.display(),
                if config_created { " (new)" } else { "" },
                if granted > Amount::ZERO {
                    format!(" ({granted} from the faucet)")
                } else {
                    String::new()
                }
            )
        },
    );
    Ok(())
}

/// Every manifest in the models dir, read without loading ONNX Runtime.
pub fn local_manifests(ctx: &Ctx) -> Result<Vec<ModelManifest>> {
    Ok(flownet_node::manifests(&ctx.models_dir)?)
}

fn models(ctx: &Ctx) -> Result<()> {
    let manifests = local_manifests(ctx)?;
    let json: Vec<_> = manifests
        .iter()
        .map(|m| {
            json!({
                "id": m.id, "kind": m.kind, "name": m.name, "sha256": m.digest(), "license": m.license,
                "source": m.source, "output_mime": m.output_mime, "prompt_mapping": m.prompt_mapping,
                "defaults": m.defaults, "weights_present": m.weights_path().exists(),
            })
        })
        .collect();
    ctx.print(&json!(json), || {
        manifests
            .iter()
            .map(|m| {
                format!(
                    "{} ({}) {}\n    weights sha256 {}{}\n    {}",
                    m.id,
                    m.kind.as_str(),
                    m.name,
                    m.digest(),
                    if m.weights_path().exists() {
                        ""
                    } else {
                        " (weights missing: run scripts/setup.sh)"
                    },
                    m.prompt_mapping
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    });
    Ok(())
}

/// Loads the ONNX models (all, or `ids`) on a blocking thread.
pub async fn load_engine(
    ctx: &Ctx,
    ids: Option<Vec<String>>,
    args: &EngineArgs,
) -> Result<Arc<OnnxEngine>> {
    let settings = flownet_node::EngineSettings {
        threads: args.threads,
        cuda: args.cuda,
        models: ids,
    };
    Ok(flownet_node::load_engine(&ctx.models_dir, &settings).await?)
}

/// Parses `model=price` offers and fills in each model's weights hash from its manifest.
pub fn offers_from_specs(ctx: &Ctx, specs: &[String]) -> Result<Vec<OfferedModel>> {
    let manifests = local_manifests(ctx)?;
    specs
        .iter()
        .map(|spec| {
            let (id, price) = spec.split_once('=').with_context(|| {
                format!("{spec:?}: expected MODEL=PRICE, e.g. mobilenet-v2=0.1")
            })?;
            let manifest = manifests.iter().find(|m| m.id == id).with_context(|| {
                format!(
                    "no model {id:?} in {} (see `flownet models`)",
                    ctx.models_dir.display()
                )
            })?;
            Ok(OfferedModel {
                model_id: id.into(),
                weights_sha256: manifest.digest(),
                price: price.parse()?,
                unit: manifest.kind.price_unit(),
            })
        })
        .collect()
}

/// A node as scripts see it.
pub fn node_json(n: &Node) -> serde_json::Value {
    json!({
        "owner": n.owner,
        "name": n.name,
        "endpoint": n.endpoint,
        "active": n.active,
        "models": n.models.iter().map(|m| json!({"model_id": m.model_id, "weights_sha256": m.weights_sha256, "price": m.price.to_string(), "unit": m.unit})).collect::<Vec<_>>(),
        "score": n.stats.score(),
        "ratings": n.stats.ratings_count,
        "reliability": n.stats.reliability(),
        "community_score": n.stats.community_score(),
        "community_ratings": n.stats.community_count,
        "fulfilled": n.stats.fulfilled,
        "missed": n.stats.missed,
        "declined": n.stats.declined,
        "rated_paid": flownet_core::Amount(n.stats.rated_paid).to_string(),
        "reliability_bound": n.stats.reliability_bound(),
        "rank_key": n.stats.rank_key(),
    })
}

/// A node as people see it: one line per offer.
pub fn node_lines(n: &Node) -> String {
    let reliability = n
        .stats
        .reliability()
        .map_or("-".into(), |r| format!("{:.0}%", r * 100.0));
    let community = n.stats.community_score().map_or("-".into(), |c| {
        format!("{c:.2} ({})", n.stats.community_count)
    });
    let mut s = format!(
        "{} {:?}{} score {:.2} ({} ratings, {} FLOWNET paid) reliability {reliability} ({} delivered, {} missed, {} declined) community {community}\n    {}",
        n.owner,
        n.name,
        if n.active { "" } else { " [paused]" },
        n.stats.score(),
        n.stats.ratings_count,
        flownet_core::Amount(n.stats.rated_paid),
        n.stats.fulfilled,
        n.stats.missed,
        n.stats.declined,
        n.endpoint
    );
    for m in &n.models {
        s.push_str(&format!(
            "\n    {:<24} {:>12} FLOWNET {:<16} weights {}…",
            m.model_id,
            m.price.to_string(),
            m.unit.to_string(),
            &m.weights_sha256.to_hex()[..12]
        ));
    }
    s
}

/// The best-ranked active node offering `model` at or under `max_price`.
pub async fn pick_node(
    ledger: &dyn Ledger,
    model: &str,
    max_price: Option<Amount>,
) -> Result<(Node, OfferedModel)> {
    let nodes = ledger.nodes().await?;
    match flownet_core::best_offer(&nodes, model, max_price) {
        Ok((node, offer)) => Ok((node.clone(), offer.clone())),
        Err(flownet_core::NoOffer::AboveMax { cheapest }) => bail!(
            "no node offers {model} at or under your max price (cheapest: {cheapest} FLOWNET)"
        ),
        Err(flownet_core::NoOffer::Unoffered) => {
            bail!("no active node offers model {model:?} (see `flownet node list`)")
        }
    }
}

/// `init` on Flow: a key, an account made by the sponsor, the faucet's grant.
async fn init_flow(ctx: &Ctx) -> Result<()> {
    let (_, key_created) = ctx.load_or_create_key()?;
    let account_created = match ctx.flow_address() {
        Ok(_) => false,
        Err(_) => {
            ledger::create_flow_account(ctx).await?;
            true
        }
    };
    let wallet = ctx.wallet().await?;
    let account = wallet
        .ledger()
        .account(wallet.address())
        .await?
        .context("the account is not on chain")?;
    let granted = if account.faucet_used {
        Amount::ZERO
    } else {
        match wallet.faucet().await {
            Ok(r) => r.outcome.credited.unwrap_or_default(),
            Err(flownet_core::Error::Faucet(_)) => Amount::ZERO,
            Err(e) => return Err(e.into()),
        }
    };
    let balance = account.balance.checked_add(granted)?;
    ctx.print(
        &json!({
            "address": wallet.address(),
            "network": ctx.network.as_str(),
            "key": ctx.key_path(&ctx.key_name),
            "key_created": key_created,
            "account_created": account_created,
            "granted": granted.to_string(),
            "balance": balance.to_string(),
        }),
        || {
            format!(
                "address  {}{}\nnetwork  Flow {}\nkey      {}{}\nbalance  {balance} FLOWNET",
                wallet.address(),
                if account_created { " (new)" } else { "" },
                ctx.network.as_str(),
                ctx.key_path(&ctx.key_name).display(),
                if key_created { " (new)" } else { "" },
            )
        },
    );
    Ok(())
}

#[cfg(feature = "flow")]
async fn flow_cmd(ctx: &Ctx, cmd: FlowCmd) -> Result<()> {
    match cmd {
        FlowCmd::Deploy {
            claim_window,
            fulfil_window,
            bounty_window,
            faucet,
        } => {
            if ctx.network == crate::context::Network::Embedded {
                bail!("`flow deploy` deploys to Flow: pass --network emulator, testnet or mainnet");
            }
            let config = flownet_core::LedgerConfig {
                claim_window_s: claim_window,
                fulfil_window_s: fulfil_window,
                bounty_window_s: bounty_window,
                faucet_amount: faucet,
            };
            let address = crate::flow::deploy(ctx.network, &config).await?;
            ctx.print(
                &json!({ "network": ctx.network.as_str(), "contracts": address, "config": config }),
                || {
                    format!(
                        "deployed FlowNet to {address} on Flow {}\nexport FLOWNET_FLOW_CONTRACTS={address}",
                        ctx.network.as_str()
                    )
                },
            );
            Ok(())
        }
    }
}

#[cfg(feature = "flow")]
async fn sponsor_cmd(ctx: &Ctx, args: SponsorArgs) -> Result<()> {
    if ctx.network == crate::context::Network::Embedded {
        bail!("`sponsor` pays for Flow transactions: pass --network emulator, testnet or mainnet");
    }
    if args.burst == 0 || args.period == 0 {
        bail!("--burst and --period must be positive");
    }
    if args.fee_period == 0 {
        bail!("--fee-period must be positive");
    }
    if args.pow_difficulty > flownet_chain::flow::pow::MAX_DIFFICULTY {
        bail!(
            "--pow-difficulty is at most {}",
            flownet_chain::flow::pow::MAX_DIFFICULTY
        );
    }
    if args.accounts_burst == 0
        || args.accounts_period == 0
        || args.accounts_per_client == 0
        || args.accounts_per_client_period == 0
    {
        bail!("the --accounts-* limits must be positive");
    }
    let (network, payer) = crate::flow::sponsor_setup(ctx.network)?;
    let policy = flownet_chain::flow::SponsorPolicy {
        burst: args.burst,
        period: std::time::Duration::from_secs(args.period),
        max_gas_limit: args.max_gas_limit,
        pow_difficulty: args.pow_difficulty,
        fee_budget: args.fee_budget,
        fee_budget_per_client: args.fee_budget_per_client,
        fee_period: std::time::Duration::from_secs(args.fee_period),
        trusted_clients: args.trusted_clients.clone(),
    };
    let accounts = flownet_chain::flow::AccountPolicy {
        burst: args.accounts_burst,
        period: std::time::Duration::from_secs(args.accounts_period),
        per_client_burst: args.accounts_per_client,
        per_client_period: std::time::Duration::from_secs(args.accounts_per_client_period),
    };
    let address = payer.address;
    let state = match args.state.clone() {
        Some(path) => path,
        None => {
            crate::context::create_private_dir(&ctx.data_dir)?;
            ctx.data_dir.join("sponsor.sqlite")
        }
    };
    let app = flownet_gateway::sponsor::service(&network, payer, &policy, &accounts, Some(&state))
        .await?;
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("binding {}", args.listen))?;
    eprintln!(
        "sponsor {address} on Flow {} listening on http://{}",
        network.name,
        listener.local_addr()?
    );
    Ok(flownet_gateway::sponsor::serve(listener, app).await?)
}

#[cfg(not(feature = "flow"))]
async fn flow_cmd(_: &Ctx, _: FlowCmd) -> Result<()> {
    bail!(
        "this flownet was built without Flow support: rebuild with `cargo build -p flownet-cli --features flow`"
    )
}
