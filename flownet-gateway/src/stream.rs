//! Streamed chat: the answer relayed token by token from the node that runs it, as
//! OpenAI's `chat.completion.chunk` server-sent events. The node's
//! `GET /tasks/{id}/stream` is followed while the task runs; once it is fulfilled the
//! delivered output is fetched and its hash checked, and the text relayed must be the
//! start of the answer on the ledger. Whatever the stream did not carry is sent from
//! the checked answer; a stream that said something else ends with an error event.

use std::{sync::Arc, time::Instant};

use axum::{
    http::header,
    response::{IntoResponse, Response},
};
use flownet_core::{Generation, Node, Task, TaskStatus};
use serde_json::{Map, Value, json};
use tokio::sync::mpsc;

use crate::{api::fetch_from_node, gateway::Gateway};

/// Makes the flownet fields of an answer from the final task and its output bytes.
pub(crate) type FieldsFn = Box<dyn Fn(&Task, &[u8]) -> Map<String, Value> + Send + Sync>;

/// What the relay needs to know about the request it answers.
pub(crate) struct ChatStream {
    pub id: String,
    pub model: String,
    pub include_usage: bool,
    /// The paying account, to cancel a task that no node took; `None` where the
    /// gateway holds no key of the requester's (a page's task, signed in the browser).
    pub wallet: Option<Arc<flownet_core::Wallet<dyn flownet_core::Ledger>>>,
    /// The flownet fields of the answer, made once the task is final.
    pub fields: FieldsFn,
    /// Kept for as long as the relay runs (e.g. a count of open streams).
    pub guard: Option<Box<dyn Send + Sync>>,
}

/// Answers with server-sent events relaying `task`'s answer from `node`.
pub(crate) fn relay(g: Arc<Gateway>, task: Task, node: Node, stream: ChatStream) -> Response {
    let (tx, mut rx) = mpsc::channel::<String>(64);
    tokio::spawn(async move {
        run(&g, task, &node, &stream, &tx).await;
        let _ = tx.send("data: [DONE]\n\n".into()).await;
        drop(stream.guard);
    });
    let body = futures::stream::poll_fn(move |cx| {
        rx.poll_recv(cx)
            .map(|m| m.map(|s| Ok::<_, std::convert::Infallible>(axum::body::Bytes::from(s))))
    });
    (
        [
            (header::CONTENT_TYPE, "text/event-stream"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        axum::body::Body::from_stream(body),
    )
        .into_response()
}

fn event(v: &Value) -> String {
    format!("data: {v}\n\n")
}

fn error_event(code: &str, message: impl Into<String>) -> String {
    event(&json!({ "error": { "message": message.into(), "type": "server_error", "code": code } }))
}

async fn run(g: &Gateway, task: Task, node: &Node, s: &ChatStream, tx: &mpsc::Sender<String>) {
    let chunk = |delta: Value, finish: Value| {
        json!({
            "id": s.id,
            "object": "chat.completion.chunk",
            "created": task.submitted_at,
            "model": s.model,
            "choices": [{ "index": 0, "delta": delta, "logprobs": null, "finish_reason": finish }],
        })
    };
    if tx
        .send(event(&chunk(
            json!({ "role": "assistant", "content": "" }),
            Value::Null,
        )))
        .await
        .is_err()
    {
        return;
    }
    let started = Instant::now();
    let deadline = started + g.config.task_timeout;
    // The text sent so far, as the node streamed it.
    let mut sent = String::new();
    if let Some(url) = flownet_node::follow::stream_url(&node.endpoint, task.id) {
        follow(g, &task, &url, deadline, &mut sent, tx, &chunk).await;
    }
    // The answer on the ledger decides: wait for it, fetch it and check its hash.
    let left = deadline.saturating_duration_since(Instant::now());
    let state = g
        .hub
        .wait_final(task.clone(), task.submitted_at, left, g.closing())
        .await;
    let t = state.task;
    let (status, result) = (t.status, t.result.clone());
    let Some(result) = result.filter(|_| status == TaskStatus::Fulfilled) else {
        // A task no node took in time is cancelled, so its escrow comes back now.
        if status == TaskStatus::Open
            && let Some(wallet) = &s.wallet
            && let Err(e) = wallet.cancel(t.id).await
        {
            tracing::warn!("cancelling task {}: {e}", t.id);
        }
        let _ = tx
            .send(error_event(
                if status.is_final() {
                    "task_not_delivered"
                } else {
                    "task_timeout"
                },
                format!(
                    "task {} is {status}: node {} did not deliver{}",
                    t.id,
                    t.node,
                    if status.is_final() {
                        " and the escrow went back to the account"
                    } else if status == TaskStatus::Open && s.wallet.is_none() {
                        "; cancel it to get the escrow back"
                    } else {
                        "; it is refunded if its node misses its deadline"
                    }
                ),
            ))
            .await;
        return;
    };
    let bytes = match fetch_from_node(g, &t, &result).await {
        Ok(bytes) => bytes,
        Err(e) => {
            let _ = tx.send(error_event(&e.code, e.message)).await;
            return;
        }
    };
    let generation = Generation::from_bytes(&bytes).unwrap_or_else(|_| Generation {
        text: String::from_utf8_lossy(&bytes).into_owned(),
        finish_reason: flownet_core::FinishReason::Stop,
        usage: flownet_core::Usage::default(),
    });
    match flownet_node::follow::reconcile(&sent, &generation.text) {
        Some(rest) => {
            if !rest.is_empty()
                && tx
                    .send(event(&chunk(json!({ "content": rest }), Value::Null)))
                    .await
                    .is_err()
            {
                return;
            }
        }
        None => {
            let _ = tx
                .send(error_event(
                    "stream_mismatch",
                    format!(
                        "node {} streamed text that is not its delivered answer (sha256 {}): trust the answer, fetch it from /api/blobs/{}?task={}",
                        t.node, result.sha256, result.sha256, t.id
                    ),
                ))
                .await;
            return;
        }
    }
    let mut last = chunk(json!({}), json!(generation.finish_reason));
    last["flownet"] = Value::Object((s.fields)(&t, &bytes));
    if tx.send(event(&last)).await.is_err() {
        return;
    }
    if s.include_usage {
        let mut usage = chunk(json!({}), Value::Null);
        usage["choices"] = json!([]);
        usage["usage"] = json!({
            "prompt_tokens": generation.usage.prompt_tokens,
            "completion_tokens": generation.usage.completion_tokens,
            "total_tokens": generation.usage.prompt_tokens + generation.usage.completion_tokens,
        });
        let _ = tx.send(event(&usage)).await;
    }
}

/// Follows the node's stream while the task is claimed, relaying its text; returns
/// when the stream ends, fails, or the deadline passes.
async fn follow(
    g: &Gateway,
    task: &Task,
    url: &str,
    deadline: Instant,
    sent: &mut String,
    tx: &mpsc::Sender<String>,
    chunk: &(dyn Fn(Value, Value) -> Value + Sync),
) {
    let mut texts = flownet_node::follow::follow(
        g.ledger.clone(),
        g.stream_http.clone(),
        task.id,
        url.to_owned(),
        deadline,
        g.config.poll_interval,
    );
    while let Some(text) = texts.recv().await {
        if tx
            .send(event(&chunk(json!({ "content": text }), Value::Null)))
            .await
            .is_err()
        {
            return;
        }
        sent.push_str(&text);
    }
}
