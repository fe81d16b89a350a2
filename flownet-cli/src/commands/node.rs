use std::{net::SocketAddr, sync::Arc, time::Duration};

use anyhow::{Context as _, Result, bail};
use clap::{Args, Subcommand};
use flownet_core::{Address, BlobStore, Engine, Ledger, NodeWorker, TaskQuery, TaskStatus, Wallet};
use serde_json::json;

use super::{EngineArgs, load_engine, node_json, node_lines, offers_from_specs};
use crate::{context::Ctx, serve};

#[derive(Debug, Subcommand)]
pub enum NodeCmd {
    /// Registers this key's node (or updates its name, endpoint and prices)
    Register {
        /// A name people see in node listings
        #[arg(long)]
        name: String,
        /// Where the node serves its outputs
        #[arg(long, default_value = "http://127.0.0.1:7070")]
        endpoint: String,
        /// An offer, MODEL=PRICE (repeatable); the weights hash comes from the manifest
        #[arg(long = "model", required = true, value_name = "MODEL=PRICE")]
        models: Vec<String>,
    },
    /// Serves this key's node: claims tasks, runs the models, delivers, gets paid
    Serve(ServeArgs),
    /// Every node, best first (score, then price)
    List {
        /// Only nodes offering this model
        #[arg(long)]
        model: Option<String>,
    },
    /// A node's record and its tasks [default: this key's]
    Status { owner: Option<Address> },
    /// What this key's node has earned
    Earnings,
    /// Pauses this key's node (no new tasks) or resumes it
    Pause {
        #[arg(long)]
        resume: bool,
    },
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address for the output server [default: the host:port of the registered endpoint]
    #[arg(long)]
    pub listen: Option<SocketAddr>,
    /// How often to look for tasks, in milliseconds
    #[arg(long, default_value_t = 250)]
    pub interval_ms: u64,
    /// Process the tasks waiting now, then exit
    #[arg(long)]
    pub once: bool,
    #[command(flatten)]
    pub engine: EngineArgs,
}

pub async fn run(ctx: &Ctx, cmd: NodeCmd) -> Result<()> {
    match cmd {
        NodeCmd::Register {
            name,
            endpoint,
            models,
        } => {
            let offers = offers_from_specs(ctx, &models)?;
            let wallet = ctx.wallet().await?;
            wallet.register_node(&name, &endpoint, offers).await?;
            let node = wallet
                .ledger()
                .node(wallet.address())
                .await?
                .context("node vanished")?;
            ctx.print(&node_json(&node), || {
                format!("registered node\n{}", node_lines(&node))
            });
        }
        NodeCmd::Serve(args) => serve_node(ctx, args).await?,
        NodeCmd::List { model } => {
            let ledger = ctx.ledger().await?;
            let nodes: Vec<_> = ledger
                .nodes()
                .await?
                .into_iter()
                .filter(|n| model.as_deref().is_none_or(|m| n.offer(m).is_some()))
                .collect();
            ctx.print(
                &json!(nodes.iter().map(node_json).collect::<Vec<_>>()),
                || {
                    if nodes.is_empty() {
                        "no nodes yet (register one with `flownet node register`)".into()
                    } else {
                        nodes.iter().map(node_lines).collect::<Vec<_>>().join("\n")
                    }
                },
            );
        }
        NodeCmd::Status { owner } => {
            let ledger = ctx.ledger().await?;
            let owner = match owner {
                Some(o) => o,
                None => ctx.my_address().await?,
            };
            let node = ledger
                .node(owner)
                .await?
                .ok_or_else(|| flownet_core::Error::NotFound(format!("node {owner}")))?;
            let tasks = ledger
                .tasks(TaskQuery {
                    node: Some(owner),
                    ..TaskQuery::default()
                })
                .await?;
            let count = |s: TaskStatus| tasks.iter().filter(|t| t.status == s).count();
            let counts: serde_json::Map<String, serde_json::Value> = TaskStatus::ALL
                .iter()
                .map(|s| (s.as_str().to_owned(), json!(count(*s))))
                .collect();
            let mut j = node_json(&node);
            j["tasks"] = json!(counts);
            ctx.print(&j, || {
                let summary: Vec<String> = TaskStatus::ALL
                    .iter()
                    .map(|s| format!("{} {}", count(*s), s))
                    .collect();
                format!("{}\n    tasks: {}", node_lines(&node), summary.join(", "))
            });
        }
        NodeCmd::Earnings => {
            let wallet = ctx.wallet().await?;
            let ledger = wallet.ledger();
            let tasks = ledger
                .tasks(TaskQuery {
                    node: Some(wallet.address()),
                    status: Some(TaskStatus::Fulfilled),
                    ..TaskQuery::default()
                })
                .await?;
            let earned = tasks
                .iter()
                .try_fold(flownet_core::Amount::ZERO, |acc, t| {
                    acc.checked_add(
                        t.price
                            .mul_div(flownet_core::rules::NODE_SHARE_PER_MILLE, 1000),
                    )
                })?;
            let balance = ledger
                .account(wallet.address())
                .await?
                .map(|a| a.balance)
                .unwrap_or_default();
            ctx.print(&json!({ "fulfilled": tasks.len(), "earned": earned.to_string(), "balance": balance.to_string() }), || {
                format!("{} tasks fulfilled, {earned} FLOWNET earned; balance {balance} FLOWNET", tasks.len())
            });
        }
        NodeCmd::Pause { resume } => {
            ctx.wallet().await?.set_node_active(resume).await?;
            ctx.print(&json!({ "active": resume }), || {
                if resume {
                    "node resumed".into()
                } else {
                    "node paused: it gets no new tasks".into()
                }
            });
        }
    }
    Ok(())
}

