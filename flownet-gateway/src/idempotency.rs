//! One charge per logical request: the paid OpenAI routes honour `Idempotency-Key`,
//! and the `openai` SDKs' own retries (`x-stainless-retry-count` ≥ 1) of a request
//! with the same body.
//!
//! A request that can be replayed runs detached from its connection, so a client that
//! times out and retries joins the run it started instead of paying again; its answer
//! is kept and replayed (with `Idempotent-Replayed: true`) to every later request with
//! the same key from the same API key: for 24 hours after an `Idempotency-Key`, for
//! ten minutes after a retried request. The same key with another body is refused
//! (422 `idempotency_key_reused`). Streamed answers are not kept (a retry of a stream
//! while it runs is refused with 409 `idempotency_key_in_use`). Entries live in this
//! gateway's memory, bounded in number and bytes: a restart forgets them.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use axum::{
    body::Body,
    extract::Request,
    http::{HeaderMap, HeaderValue, StatusCode, header},
    middleware::Next,
    response::{IntoResponse, Response},
};
use flownet_core::{Address, Digest32};
use tokio::sync::watch;

use crate::api_error::ApiError;

/// How long an answer to a request with an `Idempotency-Key` is replayed.
pub const KEY_TTL: Duration = Duration::from_secs(24 * 3600);
/// How long an answer is kept for the SDK's retries of a request without a key.
pub const RETRY_TTL: Duration = Duration::from_secs(600);
/// Longest `Idempotency-Key` accepted.
pub const MAX_KEY_BYTES: usize = 255;
/// Most entries kept; past it the oldest finished ones go first.
const MAX_ENTRIES: usize = 4096;
/// Largest answer kept for replay; a larger one is answered once.
const MAX_KEPT_BYTES: usize = 32 << 20;
/// Most bytes of answers kept in all.
const MAX_TOTAL_BYTES: usize = 256 << 20;

/// A finished answer, as replayed.
#[derive(Debug, Clone)]
struct Kept {
    status: StatusCode,
    headers: HeaderMap,
    body: axum::body::Bytes,
}

#[derive(Debug, Clone)]
enum Outcome {
    Running,
    Done(Arc<Kept>),
    /// Streamed, or too large to keep: not replayable.
    NotKept,
}

#[derive(Debug)]
struct Entry {
    /// SHA-256 of the method, path and body: a key reused for another request is refused.
    fingerprint: Digest32,
    outcome: watch::Receiver<Outcome>,
    expires: Instant,
    bytes: usize,
}

/// The gateway's table of replayable requests.
#[derive(Debug, Default)]
pub struct Idempotency {
    entries: Mutex<HashMap<(Address, String), Entry>>,
}

/// How a request names itself for replay.
enum Slot {
    /// `Idempotency-Key`.
    Key(String),
    /// An SDK retry (or the first try that a retry may join), by its fingerprint.
    Retry { first_try: bool },
}

fn slot(headers: &HeaderMap) -> Result<Option<Slot>, ApiError> {
    if let Some(v) = headers.get("idempotency-key") {
        let key = v.to_str().ok().map(str::trim).unwrap_or_default();
        if key.is_empty() || key.len() > MAX_KEY_BYTES {
            return Err(ApiError::bad_request(
                "invalid_idempotency_key",
                format!("`Idempotency-Key` must be 1 to {MAX_KEY_BYTES} visible ASCII characters"),
            ));
        }
        return Ok(Some(Slot::Key(key.to_owned())));
    }
    Ok(headers
        .get("x-stainless-retry-count")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u32>().ok())
        .map(|n| Slot::Retry { first_try: n == 0 }))
}

impl Idempotency {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(Address, String), Entry>> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Drops expired entries, then the oldest finished ones while over the bounds.
    fn prune(map: &mut HashMap<(Address, String), Entry>, now: Instant) {
        map.retain(|_, e| e.expires > now);
        let total =
            |m: &HashMap<(Address, String), Entry>| m.values().map(|e| e.bytes).sum::<usize>();
        while map.len() > MAX_ENTRIES || total(map) > MAX_TOTAL_BYTES {
            let oldest = map
                .iter()
                .filter(|(_, e)| !matches!(*e.outcome.borrow(), Outcome::Running))
                .min_by_key(|(_, e)| e.expires)
                .map(|(k, _)| k.clone());
            match oldest {
                Some(k) => {
                    map.remove(&k);
                }
                None => break,
            }
        }
    }
}

