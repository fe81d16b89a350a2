//! `flownet web`: the gateway of `flownet-gateway` over this data dir's ledger (or
//! Flow), optionally with this data dir's node in-process (`--node`), and `web keys`,
//! its API keys.

use std::{
    net::{SocketAddr, ToSocketAddrs},
    sync::Arc,
    time::Duration,
};

use anyhow::{Context as _, Result, bail};
use clap::{Args, Subcommand};
use flownet_core::{Amount, Engine, Ledger, Wallet};
use flownet_gateway::{Gateway, GatewayConfig, ModelMeta, keys::ApiKeys, limits::Rate, page_built};
use serde_json::json;

use super::{EngineArgs, load_engine, local_manifests};
use crate::context::Ctx;

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct WebArgs {
    #[command(subcommand)]
    pub command: Option<WebCmd>,
    #[command(flatten)]
    pub serve: ServeArgs,
}

#[derive(Debug, Subcommand)]
pub enum WebCmd {
    /// API keys of the OpenAI-compatible API: custodial accounts the gateway pays from
    #[command(subcommand)]
    Keys(KeysCmd),
}

#[derive(Debug, Subcommand)]
pub enum KeysCmd {
    /// Makes a key and its account; prints the key once
    Create {
        /// A name for the key, for listings
        #[arg(long)]
        label: String,
        /// The most one task may cost, in FLOWNET
        #[arg(long)]
        max_price: Amount,
        /// Requests per minute, optionally /BURST
        #[arg(long, default_value = "60/10")]
        rate: Rate,
        /// Take the faucet's welcome amount into the new account
        #[arg(long)]
        faucet: bool,
        /// Send this many FLOWNET from --key's account to the new account
        #[arg(long)]
        fund: Option<Amount>,
    },
    /// Every key with its account's balance
    List,
    /// Stops a key from working (its account and tokens stay)
    Revoke { id: String },
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Where to serve the page and the APIs
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Also serve --key's registered node in this process (as `flownet node serve`)
    #[arg(long)]
    pub node: bool,
    /// Where the in-process node serves its outputs [default: its endpoint's host:port]
    #[arg(long, requires = "node")]
    pub node_listen: Option<SocketAddr>,
    /// How often the in-process node looks for tasks, in milliseconds
    #[arg(long, default_value_t = 100, requires = "node")]
    pub node_interval_ms: u64,
    #[command(flatten)]
    pub engine: EngineArgs,
    /// Let pages from this origin call the APIs (repeatable); none by default
    #[arg(long = "cors-origin", value_name = "ORIGIN")]
    pub cors_origins: Vec<String>,
    /// Answer for this host name besides localhost and IP addresses (repeatable; * for any)
    #[arg(long = "allowed-host", value_name = "NAME")]
    pub allowed_hosts: Vec<String>,
    /// The gateway's URL as clients reach it, for image URLs [default: from Host]
    #[arg(long)]
    pub public_url: Option<String>,
    /// API requests per client IP per minute, optionally /BURST (0 disables)
    #[arg(long, default_value = "1200/200")]
    pub ip_rate: Rate,
    /// Largest request body, in bytes
    #[arg(long, default_value_t = 64 * 1024)]
    pub max_body: usize,
    /// Largest image the page may hand the gateway to hold as a task's input (for
    /// image classification and OCR), in bytes
    #[arg(long, default_value_t = 4 * 1024 * 1024)]
    pub max_image: usize,
    /// Longest a request may take, in seconds (not event streams or generations)
    #[arg(long, default_value_t = 30)]
    pub request_timeout: u64,
    /// Longest a client may take to send a request's headers, in seconds
    #[arg(long, default_value_t = 10)]
    pub header_timeout: u64,
    /// Longest a client may take to send a request's body, in seconds
    #[arg(long, default_value_t = 20)]
    pub body_timeout: u64,
    /// Most connections open at once
    #[arg(long, default_value_t = 1024)]
    pub max_connections: usize,
    /// Most event streams one client (an IPv4 address or IPv6 /64) holds open
    #[arg(long, default_value_t = 16)]
    pub max_streams_per_ip: usize,
    /// Most bytes of outputs fetched from other machines' nodes kept in the data dir's
    /// blob store (the oldest go first; 0 keeps none)
    #[arg(long, default_value_t = 1 << 30)]
    pub max_cache_bytes: u64,
    /// Require `Authorization: Bearer TOKEN` on /metrics
    #[arg(
        long,
        env = "FLOWNET_METRICS_TOKEN",
        value_name = "TOKEN",
        hide_env_values = true
    )]
    pub metrics_token: Option<String>,
    /// Longest an OpenAI request waits for its tasks, in seconds
    #[arg(long, default_value_t = 120)]
    pub task_timeout: u64,
    /// How often task events are read from the ledger, in milliseconds
    #[arg(long, default_value_t = 100)]
    pub poll_ms: u64,
    /// On Flow: accounts the page may create per client IP per minute, optionally
    /// /BURST; the sponsor pays for each (0 disables)
    #[arg(long, default_value = "6/3")]
    pub account_rate: Rate,
    /// On Flow: the Access API's REST endpoint the page's FCL reaches through the
    /// gateway [default: the network's, e.g. http://127.0.0.1:8888 on the emulator]
    #[arg(long, value_name = "URL")]
    pub flow_rest: Option<String>,
    /// On Flow: FCL's discovery wallet (`discovery.wallet`), for users who log in
    /// with their own Flow wallet
    #[arg(long, value_name = "URL")]
    pub fcl_discovery: Option<String>,
}

