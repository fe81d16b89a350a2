use std::{net::SocketAddr, sync::Arc, time::Duration};

use anyhow::{Context as _, Result, bail};
use clap::{Args, Subcommand};
use flownet_core::{Address, Engine, Ledger, TaskQuery, TaskStatus, Wallet};
use serde_json::json;

use super::{EngineArgs, load_engine, node_json, node_lines, offers_from_specs};
use crate::{
    context::Ctx,
    hooks::{self, HandlerContext},
};

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
    /// Serve the models of a Python object instead, MODULE:OBJECT (a flownet.Node with
    /// its @node.model functions); publishes its offers first. Needs the `flownet`
    /// command of the Python package
    #[arg(long, value_name = "MODULE:OBJECT")]
    pub handler: Option<String>,
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

async fn serve_node(ctx: &Ctx, args: ServeArgs) -> Result<()> {
    let wallet: Arc<Wallet<dyn Ledger>> = Arc::new(ctx.wallet().await?);
    let engine: Arc<dyn Engine> = match &args.handler {
        Some(spec) => {
            let loader = hooks::handler_loader().with_context(|| {
                format!(
                    "--handler {spec} serves Python functions: run the `flownet` command of the \
                     Python package (pip install ./flownet-py) instead of this binary"
                )
            })?;
            let context = HandlerContext {
                models_dir: ctx.models_dir.clone(),
                threads: args.engine.threads,
                cuda: args.engine.cuda,
            };
            let spec = spec.clone();
            let handler = tokio::task::spawn_blocking(move || loader(&spec, &context)).await??;
            let node = flownet_node::ensure_registered(
                &wallet,
                handler.name.as_deref(),
                handler.endpoint.as_deref(),
                handler.offers,
            )
            .await?;
            tracing::info!("node offers\n{}", node_lines(&node));
            handler.engine
        }
        None => {
            let Some(node) = wallet.ledger().node(wallet.address()).await? else {
                bail!(
                    "{} has no node: register one first with `flownet node register`",
                    wallet.address()
                );
            };
            let ids: Vec<String> = node.models.iter().map(|m| m.model_id.clone()).collect();
            load_engine(ctx, Some(ids), &args.engine).await?
        }
    };
    let options = flownet_node::ServeOptions {
        listen: args.listen,
        interval: Duration::from_millis(args.interval_ms),
        once: args.once,
        fetch: None,
    };
    let stop = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!("cannot wait for Ctrl-C: {e}");
            std::future::pending::<()>().await;
        }
    };
    let delivered = flownet_node::run_node(wallet, engine, ctx.blobs()?, &options, stop).await?;
    if args.once {
        ctx.print(&json!({ "delivered": delivered }), || {
            format!("delivered {delivered} tasks")
        });
    }
    Ok(())
}