/// Runs a paid request once per idempotency slot of `owner` (the API key's account).
pub async fn run(table: Arc<Idempotency>, owner: Address, req: Request, next: Next) -> Response {
    let slot = match slot(req.headers()) {
        Ok(Some(slot)) => slot,
        Ok(None) => return next.run(req).await,
        Err(e) => return e.into_response(),
    };
    let (parts, body) = req.into_parts();
    // The body limit layer has bounded it already.
    let body = match axum::body::to_bytes(body, usize::MAX).await {
        Ok(b) => b,
        Err(e) => {
            return ApiError::bad_request("unreadable_body", format!("reading the body: {e}"))
                .into_response();
        }
    };
    let mut seen = Vec::with_capacity(body.len() + 64);
    seen.extend_from_slice(parts.method.as_str().as_bytes());
    seen.push(b' ');
    seen.extend_from_slice(parts.uri.path().as_bytes());
    seen.push(b'\n');
    seen.extend_from_slice(&body);
    let fingerprint = flownet_core::crypto::sha256(&seen);
    let (name, ttl, first_try) = match slot {
        Slot::Key(k) => (format!("key:{k}"), KEY_TTL, false),
        Slot::Retry { first_try } => (format!("retry:{fingerprint}"), RETRY_TTL, first_try),
    };
    let id = (owner, name);
    let now = Instant::now();
    let (tx, join) = {
        let mut map = table.lock();
        Idempotency::prune(&mut map, now);
        match map.get(&id) {
            Some(e) if e.fingerprint != fingerprint => {
                return ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "idempotency_key_reused",
                    "this Idempotency-Key was used for another request: use a new key for a new request",
                )
                .with_type("invalid_request_error")
                .into_response();
            }
            // A first try with a body seen before is a new request of its own.
            Some(e) if !first_try => (None, e.outcome.clone()),
            _ => {
                let (tx, rx) = watch::channel(Outcome::Running);
                map.insert(
                    id.clone(),
                    Entry {
                        fingerprint,
                        outcome: rx.clone(),
                        expires: now + ttl,
                        bytes: 0,
                    },
                );
                (Some(tx), rx)
            }
        }
    };
    let Some(tx) = tx else {
        return replay(join).await;
    };
    // Detached: a client that goes away does not stop the request it paid for.
    let req = Request::from_parts(parts, Body::from(body));
    let table2 = table.clone();
    let id2 = id.clone();
    let run = tokio::spawn(async move {
        let resp = next.run(req).await;
        let streamed = resp
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("text/event-stream"));
        if streamed {
            let _ = tx.send(Outcome::NotKept);
            return resp;
        }
        let (parts, body) = resp.into_parts();
        let body = match axum::body::to_bytes(body, MAX_KEPT_BYTES).await {
            Ok(b) => b,
            Err(_) => {
                let _ = tx.send(Outcome::NotKept);
                return ApiError::new(
                    StatusCode::BAD_GATEWAY,
                    "answer_too_large",
                    "the answer was too large to relay",
                )
                .into_response();
            }
        };
        let kept = Arc::new(Kept {
            status: parts.status,
            headers: parts.headers.clone(),
            body: body.clone(),
        });
        if let Some(e) = table2.lock().get_mut(&id2) {
            e.bytes = body.len();
        }
        let _ = tx.send(Outcome::Done(kept));
        Response::from_parts(parts, Body::from(body))
    });
    match run.await {
        Ok(resp) => resp,
        Err(e) => ApiError::internal("running the request", e).into_response(),
    }
}

/// The answer of the run a repeated request joins, once it is there.
async fn replay(mut rx: watch::Receiver<Outcome>) -> Response {
    let outcome = match rx.wait_for(|o| !matches!(o, Outcome::Running)).await {
        Ok(o) => o.clone(),
        Err(_) => Outcome::NotKept,
    };
    match outcome {
        Outcome::Done(kept) => {
            let mut resp = Response::new(Body::from(kept.body.clone()));
            *resp.status_mut() = kept.status;
            *resp.headers_mut() = kept.headers.clone();
            resp.headers_mut()
                .insert("idempotent-replayed", HeaderValue::from_static("true"));
            resp
        }
        _ => ApiError::new(
            StatusCode::CONFLICT,
            "idempotency_key_in_use",
            "the first request with this key was streamed (or too large to keep) and cannot be replayed; its task is on the ledger",
        )
        .with_type("invalid_request_error")
        .into_response(),
    }
}
