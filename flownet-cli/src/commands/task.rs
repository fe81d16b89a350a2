use std::{path::PathBuf, time::Duration};

use anyhow::{Context as _, Result, bail};
use clap::Subcommand;
use flownet_core::{Address, Amount, BlobStore, Ledger, Node, Task, TaskQuery, TaskStatus, Wallet};
use serde_json::json;

use super::pick_node;
use crate::context::Ctx;
use flownet_node::blobs;

#[allow(clippy::large_enum_variant)] // parsed once per process
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
        /// An image file to classify or read the text of (PNG or JPEG): sent as the
        /// task's input (the prompt becomes sha256:<hex>)
        #[arg(long, conflicts_with_all = ["prompt", "input"])]
        image: Option<PathBuf>,
        /// A file the task reads, named on the ledger by its sha256 and size and fetched
        /// by the node from this machine: for a language model a conversation as JSON
        /// ({"messages": [{"role", "content"}, ...]}) or plain text, too long for a prompt
        #[arg(long)]
        input: Option<PathBuf>,
        /// Where this command serves the input to the node while it waits
        /// [default: 127.0.0.1 on a free port]
        #[arg(long, value_name = "ADDR")]
        serve_input: Option<std::net::SocketAddr>,
        /// The URL the node fetches inputs under (<URL>/blobs/<sha256>): a holder already
        /// serving this data dir's blobs, or the public address of --serve-input
        #[arg(long, value_name = "URL")]
        input_url: Option<String>,
        /// For models priced per 1,000 tokens: the most tokens the answer may have
        /// (what is escrowed; unused tokens come back) [default: params.max_tokens, else 256]
        #[arg(long)]
        max_tokens: Option<u64>,
        /// The node to pay [default: the best-scored node within --max-price]
        #[arg(long)]
        node: Option<Address>,
        /// The most you will pay, per task or per 1,000 tokens as the model is priced
        /// [default: the chosen node's listed price]
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
    /// As the node's owner: declines a task addressed to the node (open, or claimed,
    /// before its deadline), refunding its requester at once
    Decline {
        task: u64,
        /// Why, as the requester will see it (1 to 256 bytes)
        #[arg(long)]
        reason: String,
    },
}