impl ServeArgs {
    /// The gateway's settings; `fetch_policy` says which node addresses it fetches
    /// from (`Ctx::fetch_policy`); metered answers are recounted with the GGUF models
    /// in `models_dir`.
    pub fn config(
        &self,
        fetch_policy: flownet_node::FetchPolicy,
        models_dir: &std::path::Path,
    ) -> GatewayConfig {
        GatewayConfig {
            fetch_policy,
            models_dir: Some(models_dir.to_owned()),
            max_body_bytes: self.max_body,
            max_image_bytes: self.max_image,
            request_timeout: Duration::from_secs(self.request_timeout),
            header_timeout: Duration::from_secs(self.header_timeout.max(1)),
            body_timeout: Duration::from_secs(self.body_timeout.max(1)),
            max_connections: self.max_connections.max(1),
            max_event_streams_per_ip: self.max_streams_per_ip,
            max_cache_bytes: self.max_cache_bytes,
            metrics_token: self.metrics_token.clone().filter(|t| !t.is_empty()),
            task_timeout: Duration::from_secs(self.task_timeout),
            ip_rate: self.ip_rate,
            cors_origins: self.cors_origins.clone(),
            allowed_hosts: self.allowed_hosts.clone(),
            poll_interval: Duration::from_millis(self.poll_ms.max(10)),
            public_url: self.public_url.clone(),
            account_rate: self.account_rate,
            ..GatewayConfig::default()
        }
    }
}

