use std::{path::PathBuf, time::Duration};

use anyhow::{Context as _, Result, bail};
use clap::Subcommand;
use flownet_core::{Address, Amount, BlobStore, Ledger, Task, TaskQuery, TaskStatus};
use serde_json::json;

use super::pick_node;
use crate::context::Ctx;
use flownet_node::blobs;

#[derive(Debug, Subcommand)]
pub enum TaskCmd {
    /// Pays for one inference: picks the best node offering the model (or --node) and
    /// escrows its price
    Submit {
        /// The model id (see `flownet node list` or `flownet models`)
        #[arg(long)]
        model: String,
        /// The text prompt (for image models, --image instead)
        prompt: Option<String>,
        /// An image file to send (stored by its sha256; the prompt becomes sha256:<hex>)
        #[arg(long, conflicts_with = "prompt")]
        image: Option<PathBuf>,
        /// The node to pay [default: the best-scored node within --max-price]
        #[arg(long)]
        node: Option<Address>,
        /// The most you will pay [default: the chosen node's listed price]
        #[arg(long)]
        max_price: Option<Amount>,
        /// Model parameters as a JSON object, e.g. '{"difficulty": 80}'
        #[arg(long, default_value = "{}")]
        params: String,
        /// Wait for the output and save it (to --out or the data dir)
        #[arg(long)]
        wait: bool,
        #[arg(long, short, requires = "wait")]
        out: Option<PathBuf>,
    },
    /// Waits for a task's output, checks its sha256 and saves it
    Wait {
        task: u64,
        /// Give up after this many seconds
        #[arg(long, default_value_t = 900)]
        timeout: u64,
        /// Where to save the output [default: <data dir>/outputs/task-<id>.<ext>]
        #[arg(long, short)]
        out: Option<PathBuf>,
    },
    /// A task's full record
    Show { task: u64 },
    /// Lists tasks [default: this key's requests]
    List {
        /// Tasks addressed to this node instead
        #[arg(long)]
        node: Option<Address>,
        #[arg(long)]
        status: Option<TaskStatus>,
        /// Every task on the ledger
        #[arg(long, conflicts_with = "node")]
        all: bool,
    },
    /// Takes back an unclaimed task's escrow
    Cancel { task: u64 },
    /// Refunds a task whose claim or fulfil deadline has passed (anyone may)
    Expire { task: u64 },
}

pub async fn run(ctx: &Ctx, cmd: TaskCmd) -> Result<()> {
    match cmd {
        TaskCmd::Submit {
            model,
            prompt,
            image,
            node,
            max_price,
            params,
            wait,
            out,
        } => {
            let wallet = ctx.wallet().await?;
            let ledger = wallet.ledger().clone();
            let prompt = match (prompt, image) {
                (_, Some(path)) => {
                    let bytes = std::fs::read(&path)
                        .with_context(|| format!("reading {}", path.display()))?;
                    format!("sha256:{}", ctx.blobs()?.put(&bytes)?)
                }
                (Some(p), None) => p,
                (None, None) => bail!("give a prompt, or --image for image models"),
            };
            let (node, offer) = match node {
                Some(addr) => {
                    let n = ledger
                        .node(addr)
                        .await?
                        .ok_or_else(|| flownet_core::Error::NotFound(format!("node {addr}")))?;
                    let offer = n.offer(&model).cloned().ok_or_else(|| {
                        flownet_core::Error::ModelNotOffered {
                            node: addr,
                            model: model.clone(),
                        }
                    })?;
                    (n, offer)
                }
                None => pick_node(ledger.as_ref(), &model, max_price).await?,
            };
            // Without --max-price, the price seen here is the cap: a node that raises its
            // price before the envelope lands cannot charge more.
            let max_price = max_price.unwrap_or(offer.price);
            let id = wallet
                .submit(node.owner, &model, &prompt, &params, max_price)
                .await?;
            if !wait {
                ctx.print(&json!({ "task": id, "node": node.owner, "model": model, "price": offer.price.to_string() }), || {
                    format!("task {id}: paid {} FLOWNET into escrow for {model} on node {} ({})", offer.price, node.name, node.owner)
                });
                return Ok(());
            }
            eprintln!(
                "task {id}: paid {} FLOWNET into escrow for {model} on node {} ({})",
                offer.price, node.name, node.owner
            );
            wait_and_save(ctx, ledger.as_ref(), id, Duration::from_secs(900), out).await?;
        }
        TaskCmd::Wait { task, timeout, out } => {
            let ledger = ctx.ledger().await?;
            wait_and_save(
                ctx,
                ledger.as_ref(),
                task,
                Duration::from_secs(timeout),
                out,
            )
            .await?;
        }
        TaskCmd::Show { task } => {
            let ledger = ctx.ledger().await?;
            let t = ledger
                .task(task)
                .await?
                .ok_or_else(|| flownet_core::Error::NotFound(format!("task {task}")))?;
            let ratings = ledger.ratings(task).await?;
            let mut j = serde_json::to_value(&t)?;
            j["ratings"] = serde_json::to_value(&ratings)?;
            ctx.print(&j, || {
                let mut s = task_line(&t);
                s.push_str(&format!(
                    "\n    prompt {:?}\n    params {}\n    weights sha256 {}",
                    t.prompt, t.params, t.weights_sha256
                ));
                if let Some(r) = &t.result {
                    s.push_str(&format!(
                        "\n    output sha256 {} ({} bytes, {})\n    uri {}",
                        r.sha256, r.size, r.mime, r.uri
                    ));
                }
                for r in &ratings {
                    s.push_str(&format!(
                        "\n    rated {}★ by {}{} (bounty {})",
                        r.stars,
                        r.rater,
                        if r.by_requester { " (requester)" } else { "" },
                        r.bounty
                    ));
                }
                s
            });
        }
        TaskCmd::List { node, status, all } => {
            let ledger = ctx.ledger().await?;
            let query = match (node, all) {
                (Some(n), _) => TaskQuery {
                    node: Some(n),
                    status,
                    ..TaskQuery::default()
                },
                (None, true) => TaskQuery {
                    status,
                    ..TaskQuery::default()
                },
                (None, false) => TaskQuery {
                    requester: Some(ctx.my_address().await?),
                    status,
                    ..TaskQuery::default()
                },
            };
            let tasks = ledger.tasks(query).await?;
            ctx.print(&serde_json::to_value(&tasks)?, || {
                if tasks.is_empty() {
                    "no tasks".into()
                } else {
                    tasks.iter().map(task_line).collect::<Vec<_>>().join("\n")
                }
            });
        }
        TaskCmd::Cancel { task } => {
            let r = ctx.wallet().await?.cancel(task).await?;
            let refund = r.outcome.credited.unwrap_or_default();
            ctx.print(
                &json!({ "task": task, "refunded": refund.to_string() }),
                || format!("cancelled task {task}, refunded {refund} FLOWNET"),
            );
        }
        TaskCmd::Expire { task } => {
            ctx.wallet().await?.expire(task).await?;
            ctx.print(&json!({ "task": task, "expired": true }), || {
                format!("expired task {task}: its requester is refunded")
            });
        }
    }
    Ok(())
}