pub async fn run(ctx: &Ctx, cmd: TaskCmd) -> Result<()> {
    match cmd {
        TaskCmd::Submit {
            model,
            prompt,
            image,
            input,
            serve_input,
            input_url,
            max_tokens,
            node,
            max_price,
            params,
            wait,
            out,
        } => {
            let wallet = ctx.wallet().await?;
            let ledger = wallet.ledger().clone();
            let input_bytes = match image.as_ref().or(input.as_ref()) {
                Some(path) => Some(
                    std::fs::read(path).with_context(|| format!("reading {}", path.display()))?,
                ),
                None => None,
            };
            let prompt = match (prompt, &input_bytes) {
                (Some(p), _) => p,
                (None, Some(bytes)) => input_label(bytes),
                (None, None) => bail!("give a prompt, --input FILE, or --image for image models"),
            };
            let s = submit(
                &ctx.blobs()?,
                &wallet,
                SubmitReq {
                    model: model.clone(),
                    prompt,
                    input_bytes,
                    serve_input,
                    input_url,
                    max_tokens,
                    node,
                    max_price,
                    params,
                    models_dir: Some(ctx.models_dir.clone()),
                },
            )
            .await?;
            let id = s.id;
            if !wait && s.holder.is_none() {
                ctx.print(&json!({ "task": id, "node": s.node.owner, "model": model, "price": s.escrow.to_string(), "max_units": s.max_units, "input": s.input }), || s.paid_line.clone());
                return Ok(());
            }
            eprintln!("{}", s.paid_line);
            if s.holder.is_some() && !wait {
                eprintln!(
                    "serving the input to the node until the task settles (Ctrl-C stops; pass --input-url to use another holder)"
                );
            }
            let holder = s.holder;
            // A language model's answer is printed as the node writes it.
            let streamed = if wait && s.max_units > 0 && !ctx.json {
                Some(print_stream(ctx, ledger.clone(), &s.node, id, Duration::from_secs(900)).await)
            } else {
                None
            };
            let waited = wait_and_save(
                ctx,
                ledger.as_ref(),
                id,
                Duration::from_secs(900),
                out,
                streamed.as_deref(),
            )
            .await;
            if let Some((stop, server)) = holder {
                let _ = stop.send(true);
                let _ = server.await;
            }
            waited?;
        }
        TaskCmd::Wait { task, timeout, out } => {
            let ledger = ctx.ledger().await?;
            wait_and_save(
                ctx,
                ledger.as_ref(),
                task,
                Duration::from_secs(timeout),
                out,
                None,
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
        TaskCmd::Decline { task, reason } => {
            // The ledger's rule, checked before signing: the reason goes as given.
            flownet_core::rules::check_decline_reason(&reason)?;
            ctx.wallet()
                .await?
                .send(flownet_core::Action::Decline {
                    task,
                    reason: reason.clone(),
                })
                .await?;
            ctx.print(
                &json!({ "task": task, "declined": true, "reason": reason }),
                || format!("declined task {task}: its requester is refunded"),
            );
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

/// Polls the ledger until the task is final, showing its progress and the time its
/// current deadline has left where a person watches. Once that deadline passes, the
/// waiter expires the task itself when it has a wallet (anyone may), so the escrow
/// comes back without a separate `task expire`.
pub async fn wait_for(
    ledger: &dyn Ledger,
    wallet: Option<&flownet_core::Wallet<dyn Ledger>>,
    id: u64,
    timeout: Duration,
) -> Result<Task> {
    use flownet_core::waiting::{Look, look};
    let bar = indicatif::ProgressBar::new_spinner();
    bar.enable_steady_tick(Duration::from_millis(120));
    let started = std::time::Instant::now();
    loop {
        let (task, left) = match look(ledger, wallet, id).await? {
            Look::Final(task) => {
                bar.finish_and_clear();
                return Ok(*task);
            }
            Look::Pending { task, secs_left } => (task, secs_left),
        };
        bar.set_message(format!(
            "task {id}: {} ({:.1} s; {left} s left before its deadline)",
            task.status,
            started.elapsed().as_secs_f32()
        ));
        if started.elapsed() > timeout {
            bar.finish_and_clear();
            bail!(
                "task {id} is still {} after {} s; its deadline is {left} s away, and once it \
                 passes `flownet task expire {id}` refunds it (waiting again does it too)",
                task.status,
                timeout.as_secs()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits for task `id`, fetches its output (hash checked), saves it and prints what
/// came back. `streamed` is the text already printed from the node's stream: only
/// what the delivered answer adds to it is printed, or the answer whole, with a
/// warning, when the stream said something else.
pub(crate) async fn wait_and_save(
    ctx: &Ctx,
    ledger: &dyn Ledger,
    id: u64,
    timeout: Duration,
    out: Option<PathBuf>,
    streamed: Option<&str>,
) -> Result<Task> {
    let deadline = std::time::Instant::now() + timeout;
    let wallet = ctx.wallet().await.ok();
    let task = wait_for(ledger, wallet.as_ref(), id, timeout).await?;
    let Some(output) = task.result.clone() else {
        bail!("{}", flownet_core::waiting::ended_without_output(&task));
    };
    let local = ctx.blobs().ok();
    let fetched = output.clone();
    // The fetch ends with the caller's --timeout too (at least a second to try).
    let left = deadline
        .saturating_duration_since(std::time::Instant::now())
        .clamp(Duration::from_secs(1), flownet_node::fetch::FETCH_TIMEOUT);
    let policy = ctx.fetch_policy();
    let bytes = tokio::task::spawn_blocking(move || {
        blobs::fetch_output_within(&fetched, local.as_ref(), policy, left)
    })
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
    // A language model's answer is shown as its text, with what the tokens cost.
    let generation = (output.mime == flownet_core::Generation::MIME)
        .then(|| flownet_core::Generation::from_bytes(&bytes).ok())
        .flatten();
    // Embeddings are summed up (the vectors are in the saved file), with the texts'
    // cosine similarities when there are a few.
    let embeddings = (output.mime == flownet_core::embedding::MIME && generation.is_none())
        .then(|| flownet_core::Embeddings::from_bytes(&bytes).ok())
        .flatten();
    // What an OCR model read is shown as its text; the boxes are in the saved file.
    let reading =
        (output.mime == flownet_core::ocr::MIME && generation.is_none() && embeddings.is_none())
            .then(|| flownet_core::ocr::Reading::from_bytes(&bytes).ok())
            .flatten();
    let text = (output.mime == "application/json"
        && generation.is_none()
        && embeddings.is_none()
        && reading.is_none())
    .then(|| String::from_utf8_lossy(&bytes).into_owned());
    // The tokens paid for, recounted with the model's tokenizer when it is here.
    let check = match &generation {
        Some(g) if task.units.is_some() => {
            let (t, g, dir) = (task.clone(), g.clone(), ctx.models_dir.clone());
            Some(
                tokio::task::spawn_blocking(move || flownet_node::check_units(&t, &g, &dir))
                    .await?,
            )
        }
        _ => match (&embeddings, flownet_core::embedding::inputs(&task.prompt)) {
            // An embedding task's texts are its prompt unless it named an input blob.
            (Some(e), Ok(texts)) if task.units.is_some() && task.input.is_none() => {
                let (t, e, dir) = (task.clone(), e.clone(), ctx.models_dir.clone());
                Some(
                    tokio::task::spawn_blocking(move || {
                        flownet_node::check_embedding_units(&t, &texts, &e, &dir)
                    })
                    .await?,
                )
            }
            _ => None,
        },
    };
    let mut j = json!({ "task": id, "status": task.status, "path": path, "sha256": output.sha256, "mime": output.mime, "size": output.size, "cid": output.cid(), "nft": task.nft });
    if let Some(g) = &generation {
        j["text"] = json!(g.text);
        j["finish_reason"] = json!(g.finish_reason);
        j["usage"] = json!(g.usage);
    }
    if let Some(e) = &embeddings {
        j["embeddings"] = json!({
            "count": e.embeddings.len(), "dimensions": e.dimensions, "tokens": e.tokens,
            "truncated": e.truncated, "usage": e.usage,
        });
    }
    if let Some(r) = &reading {
        j["text"] = json!(r.text);
        j["lines"] = json!(r.lines);
    }
    if let Some(c) = &check {
        j["units_check"] = c.to_json();
    }
    if let Some(units) = task.units {
        j["units"] = json!(units);
        j["cost"] = json!(task.price.checked_sub(task.refunded)?.to_string());
        j["refunded"] = json!(task.refunded.to_string());
    }
    ctx.print(&j, || {
        let mut s = format!(
            "task {id} fulfilled: {} ({} bytes, sha256 {} verified), NFT #{}",
            path.display(),
            output.size,
            output.sha256,
            task.nft.unwrap_or_default()
        );
        if let Some(units) = task.units {
            s.push_str(&format!(
                "\n{units} tokens cost {} FLOWNET; {} FLOWNET came back",
                task.price.checked_sub(task.refunded).unwrap_or_default(),
                task.refunded
            ));
        }
        match (&generation, streamed) {
            (Some(g), Some(heard)) => {
                if let Some(rest) = flownet_node::follow::reconcile(heard, &g.text) {
                    print!("{rest}");
                    println!();
                } else {
                    println!();
                    s.push_str("\nthe node streamed text that is not its delivered answer; the delivered (hash-checked) answer:\n\n");
                    s.push_str(&g.text);
                }
            }
            (Some(g), None) => {
                s.push_str("\n\n");
                s.push_str(&g.text);
            }
            _ => {}
        }
        if let Some(warning) = check.as_ref().and_then(|c| c.warning(task.node)) {
            s.push('\n');
            s.push_str(&warning);
        }
        if let Some(t) = text {
            s.push('\n');
            s.push_str(&t);
        }
        if let Some(e) = &embeddings {
            s.push('\n');
            s.push_str(&describe_embeddings(e));
        }
        if let Some(r) = &reading {
            s.push_str(&format!(
                "\n{} line{} of text read:\n\n{}",
                r.lines.len(),
                if r.lines.len() == 1 { "" } else { "s" },
                r.text
            ));
        }
        s
    });
    Ok(task)
}

/// An embedding output in a few lines: how many vectors, their tokens, and for up to
/// 8 texts the matrix of their cosine similarities.
fn describe_embeddings(e: &flownet_core::Embeddings) -> String {
    let n = e.embeddings.len();
    let cut = e.truncated.iter().filter(|t| **t).count();
    let mut s = format!(
        "{n} embedding{} of {} dimensions, {} tokens ({})",
        if n == 1 { "" } else { "s" },
        e.dimensions,
        e.usage.prompt_tokens,
        e.tokens
            .iter()
            .map(u64::to_string)
            .collect::<Vec<_>>()
            .join(" + ")
    );
    if cut > 0 {
        s.push_str(&format!("; {cut} text(s) cut at the model's length"));
    }
    if (2..=8).contains(&n) {
        s.push_str("\ncosine similarities:\n    ");
        for j in 0..n {
            s.push_str(&format!("{:>7}", format!("#{j}")));
        }
        for i in 0..n {
            s.push_str(&format!("\n{:>4}", format!("#{i}")));
            for j in 0..n {
                let c = flownet_core::embedding::cosine(&e.embeddings[i], &e.embeddings[j]);
                s.push_str(&format!("{c:>7.3}"));
            }
        }
    }
    s
}

/// Follows the node's stream of task `id` and prints its text as it comes; returns
/// what was printed.
pub(crate) async fn print_stream(
    ctx: &Ctx,
    ledger: std::sync::Arc<dyn Ledger>,
    node: &Node,
    id: u64,
    timeout: Duration,
) -> String {
    use std::io::Write as _;
    let mut heard = String::new();
    let Some(url) = flownet_node::follow::stream_url(&node.endpoint, id) else {
        return heard;
    };
    let mut texts = flownet_node::follow::follow(
        ledger,
        flownet_node::follow::stream_agent(ctx.fetch_policy(), timeout),
        id,
        url,
        std::time::Instant::now() + timeout,
        Duration::from_millis(100),
    );
    let mut out = std::io::stdout();
    while let Some(text) = texts.recv().await {
        let _ = write!(out, "{text}");
        let _ = out.flush();
        heard.push_str(&text);
    }
    heard
}

/// A submission, parsed.
#[derive(Debug, Clone, Default)]
pub struct SubmitReq {
    pub model: String,
    pub prompt: String,
    pub input_bytes: Option<Vec<u8>>,
    pub serve_input: Option<std::net::SocketAddr>,
    pub input_url: Option<String>,
    pub max_tokens: Option<u64>,
    pub node: Option<Address>,
    pub max_price: Option<Amount>,
    pub params: String,
    /// Where the model's manifest may be, to check the request against it before paying.
    pub models_dir: Option<std::path::PathBuf>,
}

/// A blob server holding a task's input until it is stopped.
pub type Holder = (
    tokio::sync::watch::Sender<bool>,
    tokio::task::JoinHandle<()>,
);

/// A paid task.
#[allow(missing_debug_implementations)]
pub struct Submitted {
    pub id: u64,
    pub node: Node,
    pub escrow: Amount,
    pub max_units: u64,
    pub input: Option<flownet_core::InputRef>,
    /// The server of the input, when this process holds it.
    pub holder: Option<Holder>,
    /// "task N: paid …", for people.
    pub paid_line: String,
}

/// The prompt that names an input blob: `sha256:<hex>` of its bytes.
pub fn input_label(bytes: &[u8]) -> String {
    format!("sha256:{}", flownet_core::crypto::sha256(bytes))
}

/// A conversation's JSON as a task's prompt while it fits the ledger's prompt limit,
/// else as its input blob (the prompt then names it by hash): the prompt and the input
/// bytes to give [`SubmitReq`].
pub fn conversation_prompt(conversation: String) -> (String, Option<Vec<u8>>) {
    if flownet_core::rules::check_prompt_size(&conversation).is_ok() {
        (conversation, None)
    } else {
        (
            input_label(conversation.as_bytes()),
            Some(conversation.into_bytes()),
        )
    }
}

/// Keeps `holder` serving task `id`'s input until the task is final or can no longer
/// start (its claim deadline passed unclaimed, or its fulfil deadline passed), reading
/// the ledger every `poll`; then stops it. For callers that return before the task
/// settles (Python's `Client.submit`).
pub async fn hold_until_settled(
    ledger: std::sync::Arc<dyn Ledger>,
    id: u64,
    holder: Holder,
    poll: Duration,
) {
    loop {
        let over = match ledger.task(id).await {
            Ok(Some(t)) => {
                // Wall-clock seconds, with a minute's slack for the ledger's clock.
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs())
                    .saturating_sub(60);
                t.status.is_final()
                    || (t.status == flownet_core::TaskStatus::Open && now > t.claim_deadline)
                    || t.fulfil_deadline.is_some_and(|d| now > d)
            }
            Ok(None) => true,
            Err(e) => {
                tracing::debug!("holding task {id}'s input: {e}");
                false
            }
        };
        if over {
            break;
        }
        tokio::time::sleep(poll).await;
    }
    let (stop, server) = holder;
    let _ = stop.send(true);
    let _ = server.await;
}

/// Pays for one task: picks the node, checks everything the ledger would refuse,
/// stores the input and serves it (or names --input-url), and submits.
pub async fn submit(
    blobs: &flownet_node::FsBlobStore,
    wallet: &Wallet<dyn Ledger>,
    req: SubmitReq,
) -> Result<Submitted> {
    let SubmitReq {
        model,
        prompt,
        input_bytes,
        serve_input,
        input_url,
        max_tokens,
        node,
        max_price,
        params,
        models_dir,
    } = req;
    // What the model's manifest says it takes, checked before anything is paid (and
    // for an embedding model, the most tokens its texts can be).
    let bound = match &models_dir {
        Some(dir) => flownet_node::engine::precheck(dir, &model, &prompt, input_bytes.as_deref())?,
        None => None,
    };
    let max_tokens = max_tokens.or(bound);
    let ledger = wallet.ledger().clone();
    let params_map = match serde_json::from_str(&params) {
        Ok(serde_json::Value::Object(map)) => map,
        _ => bail!("--params must be a JSON object, e.g. '{{\"seed\": 7}}'"),
    };
    let (node, offer) = match node {
        Some(addr) => {
            let n = ledger
                .node(addr)
                .await?
                .ok_or_else(|| flownet_core::Error::NotFound(format!("node {addr}")))?;
            let offer =
                n.offer(&model)
                    .cloned()
                    .ok_or_else(|| flownet_core::Error::ModelNotOffered {
                        node: addr,
                        model: model.clone(),
                    })?;
            (n, offer)
        }
        None => pick_node(ledger.as_ref(), &model, max_price).await?,
    };
    // Everything the ledger would refuse is refused here, before paying.
    let (max_units, escrow, max_price) =
        flownet_core::rules::quote(&offer, max_tokens, &params_map, max_price)?;
    flownet_core::rules::check_prompt_size(&prompt)?;
    flownet_core::rules::check_params_size(&params)?;
    // The input is kept in this data dir and served to the node from here (or
    // from --input-url) until the task settles.
    let (input_ref, holder) = match input_bytes {
        None => (None, None),
        Some(bytes) => {
            let blob_store = blobs.clone();
            let sha256 = blob_store.put(&bytes)?;
            let (base, holder) = match (&input_url, serve_input) {
                (Some(url), None) => (url.trim_end_matches('/').to_owned(), None),
                (url, listen) => {
                    let listen = listen.unwrap_or_else(|| ([127, 0, 0, 1], 0).into());
                    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
                    let (addr, server) = flownet_node::spawn_blob_server(
                        listen,
                        blob_store,
                        json!({ "holder": wallet.address() }),
                        stop_rx,
                    )
                    .await?;
                    let base = url.as_ref().map_or_else(
                        || format!("http://{addr}"),
                        |u| u.trim_end_matches('/').to_owned(),
                    );
                    (base, Some((stop_tx, server)))
                }
            };
            let input = flownet_core::InputRef {
                sha256,
                size: bytes.len() as u64,
                uri: format!("{base}/blobs/{sha256}"),
            };
            flownet_core::rules::check_input(&input)?;
            (Some(input), holder)
        }
    };
    let id = wallet
        .submit_action(flownet_core::Action::Submit {
            node: node.owner,
            model_id: model.clone(),
            prompt,
            params,
            max_price,
            input: input_ref.clone(),
            max_units,
        })
        .await?;
    let what = if max_units == 0 {
        format!("{escrow} FLOWNET")
    } else {
        format!(
            "{escrow} FLOWNET (up to {max_units} tokens at {} per 1,000; unused tokens come back)",
            offer.price
        )
    };
    let paid_line = format!(
        "task {id}: paid {what} into escrow for {model} on node {} ({})",
        node.name, node.owner
    );
    Ok(Submitted {
        id,
        node,
        escrow,
        max_units,
        input: input_ref,
        holder,
        paid_line,
    })
}