pub async fn run(ctx: &Ctx, args: WebArgs) -> Result<()> {
    match args.command {
        Some(WebCmd::Keys(cmd)) => keys_cmd(ctx, cmd).await,
        None => serve_web(ctx, args.serve).await,
    }
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

async fn keys_cmd(ctx: &Ctx, cmd: KeysCmd) -> Result<()> {
    let keys = ApiKeys::new(ApiKeys::path_in(&ctx.data_dir));
    match cmd {
        KeysCmd::Create {
            label,
            max_price,
            rate,
            faucet,
            fund,
        } => {
            // The operator's account pays --fund; check it first, before anything is made.
            let funder = match fund {
                Some(_) => Some(ctx.wallet().await?),
                None => None,
            };
            let (token, mut record) = keys.create(&label, max_price, rate, unix_now())?;
            let key = flownet_core::SigningKey::from_bytes(&hex::decode(&record.private_key)?)?;
            let funded = async {
                let wallet = match ctx.network {
                    crate::context::Network::Embedded => {
                        let ledger: Arc<dyn Ledger> = ctx.open_ledger()?;
                        let wallet = Wallet::new(ledger, key);
                        wallet.create_account().await?;
                        wallet
                    }
                    _ => {
                        let (ledger, address) = flow_account(ctx, &key).await?;
                        keys.set_network_address(&record.id, ctx.network.as_str(), address)?;
                        record.address = address;
                        Wallet::with_address(ledger, key, address)
                    }
                };
                let mut granted = Amount::ZERO;
                if faucet {
                    granted = wallet.faucet().await?.outcome.credited.unwrap_or_default();
                }
                if let (Some(amount), Some(funder)) = (fund, &funder) {
                    funder.transfer(wallet.address(), amount).await?;
                    granted = granted.checked_add(amount)?;
                }
                anyhow::Ok(granted)
            }
            .await;
            let granted = match funded {
                Ok(g) => g,
                Err(e) => {
                    // Keep the record (its key may hold tokens) but make it unusable.
                    let _ = keys.revoke(&record.id);
                    return Err(e.context(format!(
                        "setting up the account of key {} (the key is revoked)",
                        record.id
                    )));
                }
            };
            ctx.print(
                &json!({
                    "id": record.id, "label": record.label, "key": token, "address": record.address,
                    "max_price": record.max_price.to_string(), "funded": granted.to_string(),
                    "rate_per_minute": record.rate_per_minute, "burst": record.burst,
                }),
                || {
                    format!(
                        "API key {} ({}) for account {}, max price {} FLOWNET, funded {granted} FLOWNET\n\n    {token}\n\nThis is the only time the key is shown. Use it as an OpenAI API key with base URL http://<gateway>/v1",
                        record.id, record.label, record.address, record.max_price
                    )
                },
            );
        }
        KeysCmd::List => {
            let records = keys.list()?;
            let ledger = ctx.ledger().await.ok();
            let mut rows = Vec::new();
            for r in &records {
                let balance = match &ledger {
                    Some(l) if r.network == ctx.network.as_str() => {
                        l.account(r.address).await?.map(|a| a.balance)
                    }
                    _ => None,
                };
                rows.push((r, balance));
            }
            ctx.print(
                &json!(
                    rows.iter()
                        .map(|(r, b)| json!({
                            "id": r.id, "label": r.label, "address": r.address, "network": r.network, "revoked": r.revoked,
                            "max_price": r.max_price.to_string(), "rate_per_minute": r.rate_per_minute,
                            "burst": r.burst, "balance": b.map(|b| b.to_string()), "created_at": r.created_at,
                        }))
                        .collect::<Vec<_>>()
                ),
                || {
                    if rows.is_empty() {
                        return "no API keys (make one with `flownet web keys create`)".into();
                    }
                    rows.iter()
                        .map(|(r, b)| {
                            format!(
                                "{} {:<16} {} balance {} FLOWNET, max price {}, {}/min{}",
                                r.id,
                                r.label,
                                r.address,
                                b.map_or("?".into(), |b| b.to_string()),
                                r.max_price,
                                r.rate_per_minute,
                                if r.revoked { " [revoked]" } else { "" }
                            )
                        })
                        .collect::<Vec<_>>()
                        .join("\n")
                },
            );
        }
        KeysCmd::Revoke { id } => {
            let r = keys.revoke(&id)?;
            ctx.print(&json!({ "id": r.id, "revoked": true }), || {
                format!("revoked API key {} ({})", r.id, r.label)
            });
        }
    }
    Ok(())
}

/// Creates a Flow account (paid by the sponsor) for a custodial API key.
/// Its ledger, which signs for the new account, and the account's address.
#[cfg(feature = "flow")]
async fn flow_account(
    ctx: &Ctx,
    key: &flownet_core::SigningKey,
) -> Result<(Arc<dyn Ledger>, flownet_core::Address)> {
    let ledger = crate::flow::connect(ctx.network).await?;
    let address = ledger.create_account(key).await?;
    Ok((ledger, address))
}

#[cfg(not(feature = "flow"))]
async fn flow_account(
    ctx: &Ctx,
    _key: &flownet_core::SigningKey,
) -> Result<(Arc<dyn Ledger>, flownet_core::Address)> {
    ctx.ledger().await?;
    bail!("this flownet was built without Flow support")
}

/// The models the gateway can describe: the manifests in the models dir.
fn manifest_models(ctx: &Ctx) -> Vec<ModelMeta> {
    match local_manifests(ctx) {
        Ok(ms) => ms.iter().map(ModelMeta::from_manifest).collect(),
        Err(e) => {
            tracing::warn!(
                "no model manifests ({e:#}): the OpenAI API will not know which models make images"
            );
            Vec::new()
        }
    }
}

/// The gateway over `--network`'s ledger: the data dir's embedded ledger (created if
/// missing), or FlowNet on Flow.
async fn open_gateway(
    ctx: &Ctx,
    args: &ServeArgs,
    blobs: flownet_node::FsBlobStore,
) -> Result<Arc<Gateway>> {
    let models = manifest_models(ctx);
    let keys = ApiKeys::new(ApiKeys::path_in(&ctx.data_dir));
    if ctx.network != crate::context::Network::Embedded {
        #[cfg(feature = "flow")]
        {
            let side = crate::flow::web_side(
                ctx.network,
                args.flow_rest.clone(),
                args.fcl_discovery.clone(),
            )
            .await?;
            return Ok(Gateway::on_flow(
                side,
                Some(blobs),
                models,
                Some(keys),
                args.config(ctx.fetch_policy(), &ctx.models_dir),
            )
            .await?);
        }
        #[cfg(not(feature = "flow"))]
        {
            ctx.ledger().await?;
        }
    }
    if args.flow_rest.is_some() || args.fcl_discovery.is_some() {
        bail!("--flow-rest and --fcl-discovery need --network emulator|testnet|mainnet");
    }
    let (ledger, created) = ctx.open_or_create_ledger()?;
    if created {
        tracing::info!("created a new ledger at {}", ctx.ledger_path().display());
    }
    let ledger: Arc<dyn Ledger> = ledger;
    Ok(Gateway::new(
        ledger,
        Some(blobs),
        models,
        Some(keys),
        args.config(ctx.fetch_policy(), &ctx.models_dir),
    )
    .await?)
}

async fn serve_web(ctx: &Ctx, args: ServeArgs) -> Result<()> {
    let blobs = ctx.blobs()?;
    let gateway = open_gateway(ctx, &args, blobs.clone()).await?;
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut tasks = Vec::new();
    if args.node {
        tasks.extend(start_node(ctx, &args, &gateway, blobs, stop_rx.clone()).await?);
    }
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("binding {}", args.listen))?;
    let addr = listener.local_addr()?;
    if !page_built() {
        tracing::warn!(
            "this binary has no web page built in: run scripts/build-web.sh and rebuild"
        );
    }
    tracing::info!("gateway on http://{addr} (page, /api, /v1, /metrics)");
    let mut server = tokio::spawn(gateway.serve(listener, stop_rx));
    tokio::select! {
        r = tokio::signal::ctrl_c() => r.context("waiting for Ctrl-C")?,
        r = &mut server => {
            let _ = stop_tx.send(true);
            return r?.context("the gateway stopped");
        }
    }
    tracing::info!("stopping");
    let _ = stop_tx.send(true);
    for t in tasks {
        let _ = t.await;
    }
    server.await??;
    Ok(())
}

