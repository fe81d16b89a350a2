//! `flownet chat`: a conversation with a language model in the terminal. Each answer
//! is one task paid per token: the whole conversation so far goes with it (in the
//! prompt while it fits, else as an input blob served from this data dir), the
//! answer is printed as the node writes it and checked against the delivered output.

use std::{io::BufRead as _, time::Duration};

use anyhow::{Result, bail};
use clap::Args;
use flownet_core::{Address, Amount, Generation};
use serde_json::json;

use super::task::{SubmitReq, conversation_prompt, print_stream, submit, wait_for};
use crate::context::Ctx;
use flownet_node::blobs;

#[derive(Debug, Args)]
pub struct ChatArgs {
    /// The text-generation model (see `flownet models`)
    #[arg(long)]
    model: String,
    /// The node to pay [default: the best-scored node within --max-price]
    #[arg(long)]
    node: Option<Address>,
    /// The most you will pay per 1,000 tokens [default: the chosen node's price]
    #[arg(long)]
    max_price: Option<Amount>,
    /// The most tokens one answer may have (escrowed; unused tokens come back)
    #[arg(long, default_value_t = 256)]
    max_tokens: u64,
    /// A system message that opens the conversation
    #[arg(long)]
    system: Option<String>,
    /// Sampling parameters as a JSON object, e.g. '{"temperature": 0.7}'
    #[arg(long, default_value = "{}")]
    params: String,
    /// Where conversations too long for a prompt are served to the node from
    /// [default: 127.0.0.1 on a free port]
    #[arg(long, value_name = "ADDR")]
    serve_input: Option<std::net::SocketAddr>,
    /// The URL the node fetches long conversations under (<URL>/blobs/<sha256>)
    #[arg(long, value_name = "URL")]
    input_url: Option<String>,
    /// How long to wait for each answer, in seconds
    #[arg(long, default_value_t = 600)]
    timeout: u64,
}

pub async fn run(ctx: &Ctx, a: ChatArgs) -> Result<()> {
    let wallet = ctx.wallet().await?;
    let ledger = wallet.ledger().clone();
    let mut messages: Vec<serde_json::Value> = Vec::new();
    if let Some(system) = a.system.as_deref().filter(|s| !s.trim().is_empty()) {
        messages.push(json!({ "role": "system", "content": system }));
    }
    let interactive = !ctx.json && std::io::IsTerminal::is_terminal(&std::io::stdin());
    if interactive {
        eprintln!(
            "chatting with {} (each answer is paid per token, up to {}; an empty line or Ctrl-D ends)",
            a.model, a.max_tokens
        );
    }
    let timeout = Duration::from_secs(a.timeout);
    loop {
        if interactive {
            eprint!("> ");
        }
        let line = tokio::task::spawn_blocking(|| {
            let mut line = String::new();
            std::io::stdin()
                .lock()
                .read_line(&mut line)
                .map(|n| (n, line))
        })
        .await??;
        let (n, line) = line;
        let question = line.trim_end_matches(['\n', '\r']);
        if n == 0 || (interactive && question.trim().is_empty()) {
            break;
        }
        if question.trim().is_empty() {
            continue;
        }
        messages.push(json!({ "role": "user", "content": question }));
        let conversation = json!({ "messages": messages }).to_string();
        let (prompt, input_bytes) = conversation_prompt(conversation);
        let s = submit(
            &ctx.blobs()?,
            &wallet,
            SubmitReq {
                model: a.model.clone(),
                prompt,
                input_bytes,
                serve_input: a.serve_input,
                input_url: a.input_url.clone(),
                max_tokens: Some(a.max_tokens),
                node: a.node,
                max_price: a.max_price,
                params: a.params.clone(),
                models_dir: Some(ctx.models_dir.clone()),
            },
        )
        .await?;
        if s.max_units == 0 {
            bail!(
                "model {} is not priced per token: `flownet chat` is for text-generation models",
                a.model
            );
        }
        let heard = if ctx.json {
            String::new()
        } else {
            print_stream(ctx, ledger.clone(), &s.node, s.id, timeout).await
        };
        let waiter = ctx.wallet().await.ok();
        let task = wait_for(ledger.as_ref(), waiter.as_ref(), s.id, timeout).await;
        if let Some((stop, server)) = s.holder {
            let _ = stop.send(true);
            let _ = server.await;
        }
        let task = task?;
        let Some(output) = task.result.clone() else {
            bail!("{}", flownet_core::waiting::ended_without_output(&task));
        };
        let local = ctx.blobs().ok();
        let fetched = output.clone();
        let policy = ctx.fetch_policy();
        let bytes = tokio::task::spawn_blocking(move || {
            blobs::fetch_output(&fetched, local.as_ref(), policy)
        })
        .await??;
        let answer = Generation::from_bytes(&bytes)?;
        let cost = task.price.checked_sub(task.refunded).unwrap_or_default();
        let units = task.units.unwrap_or_default();
        let check = {
            let (t, g, dir) = (task.clone(), answer.clone(), ctx.models_dir.clone());
            tokio::task::spawn_blocking(move || flownet_node::check_units(&t, &g, &dir)).await?
        };
        if ctx.json {
            ctx.print(
                &json!({
                    "task": task.id, "text": answer.text, "finish_reason": answer.finish_reason,
                    "usage": answer.usage, "units": units, "escrowed": task.price.to_string(),
                    "cost": cost.to_string(), "refunded": task.refunded.to_string(),
                    "sha256": output.sha256, "nft": task.nft, "units_check": check.to_json(),
                }),
                String::new,
            );
        } else {
            match flownet_node::follow::reconcile(&heard, &answer.text) {
                Some(rest) => println!("{rest}"),
                None => println!(
                    "\n[the node streamed text that is not its delivered answer; the delivered, hash-checked answer:]\n{}",
                    answer.text
                ),
            }
            eprintln!(
                "[{units} tokens: paid {cost} of {} FLOWNET escrowed, {} back · task {} · NFT #{} · sha256 {}]",
                task.price,
                task.refunded,
                task.id,
                task.nft.unwrap_or_default(),
                &output.sha256.to_hex()[..12]
            );
        }
        if let Some(warning) = check.warning(task.node) {
            eprintln!("{warning}");
        }
        messages.push(json!({ "role": "assistant", "content": answer.text }));
    }
    Ok(())
}
