//! Following a node's answer as it is written: the client side of the node's
//! `GET /tasks/{id}/stream`, shared by the gateway's relay, the CLI and Python.
//!
//! [`follow`] waits for the task to be claimed, reads the node's server-sent events
//! and passes on each piece of text. What it passes on is only what the node said
//! while it ran: the answer on the ledger decides, so a caller checks the delivered
//! output (its hash) once the task is final and treats the streamed text as a preview
//! of it (see [`reconcile`]).

use std::{
    io::BufRead,
    sync::Arc,
    time::{Duration, Instant},
};

use flownet_core::{GenerationFold, Ledger, StreamChunk, TaskId, TaskStatus};
use tokio::sync::mpsc;

use crate::fetch::FetchPolicy;

/// One line of a node's stream longer than this is not the node's stream.
const MAX_LINE: usize = 1024 * 1024;
/// A whole stream is never longer than this.
const MAX_STREAM: u64 = 64 * 1024 * 1024;

/// The URL of the node's stream of `task`, built from the parts of its registered
/// endpoint; `None` when the endpoint is not a valid plain `http://` endpoint.
pub fn stream_url(endpoint: &str, task: TaskId) -> Option<String> {
    flownet_core::Endpoint::parse(endpoint)
        .ok()
        .filter(|e| e.scheme() == flownet_core::endpoint::Scheme::Http)
        .map(|e| e.stream_url(task))
}

/// An agent for following streams under `policy` (see [`FetchPolicy::agent`]: no
/// redirects, addresses checked after DNS), ending any stream after `total` (as long
/// as a task may run).
pub fn stream_agent(policy: FetchPolicy, total: Duration) -> ureq::Agent {
    policy.agent(total)
}

/// What the stream reader passes back.
enum Heard {
    Chunk(StreamChunk),
    /// The node's run failed and began again: what was heard is void.
    Restart,
    /// The stream is not (yet) there.
    NotFound,
    /// The stream broke.
    Gone,
}

/// Follows `task`'s stream at `url` until the stream ends, fails, the task is final,
/// or `deadline` passes, sending each piece of text on the returned channel. Dropping
/// the receiver stops the follower. The ledger is polled every `poll` (at most 200 ms)
/// until the node has claimed the task.
pub fn follow(
    ledger: Arc<dyn Ledger>,
    agent: ureq::Agent,
    task: TaskId,
    url: String,
    deadline: Instant,
    poll: Duration,
) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel(64);
    tokio::spawn(async move {
        run(&*ledger, &agent, task, &url, deadline, poll, &tx).await;
    });
    rx
}

async fn run(
    ledger: &dyn Ledger,
    agent: &ureq::Agent,
    task: TaskId,
    url: &str,
    deadline: Instant,
    poll: Duration,
    tx: &mpsc::Sender<String>,
) {
    let mut fold = GenerationFold::new();
    let mut sent_any = false;
    // Looks after a claim that found no stream yet: the node starts it right after
    // its claim lands, so the first looks come quickly.
    let mut missed = 0u32;
    // A stream appears once the node has claimed the task and started the model.
    loop {
        if Instant::now() > deadline || tx.is_closed() {
            return;
        }
        // Subscribed before the read: a claim applied in this process wakes us.
        let changed = ledger.changed();
        let status = match ledger.task(task).await {
            Ok(Some(t)) => t.status,
            _ => return,
        };
        if status.is_final() {
            return;
        }
        if status == TaskStatus::Claimed {
            let (htx, mut hrx) = mpsc::channel::<Heard>(64);
            let (agent, url) = (agent.clone(), url.to_owned());
            tokio::task::spawn_blocking(move || read_stream(&agent, &url, &htx));
            let mut found = false;
            while let Some(heard) = hrx.recv().await {
                match heard {
                    Heard::NotFound => break,
                    Heard::Gone => return,
                    Heard::Restart => {
                        if sent_any {
                            // Text already passed on cannot be taken back: the
                            // checked answer decides at the end.
                            return;
                        }
                        fold = GenerationFold::new();
                    }
                    Heard::Chunk(c) => {
                        found = true;
                        if fold.push(&c).is_err() {
                            return;
                        }
                        if let StreamChunk::Text { text } = c {
                            sent_any = true;
                            if tx.send(text).await.is_err() {
                                return;
                            }
                        }
                        if fold.is_done() {
                            return;
                        }
                    }
                }
            }
            if found {
                return;
            }
            missed += 1;
            let soon = Duration::from_millis(5 << missed.min(5));
            tokio::time::sleep(soon.min(poll).min(Duration::from_millis(200))).await;
            continue;
        }
        tokio::select! {
            _ = tokio::time::sleep(poll.min(Duration::from_millis(200))) => {}
            _ = changed => {}
        }
    }
}

/// Reads a node's task stream (blocking), passing each chunk on until the stream ends
/// or nobody listens.
fn read_stream(agent: &ureq::Agent, url: &str, out: &mpsc::Sender<Heard>) {
    let mut response = match agent.get(url).call() {
        Ok(r) => r,
        Err(_) => {
            let _ = out.blocking_send(Heard::Gone);
            return;
        }
    };
    match response.status().as_u16() {
        200 => {}
        404 => {
            let _ = out.blocking_send(Heard::NotFound);
            return;
        }
        _ => {
            let _ = out.blocking_send(Heard::Gone);
            return;
        }
    }
    let reader =
        std::io::BufReader::new(response.body_mut().with_config().limit(MAX_STREAM).reader());
    let mut restart = false;
    for line in reader.lines() {
        let Ok(line) = line else { break };
        if line.len() > MAX_LINE {
            break;
        }
        if line == "event: restart" {
            restart = true;
            continue;
        }
        let Some(data) = line.strip_prefix("data: ") else {
            continue;
        };
        let heard = if std::mem::take(&mut restart) {
            Heard::Restart
        } else {
            match serde_json::from_str::<StreamChunk>(data) {
                Ok(c) => Heard::Chunk(c),
                Err(_) => break,
            }
        };
        if out.blocking_send(heard).is_err() {
            return;
        }
    }
    let _ = out.blocking_send(Heard::Gone);
}

/// What the delivered answer adds to the text streamed before it: the rest of the
/// answer when the stream was its start, `None` when the stream said something else
/// (then the stream is void and the delivered answer is the one to show).
pub fn reconcile<'a>(streamed: &str, delivered: &'a str) -> Option<&'a str> {
    delivered.strip_prefix(streamed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_urls_are_built_from_plain_http_bases_only() {
        assert_eq!(
            stream_url("http://127.0.0.1:7000/", 5).as_deref(),
            Some("http://127.0.0.1:7000/tasks/5/stream")
        );
        assert_eq!(stream_url("http://h/x#", 5), None);
        assert_eq!(stream_url("http://h/x?y=", 5), None);
        assert_eq!(stream_url("http://u@h", 5), None);
        assert_eq!(stream_url("ftp://h", 5), None);
    }

    #[test]
    fn reconcile_keeps_the_delivered_answer_in_charge() {
        assert_eq!(reconcile("The cap", "The capital"), Some("ital"));
        assert_eq!(reconcile("", "x"), Some("x"));
        assert_eq!(reconcile("Paris", "London"), None);
    }
}