/// The `host:port` of an `http://host:port` endpoint.
fn listen_from(endpoint: &str) -> Result<SocketAddr> {
    let rest = endpoint
        .strip_prefix("http://")
        .with_context(|| format!("endpoint {endpoint} is not http://: pass --node-listen"))?;
    let hostport = rest.split('/').next().unwrap_or_default();
    let hostport = if hostport.contains(':') {
        hostport.to_owned()
    } else {
        format!("{hostport}:80")
    };
    hostport
        .to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .with_context(|| format!("cannot listen on {hostport}: pass --node-listen"))
}

/// Runs `--key`'s node in this process: its blob server and its worker, whose events
/// also go to the gateway (so the page sees "running").
async fn start_node(
    ctx: &Ctx,
    args: &ServeArgs,
    gateway: &Arc<Gateway>,
    blobs: flownet_node::FsBlobStore,
    stop: tokio::sync::watch::Receiver<bool>,
) -> Result<Vec<tokio::task::JoinHandle<()>>> {
    let wallet = Arc::new(ctx.wallet().await?);
    let node = flownet_node::worker::registered_node(&wallet).await?;
    let ids: Vec<String> = node.models.iter().map(|m| m.model_id.clone()).collect();
    let engine: Arc<dyn Engine> = load_engine(ctx, Some(ids), &args.engine).await?;
    let listen = match args.node_listen {
        Some(l) => l,
        None => listen_from(&node.endpoint)?,
    };
    let interval = Duration::from_millis(args.node_interval_ms.max(10));
    let gw = gateway.clone();
    let on_event = move |e: &flownet_core::NodeEvent| {
        flownet_node::log_event(e);
        gw.node_event(e);
    };
    let wallet: Arc<Wallet<dyn Ledger>> = wallet;
    let node = flownet_node::start_node(
        wallet,
        engine,
        blobs,
        Some(listen),
        interval,
        stop,
        on_event,
    )
    .await?;
    Ok(node.tasks)
}