/// The listen address implied by an endpoint URL (`http://host:port[/…]`).
fn listen_from_endpoint(endpoint: &str) -> Result<SocketAddr> {
    let rest = endpoint
        .strip_prefix("http://")
        .with_context(|| format!("endpoint {endpoint} is not http://; pass --listen"))?;
    let hostport = rest.split('/').next().unwrap_or_default();
    let hostport = if hostport.contains(':') {
        hostport.to_owned()
    } else {
        format!("{hostport}:80")
    };
    let hostport = hostport.replace("localhost", "127.0.0.1");
    hostport.parse().with_context(|| {
        format!("cannot listen on {hostport} from endpoint {endpoint}; pass --listen")
    })
}

async fn serve_node(ctx: &Ctx, args: ServeArgs) -> Result<()> {
    let wallet = Arc::new(ctx.wallet().await?);
    let Some(node) = wallet.ledger().node(wallet.address()).await? else {
        bail!(
            "{} has no node: register one first with `flownet node register`",
            wallet.address()
        );
    };
    let ids: Vec<String> = node.models.iter().map(|m| m.model_id.clone()).collect();
    let engine = load_engine(ctx, Some(ids), &args.engine).await?;
    for offer in &node.models {
        let served = engine.models().into_iter().find(|m| m.id == offer.model_id);
        match served {
            Some(m) if m.weights_sha256 == offer.weights_sha256 => {}
            Some(m) => tracing::warn!(
                "model {} is registered with weights {} but the local weights are {}: re-register to serve it",
                offer.model_id,
                offer.weights_sha256,
                m.weights_sha256
            ),
            None => tracing::warn!(
                "model {} is registered but not in {}",
                offer.model_id,
                ctx.models_dir.display()
            ),
        }
    }
    let blobs = ctx.blobs()?;
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let listen = match args.listen {
        Some(l) => l,
        None => listen_from_endpoint(&node.endpoint)?,
    };
    let info = json!({ "node": node.owner, "name": node.name, "models": node.models });
    let (addr, server) =
        serve::spawn_blob_server(listen, blobs.clone(), info, stop_rx.clone()).await?;
    let engine: Arc<dyn Engine> = engine;
    let blob_store: Arc<dyn BlobStore> = Arc::new(blobs);
    let worker = Arc::new(NodeWorker::new(
        wallet.clone() as Arc<Wallet<dyn Ledger>>,
        engine,
        blob_store,
        node.endpoint.clone(),
    ));
    tracing::info!(
        "node {} ({}) serving {} on {addr}",
        node.owner,
        node.name,
        node.models
            .iter()
            .map(|m| m.model_id.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    );
    if args.once {
        let delivered = worker.tick(&serve::log_event).await?;
        let _ = stop_tx.send(true);
        let _ = server.await;
        ctx.print(&json!({ "delivered": delivered }), || {
            format!("delivered {delivered} tasks")
        });
        return Ok(());
    }
    let loop_handle = tokio::spawn(serve::run_worker(
        worker,
        Duration::from_millis(args.interval_ms),
        stop_rx,
    ));
    tokio::signal::ctrl_c()
        .await
        .context("waiting for Ctrl-C")?;
    tracing::info!("stopping: claimed tasks resume on the next start");
    let _ = stop_tx.send(true);
    let _ = loop_handle.await;
    let _ = server.await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_give_listen_addresses() {
        assert_eq!(
            listen_from_endpoint("http://127.0.0.1:7070").unwrap(),
            "127.0.0.1:7070".parse().unwrap()
        );
        assert_eq!(
            listen_from_endpoint("http://localhost:9000/x").unwrap(),
            "127.0.0.1:9000".parse().unwrap()
        );
        assert!(listen_from_endpoint("https://example.com").is_err());
    }
}