fn task_line(t: &Task) -> String {
    format!(
        "task {} [{}] {} on node {} for {} FLOWNET",
        t.id, t.status, t.model_id, t.node, t.price
    )
}

/// Polls the ledger until the task is final, showing its progress where a person
/// watches, then fetches the output.
pub async fn wait_for(ledger: &dyn Ledger, id: u64, timeout: Duration) -> Result<Task> {
    let bar = indicatif::ProgressBar::new_spinner();
    bar.enable_steady_tick(Duration::from_millis(120));
    let started = std::time::Instant::now();
    let mut last = None;
    loop {
        let task = ledger
            .task(id)
            .await?
            .ok_or_else(|| flownet_core::Error::NotFound(format!("task {id}")))?;
        if last != Some(task.status) {
            bar.set_message(format!(
                "task {id}: {} ({:.1} s)",
                task.status,
                started.elapsed().as_secs_f32()
            ));
            last = Some(task.status);
        }
        if task.status.is_final() {
            bar.finish_and_clear();
            return Ok(task);
        }
        if started.elapsed() > timeout {
            bar.finish_and_clear();
            bail!(
                "task {id} is still {} after {} s (it can be expired once its deadline passes)",
                task.status,
                timeout.as_secs()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn wait_and_save(
    ctx: &Ctx,
    ledger: &dyn Ledger,
    id: u64,
    timeout: Duration,
    out: Option<PathBuf>,
) -> Result<()> {
    let task = wait_for(ledger, id, timeout).await?;
    let Some(output) = task.result.clone() else {
        bail!(
            "task {id} ended {} without an output (its escrow went back to the requester)",
            task.status
        );
    };
    let local = ctx.blobs().ok();
    let fetched = output.clone();
    let bytes = tokio::task::spawn_blocking(move || blobs::fetch_output(&fetched, local.as_ref()))
        .await??;
    let path = out.unwrap_or_else(|| {
        ctx.data_dir.join("outputs").join(format!(
            "task-{id}.{}",
            flownet_core::mime::extension(&output.mime)
        ))
    });
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&path, &bytes).with_context(|| format!("writing {}", path.display()))?;
    let text =
        (output.mime == "application/json").then(|| String::from_utf8_lossy(&bytes).into_owned());
    ctx.print(
        &json!({ "task": id, "status": task.status, "path": path, "sha256": output.sha256, "mime": output.mime, "size": output.size, "nft": task.nft }),
        || {
            let mut s = format!("task {id} fulfilled: {} ({} bytes, sha256 {} verified), NFT #{}", path.display(), output.size, output.sha256, task.nft.unwrap_or_default());
            if let Some(t) = text {
                s.push('\n');
                s.push_str(&t);
            }
            s
        },
    );
    Ok(())
}
