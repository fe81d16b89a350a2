//! The OpenAI-compatible API: `GET /v1/models`, `POST /v1/images/generations`,
//! `POST /v1/chat/completions` and `/v1/completions` (paid per token where nodes price
//! language models so), and `/v1/embeddings`, for the models of those kinds that the
//! marketplace serves.
//!
//! A bearer key stands for a custodial account the operator made with `flownet web
//! keys create`. Each request pays for its tasks from that account, on the best-scored
//! active node that offers the model within the key's max price, waits for the
//! deliveries, checks their hashes and answers in OpenAI's shapes, plus the task and
//! NFT ids of each output.

use std::{sync::Arc, time::Instant};

use axum::{
    Json,
    body::Bytes,
    extract::{Path, State},
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
};
use base64::Engine as _;
use flownet_core::{Amount, Node, OfferedModel, Task, TaskKind, TaskStatus, rules};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::{
    api::fetch_from_node,
    api_error::{ApiError, ApiResult},
    gateway::{Gateway, ModelMeta, json_body},
    keys::ApiKey,
};

type G = State<Arc<Gateway>>;
type Body = Result<Bytes, axum::extract::rejection::BytesRejection>;

/// Checks and rate-limits the API key of a paid route's request before its body is
/// read, and hands it to the handler (`Extension<Arc<ApiKey>>`).
pub(crate) async fn require_key(
    State(g): G,
    mut req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    match authenticate(&g, req.headers()) {
        Ok(key) => {
            let owner = key.address;
            req.extensions_mut().insert(key);
            // Once per Idempotency-Key or SDK retry: a retry joins the first run.
            crate::idempotency::run(g.idempotency.clone(), owner, req, next).await
        }
        Err(e) => e.into_response(),
    }
}

type Key = axum::Extension<Arc<ApiKey>>;

/// The key a request carries, checked and rate-limited.
fn authenticate(g: &Gateway, headers: &HeaderMap) -> ApiResult<Arc<ApiKey>> {
    let Some(keys) = &g.keys else {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "api_keys_disabled",
            "this gateway has no API keys: its operator makes them with `flownet web keys create`",
        ));
    };
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::UNAUTHORIZED,
                "missing_api_key",
                "you didn't provide an API key: send Authorization: Bearer <key>",
            )
            .with_type("invalid_request_error")
        })?;
    let key = keys
        .lookup(token)
        .map_err(|e| ApiError::internal("reading the API keys", e))?
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::UNAUTHORIZED,
                "invalid_api_key",
                "incorrect API key provided (keys are made with `flownet web keys create`)",
            )
            .with_type("invalid_request_error")
        })?;
    if key.network != g.network {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "invalid_api_key",
            format!(
                "this API key's account is on the {} ledger; this gateway serves {} (make a key with `flownet --network {} web keys create`)",
                key.network, g.network, g.network
            ),
        )
        .with_type("invalid_request_error"));
    }
    if let Err(retry) = g.key_limiter.check(&key.id, key.rate) {
        g.metrics.rate_limited("api_key");
        return Err(ApiError::rate_limited("API key", retry));
    }
    Ok(key)
}

/// Every model that an active node offers, once.
async fn offered(g: &Gateway) -> ApiResult<Vec<(OfferedModel, Node)>> {
    let mut out: Vec<(OfferedModel, Node)> = Vec::new();
    for node in g.ledger.nodes().await?.into_iter().filter(|n| n.active) {
        for m in &node.models {
            if !out.iter().any(|(o, _)| o.model_id == m.model_id) {
                out.push((m.clone(), node.clone()));
            }
        }
    }
    Ok(out)
}

fn model_json(offer: &OfferedModel, node: &Node, meta: Option<&ModelMeta>) -> Value {
    json!({
        "id": offer.model_id,
        "object": "model",
        "created": node.registered_at,
        "owned_by": "flownet",
        "kind": meta.map(|m| m.kind),
        "weights_sha256": offer.weights_sha256,
        "pricing": { "price": offer.price.to_string(), "unit": offer.unit, "node": node.owner },
    })
}

pub async fn models(State(g): G, headers: HeaderMap) -> ApiResult<Json<Value>> {
    authenticate(&g, &headers)?;
    let data: Vec<Value> = offered(&g)
        .await?
        .iter()
        .map(|(o, n)| model_json(o, n, g.models.get(&o.model_id)))
        .collect();
    Ok(Json(json!({ "object": "list", "data": data })))
}

pub async fn model(
    State(g): G,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    authenticate(&g, &headers)?;
    offered(&g)
        .await?
        .iter()
        .find(|(o, _)| o.model_id == id)
        .map(|(o, n)| Json(model_json(o, n, g.models.get(&o.model_id))))
        .ok_or_else(|| model_not_found(&id))
}

fn model_not_found(id: &str) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "model_not_found",
        format!("the model `{id}` does not exist or no active node serves it (see GET /v1/models)"),
    )
    .with_type("invalid_request_error")
    .with_param("model")
}

/// The active nodes offering one model within a key's max price, best first: the
/// first is paid, the others are fallen back on when it does not claim or declines.
type Candidates = Vec<(Node, OfferedModel)>;

/// Picks the model (or the best one of `kind`) and the nodes for it within the key's
/// max price, best first.
async fn choose(
    g: &Gateway,
    key: &ApiKey,
    model: Option<&str>,
    kind: TaskKind,
    endpoint: &str,
) -> ApiResult<(ModelMeta, Candidates)> {
    let nodes: Vec<Node> = g
        .ledger
        .nodes()
        .await?
        .into_iter()
        .filter(|n| n.active)
        .collect();
    let served = |id: &str| nodes.iter().any(|n| n.offer(id).is_some());
    let meta = match model {
        Some(id) => {
            if !served(id) {
                return Err(model_not_found(id));
            }
            let meta = g.models.get(id).ok_or_else(|| {
                ApiError::bad_request(
                    "model_kind_unknown",
                    format!(
                        "model `{id}` is served, but this gateway has no manifest saying what kind of model it is"
                    ),
                )
                .with_param("model")
            })?;
            if meta.kind != kind {
                return Err(ApiError::bad_request(
                    "wrong_model_kind",
                    format!(
                        "model `{id}` is a {} model; {endpoint} needs a {} model",
                        meta.kind.as_str(),
                        kind.as_str()
                    ),
                )
                .with_param("model"));
            }
            meta.clone()
        }
        None => {
            // Without a model, the first of the right kind in ranking order.
            let found = nodes.iter().flat_map(|n| &n.models).find_map(|o| {
                g.models
                    .get(&o.model_id)
                    .filter(|m| m.kind == kind)
                    .cloned()
            });
            found.ok_or_else(|| no_model_of_kind(kind, endpoint))?
        }
    };
    let cheapest = match flownet_core::offers_within(&nodes, &meta.id, Some(key.max_price)) {
        Ok(all) => {
            let all = all
                .into_iter()
                .map(|(n, o)| (n.clone(), o.clone()))
                .collect();
            return Ok((meta, all));
        }
        Err(flownet_core::NoOffer::AboveMax { cheapest }) => cheapest,
        Err(flownet_core::NoOffer::Unoffered) => Amount::ZERO,
    };
    Err(ApiError::bad_request(
        "price_above_max",
        format!(
            "no node offers `{}` within this key's max price {} FLOWNET (cheapest: {} FLOWNET)",
            meta.id, key.max_price, cheapest
        ),
    )
    .with_param("model"))
}

fn no_model_of_kind(kind: TaskKind, endpoint: &str) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "model_not_found",
        format!(
            "no node on this marketplace serves a {} model, so {endpoint} is unavailable (see GET /v1/models)",
            kind.as_str()
        ),
    )
    .with_type("invalid_request_error")
    .with_param("model")
}

fn check_prompt(prompt: &str, param: &str) -> ApiResult<()> {
    if prompt.trim().is_empty() {
        return Err(
            ApiError::bad_request("empty_prompt", format!("`{param}` must not be empty"))
                .with_param(param),
        );
    }
    rules::check_prompt_size(prompt).map_err(|e| ApiError::from_core(&e).with_param(param))
}

/// Fields a request may carry that this gateway does not use; anything else that is
/// not null is refused rather than silently ignored.
fn refuse_unknown(extra: &Map<String, Value>, ignored: &[&str], supported: &str) -> ApiResult<()> {
    match extra
        .iter()
        .find(|(k, v)| !v.is_null() && !ignored.contains(&k.as_str()))
    {
        Some((k, _)) => Err(ApiError::bad_request(
            "unsupported_parameter",
            format!("unsupported parameter `{k}`: this gateway supports {supported}"),
        )
        .with_param(k)),
        None => Ok(()),
    }
}

/// A delivered output of one task.
struct Delivered {
    task: Task,
    bytes: Vec<u8>,
}

/// What every task of one request shares besides its params: the prompt, the input
/// blob, and for a metered offer the most tokens each may write.
struct Job<'a> {
    prompt: &'a str,
    input: Option<flownet_core::InputRef>,
    max_units: Option<u64>,
}

impl<'a> Job<'a> {
    fn prompt(prompt: &'a str) -> Self {
        Self {
            prompt,
            input: None,
            max_units: None,
        }
    }
}

/// Pays for one task per `params` to the best of `candidates`, waits for all and
/// fetches their outputs. A task its node has not claimed after the claim wait is
/// cancelled (refunded) and paid to the next candidate, as is one its node declines,
/// so a dead node costs a few seconds, never a second payment. Tasks still open when
/// the wait ends are cancelled (their escrow comes back).
async fn run_tasks(
    g: &Gateway,
    key: &ApiKey,
    candidates: &[(Node, OfferedModel)],
    job: Job<'_>,
    params: Vec<String>,
) -> ApiResult<Vec<Delivered>> {
    let Some((node, offer)) = candidates.first() else {
        return Err(ApiError::internal("choosing a node", "no candidate node"));
    };
    let wallet = g.wallet(key.address, &key.key);
    let quote_for = |offer: &OfferedModel, p: &str| {
        let map = match serde_json::from_str(p) {
            Ok(Value::Object(map)) => map,
            _ => Map::new(),
        };
        rules::quote(offer, job.max_units, &map, None).map_err(|e| ApiError::from_core_openai(&e))
    };
    // Each task's escrow and cap, known before anything is paid.
    let mut quotes = Vec::with_capacity(params.len());
    for p in &params {
        quotes.push(quote_for(offer, p)?);
    }
    let needed = quotes
        .iter()
        .try_fold(Amount::ZERO, |sum, (_, escrow, _)| sum.checked_add(*escrow))
        .map_err(|e| ApiError::from_core_openai(&e))?;
    let balance = g
        .ledger
        .account(key.address)
        .await?
        .map(|a| a.balance)
        .unwrap_or_default();
    if balance < needed {
        return Err(ApiError::from_core_openai(
            &flownet_core::Error::InsufficientFunds {
                needed,
                available: balance,
            },
        ));
    }
    let started = Instant::now();
    let submit = |node: Node, offer: OfferedModel, p: String, quote: (u64, Amount, Amount)| {
        let wallet = &wallet;
        let job = &job;
        async move {
            let (max_units, _, max_price) = quote;
            let id = wallet
                .submit_action(flownet_core::Action::Submit {
                    node: node.owner,
                    model_id: offer.model_id.clone(),
                    prompt: job.prompt.to_owned(),
                    params: p,
                    max_price,
                    input: job.input.clone(),
                    max_units,
                })
                .await
                .map_err(|e| ApiError::from_core_openai(&e))?;
            let task = g.ledger.task(id).await?.ok_or_else(|| {
                ApiError::internal("reading a task", "just submitted task is missing")
            })?;
            let now = task.submitted_at;
            g.hub.track_submit(task.clone(), now, started);
            Ok::<_, ApiError>((task, now))
        }
    };
    // A client that goes away mid-wait (its request dropped) gets its open tasks
    // cancelled and refunded; a replayable request runs detached and never drops.
    let mut guard = CancelOnDrop {
        wallet: wallet.clone(),
        ids: Vec::new(),
    };
    // (task, ledger time read, its params, which candidate it went to)
    let mut submitted: Vec<(Task, u64, String, usize)> = Vec::new();
    for (p, quote) in params.iter().zip(quotes) {
        match submit(node.clone(), offer.clone(), p.clone(), quote).await {
            Ok((task, now)) => {
                guard.ids.push(task.id);
                submitted.push((task, now, p.clone(), 0));
            }
            Err(e) => {
                guard.ids.clear();
                cancel_open(&wallet, submitted.iter().map(|s| s.0.id)).await;
                return Err(e);
            }
        }
    }
    let deadline = started + g.config.task_timeout;
    let mut out = Vec::new();
    let mut failure = None;
    let mut ids: Vec<u64> = submitted.iter().map(|s| s.0.id).collect();
    for (mut task, mut now, p, mut at) in submitted {
        // Claimed (or final) within the claim wait, or handed to the next candidate.
        while at + 1 < candidates.len() {
            let claim_by = (Instant::now() + g.config.claim_wait).min(deadline);
            let state = g
                .hub
                .wait_until(
                    task.clone(),
                    now,
                    claim_by.saturating_duration_since(Instant::now()),
                    g.closing(),
                    |t| t.status != TaskStatus::Open,
                )
                .await;
            let handed_on = match state.task.status {
                TaskStatus::Open => wallet.cancel(task.id).await.is_ok(),
                TaskStatus::Declined => true,
                _ => false,
            };
            if !handed_on || Instant::now() >= deadline {
                break;
            }
            at += 1;
            let (next, next_offer) = &candidates[at];
            tracing::info!(
                "task {} was not taken by node {} ({}): paying node {} instead",
                task.id,
                state.task.node,
                state.task.status,
                next.owner
            );
            let quote = match quote_for(next_offer, &p) {
                Ok(q) => q,
                Err(e) => {
                    failure = failure.or(Some(e));
                    break;
                }
            };
            match submit(next.clone(), next_offer.clone(), p.clone(), quote).await {
                Ok((t, n)) => {
                    ids.push(t.id);
                    guard.ids.push(t.id);
                    (task, now) = (t, n);
                }
                Err(e) => {
                    failure = failure.or(Some(e));
                    break;
                }
            }
        }
        let left = deadline.saturating_duration_since(Instant::now());
        let state = g.hub.wait_final(task.clone(), now, left, g.closing()).await;
        let t = state.task;
        match (t.status, t.result.clone()) {
            (TaskStatus::Fulfilled, Some(result)) => match fetch_from_node(g, &t, &result).await {
                Ok(bytes) => out.push(Delivered { task: t, bytes }),
                Err(e) => failure = failure.or(Some(e)),
            },
            (status, _) if status.is_final() => {
                failure = failure.or(Some(ApiError::new(
                    StatusCode::BAD_GATEWAY,
                    "task_not_delivered",
                    format!(
                        "node {} did not deliver: {}",
                        t.node,
                        flownet_core::waiting::ended_without_output(&t)
                    ),
                )));
            }
            (status, _) => {
                // A claimed task past its deadline is expired here: its escrow comes
                // back now rather than when someone else notices.
                if let Ok(flownet_core::waiting::Look::Final(_)) =
                    flownet_core::waiting::look(g.ledger.as_ref(), Some(&wallet), t.id).await
                {
                    tracing::info!("expired overdue task {}", t.id);
                }
                failure = failure.or(Some(ApiError::new(
                    StatusCode::GATEWAY_TIMEOUT,
                    "task_timeout",
                    format!(
                        "task {} is still {status} after {} s: open tasks are cancelled and refunded; a claimed one is refunded when its node misses its deadline",
                        t.id,
                        g.config.task_timeout.as_secs()
                    ),
                )));
            }
        }
    }
    guard.ids.clear();
    if let Some(e) = failure {
        cancel_open(&wallet, ids.into_iter()).await;
        return Err(e);
    }
    Ok(out)
}

/// Cancels the open ones of `ids` if dropped before it is emptied: the request that
/// paid for them was dropped (its client went away).
struct CancelOnDrop {
    wallet: Arc<flownet_core::Wallet<dyn flownet_core::Ledger>>,
    ids: Vec<u64>,
}

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        if self.ids.is_empty() {
            return;
        }
        let (wallet, ids) = (self.wallet.clone(), std::mem::take(&mut self.ids));
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                tracing::info!("the client went away: cancelling its open tasks {ids:?}");
                cancel_open(&wallet, ids.into_iter()).await;
            });
        }
    }
}

async fn cancel_open(
    wallet: &flownet_core::Wallet<dyn flownet_core::Ledger>,
    ids: impl Iterator<Item = u64>,
) {
    for id in ids {
        if let Ok(Some(t)) = wallet.ledger().task(id).await
            && t.status == TaskStatus::Open
            && let Err(e) = wallet.cancel(id).await
        {
            tracing::warn!("cancelling task {id}: {e}");
        }
    }
}

/// The flownet fields of a delivered answer; a metered one's tokens recounted with
/// the model's tokenizer when the gateway has the GGUF in `models_dir` (its vocabulary
/// is loaded once per process; later recounts take microseconds).
fn flownet_fields(
    d: &Delivered,
    meta: &ModelMeta,
    models_dir: Option<&std::path::Path>,
) -> Map<String, Value> {
    let mut m = task_fields(&d.task, &meta.id);
    if let Some(dir) = models_dir
        && d.task.units.is_some()
        && let Some(answer) = flownet_core::Generation::from_bytes(&d.bytes).ok()
    {
        let check = flownet_node::check_units(&d.task, &answer, dir);
        if let Some(w) = check.warning(d.task.node) {
            tracing::warn!(task = d.task.id, "{w}");
        }
        m.insert("units_check".into(), check.to_json());
    }
    m
}

/// The flownet fields of an answer: the task, its output, and what it cost.
pub(crate) fn task_fields(t: &Task, model: &str) -> Map<String, Value> {
    let r = t.result.as_ref();
    let mut m = Map::new();
    m.insert("task_id".into(), json!(t.id));
    m.insert("nft_id".into(), json!(t.nft));
    m.insert("sha256".into(), json!(r.map(|r| r.sha256)));
    m.insert("mime".into(), json!(r.map(|r| r.mime.clone())));
    m.insert(
        "cid".into(),
        json!(r.and_then(flownet_core::OutputRef::cid)),
    );
    m.insert("node".into(), json!(t.node));
    m.insert("model".into(), json!(model));
    m.insert("weights_sha256".into(), json!(t.weights_sha256));
    m.insert("price".into(), json!(t.price.to_string()));
    if let Some(units) = t.units {
        m.insert("units".into(), json!(units));
        m.insert(
            "cost".into(),
            json!(
                t.price
                    .checked_sub(t.refunded)
                    .unwrap_or_default()
                    .to_string()
            ),
        );
        m.insert("refunded".into(), json!(t.refunded.to_string()));
    }
    if let Some(input) = &t.input {
        m.insert("input".into(), json!(input));
    }
    m
}

#[derive(Debug, Deserialize)]
pub struct ImageRequest {
    prompt: Option<String>,
    model: Option<String>,
    n: Option<u32>,
    size: Option<String>,
    response_format: Option<String>,
    #[serde(flatten)]
    extra: Map<String, Value>,
}

pub async fn images(
    State(g): G,
    axum::Extension(key): Key,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Json<Value>> {
    let req: ImageRequest = json_body(&headers, body)?;
    refuse_unknown(
        &req.extra,
        &["user", "quality", "style"],
        "prompt, model, n, size and response_format",
    )?;
    let prompt = req.prompt.unwrap_or_default();
    check_prompt(&prompt, "prompt")?;
    let n = req.n.unwrap_or(1);
    if n == 0 || n > g.config.max_images {
        return Err(ApiError::bad_request(
            "invalid_n",
            format!("`n` must be 1 to {}", g.config.max_images),
        )
        .with_param("n"));
    }
    let b64 = match req.response_format.as_deref() {
        None | Some("url") => false,
        Some("b64_json") => true,
        Some(other) => {
            return Err(ApiError::bad_request(
                "invalid_response_format",
                format!("`response_format` must be url or b64_json, not {other:?}"),
            )
            .with_param("response_format"));
        }
    };
    let (meta, candidates) = choose(
        &g,
        &key,
        req.model.as_deref(),
        TaskKind::TextToImage,
        "/v1/images/generations",
    )
    .await?;
    if let Some(size) = req.size.as_deref().filter(|s| *s != "auto")
        && meta.size.as_deref() != Some(size)
    {
        return Err(ApiError::bad_request(
            "invalid_size",
            match &meta.size {
                Some(s) => format!(
                    "model `{}` makes {s} images only: use size {s} or auto",
                    meta.id
                ),
                None => format!(
                    "model `{}` has a fixed size: leave `size` out or use auto",
                    meta.id
                ),
            },
        )
        .with_param("size"));
    }
    if n > 1 && !meta.has_seed() {
        return Err(ApiError::bad_request(
            "invalid_n",
            format!(
                "model `{}` gives the same image for the same prompt: ask for n = 1",
                meta.id
            ),
        )
        .with_param("n"));
    }
    // The first image is the one the prompt alone gives (as with n = 1); the others
    // set the seed to the ones after the prompt's own (the terrain model's default
    // seed), so none repeats it.
    let base = flownet_core::crypto::prompt_seed(&prompt);
    let params: Vec<String> = (0..u64::from(n))
        .map(|i| match i {
            0 => "{}".to_owned(),
            i => json!({ "seed": base.wrapping_add(i) }).to_string(),
        })
        .collect();
    let delivered = run_tasks(&g, &key, &candidates, Job::prompt(&prompt), params).await?;
    let base_url = base_url(&g, &headers);
    let data: Vec<Value> = delivered
        .iter()
        .map(|d| {
            let mut item = flownet_fields(d, &meta, g.config.models_dir.as_deref());
            let sha = d.task.result.as_ref().map(|r| r.sha256).unwrap_or_default();
            if b64 {
                item.insert(
                    "b64_json".into(),
                    json!(base64::engine::general_purpose::STANDARD.encode(&d.bytes)),
                );
            } else {
                item.insert(
                    "url".into(),
                    json!(format!("{base_url}/api/blobs/{sha}?task={}", d.task.id)),
                );
            }
            item.insert("revised_prompt".into(), Value::Null);
            Value::Object(item)
        })
        .collect();
    Ok(Json(json!({
        "created": delivered.first().map(|d| d.task.submitted_at).unwrap_or_default(),
        "data": data,
    })))
}

pub(crate) fn base_url(g: &Gateway, headers: &HeaderMap) -> String {
    if let Some(u) = &g.config.public_url {
        return u.trim_end_matches('/').to_owned();
    }
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("127.0.0.1");
    format!("http://{host}")
}

#[derive(Debug, Deserialize)]
pub struct CompletionRequest {
    model: Option<String>,
    prompt: Option<Value>,
    #[serde(flatten)]
    extra: Map<String, Value>,
}

/// The sampling fields of OpenAI's completion and chat requests, passed to the model as
/// its params under the same names.
const SAMPLING_FIELDS: [&str; 6] = [
    "temperature",
    "top_p",
    "seed",
    "stop",
    "frequency_penalty",
    "presence_penalty",
];

/// Fields OpenAI's clients send that change nothing here.
const IGNORED_FIELDS: [&str; 5] = ["user", "n", "stream", "stream_options", "logprobs"];

/// A request's sampling settings as the task's params, checked as the model will check
/// them (before anything is paid), and its token limit.
fn generation_params(extra: &Map<String, Value>) -> ApiResult<(Map<String, Value>, Option<u64>)> {
    if extra
        .get("n")
        .is_some_and(|n| !n.is_null() && n.as_u64() != Some(1))
    {
        return Err(ApiError::bad_request("invalid_n", "`n` must be 1").with_param("n"));
    }
    if extra.get("logprobs").and_then(Value::as_bool) == Some(true) {
        return Err(ApiError::bad_request(
            "logprobs_unsupported",
            "log probabilities are not returned: leave `logprobs` out",
        )
        .with_param("logprobs"));
    }
    let mut params = Map::new();
    for key in SAMPLING_FIELDS {
        if let Some(v) = extra.get(key).filter(|v| !v.is_null()) {
            params.insert(key.into(), v.clone());
        }
    }
    let (field, limit) = match (
        extra.get("max_completion_tokens").filter(|v| !v.is_null()),
        extra.get("max_tokens").filter(|v| !v.is_null()),
    ) {
        (Some(v), _) => ("max_completion_tokens", Some(v)),
        (None, Some(v)) => ("max_tokens", Some(v)),
        (None, None) => ("max_tokens", None),
    };
    let max_units = match limit {
        None => None,
        Some(v) => Some(
            v.as_u64()
                .filter(|n| (1..=rules::MAX_TASK_UNITS).contains(n))
                .ok_or_else(|| {
                    ApiError::bad_request(
                        "invalid_max_tokens",
                        format!(
                            "`{field}` must be an integer from 1 to {}",
                            rules::MAX_TASK_UNITS
                        ),
                    )
                    .with_param(field)
                })?,
        ),
    };
    if let Some(m) = max_units {
        params.insert("max_tokens".into(), json!(m));
    }
    // The model's own checks, run here so a bad value costs nothing.
    flownet_infer::chat::Sampling::from_params(
        &params,
        &Value::Null,
        "",
        rules::MAX_TASK_UNITS as u32,
    )
    .map_err(|e| {
        let message = e.to_string();
        let param = SAMPLING_FIELDS
            .iter()
            .find(|f| message.contains(*f))
            .copied()
            .unwrap_or("max_tokens");
        ApiError::bad_request("invalid_parameter", message).with_param(param)
    })?;
    Ok((params, max_units))
}

/// The task's prompt and input for `source`: the prompt itself when it fits the
/// ledger, else a blob this gateway keeps and serves at `/api/blobs/<sha256>`, named by
/// a `sha256:<hex>` prompt.
async fn hold_input(
    g: &Gateway,
    headers: &HeaderMap,
    source: String,
    param: &str,
) -> ApiResult<(String, Option<flownet_core::InputRef>)> {
    if source.len() <= rules::MAX_PROMPT_BYTES {
        return Ok((source, None));
    }
    let Some(store) = g.blobs.clone() else {
        return Err(ApiError::bad_request(
            "context_too_long",
            format!(
                "`{param}` is {} bytes: over {} bytes it travels as an input blob, and this gateway keeps no blobs",
                source.len(),
                rules::MAX_PROMPT_BYTES
            ),
        )
        .with_param(param));
    };
    let input = hold_blob(g, headers, store, source.into_bytes()).await?;
    rules::check_input(&input).map_err(|e| ApiError::from_core_openai(&e))?;
    Ok((format!("sha256:{}", input.sha256), Some(input)))
}

/// Stores `bytes` in this gateway's blob store and names them as a task's input,
/// served at `/api/blobs/<sha256>` (the caller checks the input against the rules).
pub(crate) async fn hold_blob(
    g: &Gateway,
    headers: &HeaderMap,
    store: flownet_node::FsBlobStore,
    bytes: Vec<u8>,
) -> Result<flownet_core::InputRef, ApiError> {
    let size = bytes.len() as u64;
    let sha256 = tokio::task::spawn_blocking(move || flownet_core::BlobStore::put(&store, &bytes))
        .await
        .map_err(|e| ApiError::internal("storing the input", e))?
        .map_err(|e| ApiError::internal("storing the input", e))?;
    Ok(flownet_core::InputRef {
        sha256,
        size,
        uri: format!("{}/api/blobs/{sha256}", base_url(g, headers)),
    })
}

/// One text generation, paid per token: `source` is the conversation (its JSON) or a
/// plain prompt. When it is too long for the ledger's prompt it becomes the task's
/// input, held by this gateway and fetched by the node from `/api/blobs/<sha256>`.
#[allow(clippy::too_many_arguments)] // the request's parts, each used once
async fn generate(
    g: &Gateway,
    key: &ApiKey,
    headers: &HeaderMap,
    model: Option<&str>,
    endpoint: &str,
    source: String,
    params: Map<String, Value>,
    max_units: Option<u64>,
) -> ApiResult<(ModelMeta, Delivered, flownet_core::Generation)> {
    let (meta, candidates) = choose(g, key, model, TaskKind::TextGeneration, endpoint).await?;
    let param = if endpoint.contains("chat") {
        "messages"
    } else {
        "prompt"
    };
    let (prompt, input) = hold_input(g, headers, source, param).await?;
    let job = Job {
        prompt: &prompt,
        input,
        max_units,
    };
    let params = vec![Value::Object(params).to_string()];
    let d = run_tasks(g, key, &candidates, job, params)
        .await?
        .into_iter()
        .next()
        .ok_or_else(|| ApiError::internal("running the task", "no output"))?;
    let generation = match flownet_core::Generation::from_bytes(&d.bytes) {
        Ok(generation) => generation,
        // A model that answers in plain text: its text, with nothing counted.
        Err(_) => flownet_core::Generation {
            text: String::from_utf8(d.bytes.clone()).map_err(|_| {
                ApiError::new(
                    StatusCode::BAD_GATEWAY,
                    "not_text",
                    format!("task {}'s output is not UTF-8 text", d.task.id),
                )
            })?,
            finish_reason: flownet_core::FinishReason::Stop,
            usage: flownet_core::Usage::default(),
        },
    };
    Ok((meta, d, generation))
}

fn usage_json(u: &flownet_core::Usage) -> Value {
    json!({
        "prompt_tokens": u.prompt_tokens,
        "completion_tokens": u.completion_tokens,
        "total_tokens": u.prompt_tokens + u.completion_tokens,
    })
}

/// Text completion by a text-generation model: the prompt is the task's prompt (one
/// user message to a chat model) and the output's text is the completion, paid per
/// token where the node prices it so.
pub async fn completions(
    State(g): G,
    axum::Extension(key): Key,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let req: CompletionRequest = json_body(&headers, body)?;
    let mut allowed: Vec<&str> = IGNORED_FIELDS.to_vec();
    allowed.extend(SAMPLING_FIELDS);
    allowed.extend(["max_tokens", "max_completion_tokens"]);
    refuse_unknown(
        &req.extra,
        &allowed,
        "model, prompt, max_tokens, stream and the sampling fields",
    )?;
    let stream = req.extra.get("stream").and_then(Value::as_bool) == Some(true);
    let prompt = match req.prompt {
        Some(Value::String(s)) => s,
        Some(Value::Array(a)) if a.len() == 1 && a[0].is_string() => {
            a[0].as_str().unwrap_or_default().to_owned()
        }
        _ => {
            return Err(
                ApiError::bad_request("invalid_prompt", "`prompt` must be one string")
                    .with_param("prompt"),
            );
        }
    };
    check_prompt(&prompt, "prompt")?;
    let (params, max_units) = generation_params(&req.extra)?;
    let (meta, d, generation) = generate(
        &g,
        &key,
        &headers,
        req.model.as_deref(),
        "/v1/completions",
        prompt,
        params,
        max_units,
    )
    .await?;
    let id = format!("cmpl-flownet-{}", d.task.id);
    let choice = |text: &str, finish: Value| json!({ "text": text, "index": 0, "logprobs": null, "finish_reason": finish });
    let full = json!({
        "id": id,
        "object": "text_completion",
        "created": d.task.submitted_at,
        "model": meta.id,
        "choices": [choice(&generation.text, json!(generation.finish_reason))],
        "usage": usage_json(&generation.usage),
        "flownet": flownet_fields(&d, &meta, g.config.models_dir.as_deref()),
    });
    if !stream {
        return Ok(Json(full).into_response());
    }
    let mut events = Vec::new();
    if !generation.text.is_empty() {
        events.push(json!({ "id": id, "object": "text_completion", "created": d.task.submitted_at, "model": meta.id, "choices": [choice(&generation.text, Value::Null)] }));
    }
    let mut last = full;
    last["choices"] = json!([choice("", json!(generation.finish_reason))]);
    events.push(last);
    Ok(sse_answer(events))
}

#[derive(Debug, Deserialize)]
pub struct ChatRequest {
    model: Option<String>,
    messages: Option<Value>,
    #[serde(flatten)]
    extra: Map<String, Value>,
}

/// A message's content: a string, or OpenAI's array of parts of which only text
/// parts are understood.
fn message_text(content: &Value, i: usize) -> ApiResult<String> {
    let bad = |m: String| {
        Err(ApiError::bad_request("invalid_messages", m)
            .with_param(&format!("messages[{i}].content")))
    };
    match content {
        Value::String(s) => Ok(s.clone()),
        Value::Array(parts) => {
            let mut text = String::new();
            for part in parts {
                match (
                    part.get("type").and_then(Value::as_str),
                    part.get("text").and_then(Value::as_str),
                ) {
                    (Some("text"), Some(t)) => text.push_str(t),
                    (other, _) => {
                        return bad(format!(
                            "messages[{i}] has a {} part: the models here read text only",
                            other.unwrap_or("typeless")
                        ));
                    }
                }
            }
            Ok(text)
        }
        Value::Null => Ok(String::new()),
        _ => bad(format!(
            "messages[{i}].content must be a string or an array of text parts"
        )),
    }
}

/// Chat by a text-generation model: the conversation is the task's prompt (or, when
/// longer than the ledger allows, its input blob), the node is paid for the tokens it
/// writes and the rest of the escrow comes back. `stream` answers as server-sent
/// events in OpenAI's chunk shape, once the answer's hash has been checked.
pub async fn chat(
    State(g): G,
    axum::Extension(key): Key,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let req: ChatRequest = json_body(&headers, body)?;
    let mut allowed: Vec<&str> = IGNORED_FIELDS.to_vec();
    allowed.extend(SAMPLING_FIELDS);
    allowed.extend(["max_tokens", "max_completion_tokens"]);
    refuse_unknown(
        &req.extra,
        &allowed,
        "model, messages, max_tokens, max_completion_tokens, stream and the sampling fields",
    )?;
    let stream = req.extra.get("stream").and_then(Value::as_bool) == Some(true);
    let include_usage = req
        .extra
        .get("stream_options")
        .and_then(|o| o.get("include_usage"))
        .and_then(Value::as_bool)
        == Some(true);
    let Some(Value::Array(items)) = req.messages else {
        return Err(ApiError::bad_request(
            "invalid_messages",
            "`messages` must be an array of {\"role\", \"content\"}",
        )
        .with_param("messages"));
    };
    let mut messages = Vec::with_capacity(items.len());
    for (i, m) in items.iter().enumerate() {
        let role = match m.get("role").and_then(Value::as_str) {
            // OpenAI's newer name for the system message.
            Some("developer") => "system",
            Some(r) => r,
            None => {
                return Err(ApiError::bad_request(
                    "invalid_messages",
                    format!("messages[{i}] needs a string `role`"),
                )
                .with_param(&format!("messages[{i}].role")));
            }
        };
        let content = message_text(m.get("content").unwrap_or(&Value::Null), i)?;
        messages.push(json!({ "role": role, "content": content }));
    }
    let conversation = json!({ "messages": messages }).to_string();
    // The model's own reading of the conversation, before anything is paid.
    flownet_infer::chat::conversation(&conversation).map_err(|e| {
        ApiError::bad_request("invalid_messages", e.to_string()).with_param("messages")
    })?;
    let (params, max_units) = generation_params(&req.extra)?;
    if stream {
        return chat_stream(
            &g,
            &key,
            &headers,
            req.model.as_deref(),
            conversation,
            params,
            max_units,
            include_usage,
        )
        .await;
    }
    let (meta, d, generation) = generate(
        &g,
        &key,
        &headers,
        req.model.as_deref(),
        "/v1/chat/completions",
        conversation,
        params,
        max_units,
    )
    .await?;
    let id = format!("chatcmpl-flownet-{}", d.task.id);
    let created = d.task.submitted_at;
    Ok(Json(json!({
        "id": id,
        "object": "chat.completion",
        "created": created,
        "model": meta.id,
        "system_fingerprint": format!("weights-{}", &d.task.weights_sha256.to_hex()[..16]),
        "choices": [{
            "index": 0,
            "message": { "role": "assistant", "content": generation.text, "refusal": null },
            "logprobs": null,
            "finish_reason": generation.finish_reason,
        }],
        "usage": usage_json(&generation.usage),
        "flownet": flownet_fields(&d, &meta, g.config.models_dir.as_deref()),
    }))
    .into_response())
}

/// A streamed chat: the task is paid for here, then its answer is relayed from the
/// node as it is written (see [`crate::stream`]).
#[allow(clippy::too_many_arguments)]
async fn chat_stream(
    g: &Arc<Gateway>,
    key: &ApiKey,
    headers: &HeaderMap,
    model: Option<&str>,
    conversation: String,
    params: Map<String, Value>,
    max_units: Option<u64>,
    include_usage: bool,
) -> Result<Response, ApiError> {
    // A stream relays one node's own stream: it is paid to the best node only.
    let (meta, candidates) = choose(
        g,
        key,
        model,
        TaskKind::TextGeneration,
        "/v1/chat/completions",
    )
    .await?;
    let (node, offer) = candidates
        .into_iter()
        .next()
        .ok_or_else(|| ApiError::internal("choosing a node", "no candidate node"))?;
    let (prompt, input) = hold_input(g, headers, conversation, "messages").await?;
    let (max_units, escrow, max_price) = rules::quote(&offer, max_units, &params, None)
        .map_err(|e| ApiError::from_core_openai(&e))?;
    let balance = g
        .ledger
        .account(key.address)
        .await?
        .map(|a| a.balance)
        .unwrap_or_default();
    if balance < escrow {
        return Err(ApiError::from_core_openai(
            &flownet_core::Error::InsufficientFunds {
                needed: escrow,
                available: balance,
            },
        ));
    }
    let wallet = g.wallet(key.address, &key.key);
    let started = Instant::now();
    let id = wallet
        .submit_action(flownet_core::Action::Submit {
            node: node.owner,
            model_id: offer.model_id.clone(),
            prompt,
            params: Value::Object(params).to_string(),
            max_price,
            input,
            max_units,
        })
        .await
        .map_err(|e| ApiError::from_core_openai(&e))?;
    let task =
        g.ledger.task(id).await?.ok_or_else(|| {
            ApiError::internal("reading a task", "just submitted task is missing")
        })?;
    g.hub.track_submit(task.clone(), task.submitted_at, started);
    let fields_meta = meta.clone();
    let models_dir = g.config.models_dir.clone();
    let stream = crate::stream::ChatStream {
        id: format!("chatcmpl-flownet-{id}"),
        model: meta.id.clone(),
        include_usage,
        wallet: Some(wallet),
        fields: Box::new(move |t, bytes| {
            flownet_fields(
                &Delivered {
                    task: t.clone(),
                    bytes: bytes.to_vec(),
                },
                &fields_meta,
                models_dir.as_deref(),
            )
        }),
        guard: None,
    };
    Ok(crate::stream::relay(g.clone(), task, node, stream))
}

/// Server-sent events in OpenAI's streaming shape: one `data:` line per event, then
/// `data: [DONE]`.
fn sse_answer(events: Vec<Value>) -> Response {
    let mut body = String::new();
    for e in events {
        body.push_str("data: ");
        body.push_str(&e.to_string());
        body.push_str("\n\n");
    }
    body.push_str("data: [DONE]\n\n");
    (
        [
            (header::CONTENT_TYPE, "text/event-stream"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

#[derive(Debug, Deserialize)]
pub struct EmbeddingRequest {
    model: Option<String>,
    input: Option<Value>,
    #[serde(flatten)]
    extra: Map<String, Value>,
}

/// `input` as texts, and the prompt that carries them: one string or a list of strings
/// (OpenAI's token-array forms are refused: a node's tokenizer is its own).
fn embedding_texts(input: Option<Value>) -> ApiResult<(Vec<String>, String)> {
    let bad = |message: String| ApiError::bad_request("invalid_input", message).with_param("input");
    let texts = match input {
        Some(Value::String(s)) => vec![s],
        Some(Value::Array(items)) => items
            .into_iter()
            .enumerate()
            .map(|(i, v)| match v {
                Value::String(s) => Ok(s),
                Value::Number(_) | Value::Array(_) => Err(bad(format!(
                    "input[{i}] is tokens: this gateway embeds text (the node's model tokenizes it)"
                ))),
                _ => Err(bad(format!("input[{i}] must be a string"))),
            })
            .collect::<ApiResult<_>>()?,
        None | Some(Value::Null) => return Err(bad("`input` is required".into())),
        Some(_) => return Err(bad("`input` must be a string or a list of strings".into())),
    };
    // The node's rules, checked before anything is paid.
    let prompt = flownet_core::embedding::prompt_for(&texts).map_err(|e| bad(e.to_string()))?;
    Ok((texts, prompt))
}

/// Embeddings by an embedding model: every text of the request in one task (one
/// batched run on the node), paid per 1,000 tokens read. The escrow is the most the
/// texts can be (each one's UTF-8 length plus two); the tokens the node did not read
/// come back with the fulfilment.
pub async fn embeddings(
    State(g): G,
    axum::Extension(key): Key,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Json<Value>> {
    let req: EmbeddingRequest = json_body(&headers, body)?;
    refuse_unknown(
        &req.extra,
        &["user", "encoding_format"],
        "model, input and encoding_format",
    )?;
    // OpenAI's clients ask for base64 (little-endian f32s) by default.
    let base64 = match req.extra.get("encoding_format") {
        None | Some(Value::Null) => false,
        Some(Value::String(f)) if f == "float" => false,
        Some(Value::String(f)) if f == "base64" => true,
        Some(other) => {
            return Err(ApiError::bad_request(
                "invalid_encoding_format",
                format!("`encoding_format` must be float or base64, not {other}"),
            )
            .with_param("encoding_format"));
        }
    };
    let (texts, source) = embedding_texts(req.input)?;
    let (meta, candidates) = choose(
        &g,
        &key,
        req.model.as_deref(),
        TaskKind::Embedding,
        "/v1/embeddings",
    )
    .await?;
    let (prompt, input) = hold_input(&g, &headers, source, "input").await?;
    let job = Job {
        prompt: &prompt,
        input,
        max_units: Some(flownet_core::embedding::max_units(&texts, None)),
    };
    let delivered = run_tasks(&g, &key, &candidates, job, vec!["{}".into()]).await?;
    let d = &delivered[0];
    let out = flownet_core::Embeddings::from_bytes(&d.bytes)
        .ok()
        .filter(|e| e.embeddings.len() == texts.len())
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::BAD_GATEWAY,
                "not_an_embedding",
                format!(
                    "task {}'s output is not {} embeddings in FlowNet's embedding JSON",
                    d.task.id,
                    texts.len()
                ),
            )
        })?;
    let data: Vec<Value> = out
        .embeddings
        .iter()
        .enumerate()
        .map(|(index, v)| {
            let embedding = if base64 {
                let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
                json!(base64::engine::general_purpose::STANDARD.encode(bytes))
            } else {
                json!(v)
            };
            json!({ "object": "embedding", "index": index, "embedding": embedding })
        })
        .collect();
    let mut fields = flownet_fields(d, &meta, g.config.models_dir.as_deref());
    // The tokens paid for, recounted with the model's tokenizer when this gateway's
    // models dir holds the same model.
    if let Some(dir) = g.config.models_dir.clone() {
        let (task, out) = (d.task.clone(), out.clone());
        let check = tokio::task::spawn_blocking(move || {
            flownet_node::check_embedding_units(&task, &texts, &out, &dir)
        })
        .await
        .map_err(|e| ApiError::internal("recounting the tokens", e))?;
        if let Some(w) = check.warning(d.task.node) {
            tracing::warn!(task = d.task.id, "{w}");
        }
        fields.insert("units_check".into(), check.to_json());
    }
    Ok(Json(json!({
        "object": "list",
        "data": data,
        "model": meta.id,
        "usage": {
            "prompt_tokens": out.usage.prompt_tokens,
            "total_tokens": out.usage.total_tokens,
        },
        "flownet": fields,
    })))
}

#[derive(Debug, Deserialize)]
pub struct SpeechRequest {
    model: Option<String>,
    input: Option<Value>,
    voice: Option<Value>,
    response_format: Option<String>,
    speed: Option<f64>,
    #[serde(flatten)]
    extra: Map<String, Value>,
}

/// `POST /v1/audio/speech`: speaks `input` with a text-to-speech model (one task, paid
/// per task) and answers the audio itself: `response_format` `wav` (the default here)
/// or `pcm` (16-bit little-endian mono at the voice's rate, 22,050 Hz for Piper's). A
/// voice is one speaker: `voice` may name it or be any of OpenAI's names (each model
/// has one voice). The task, its output's SHA-256 and the NFT come back as
/// `x-flownet-*` headers.
pub async fn speech(
    State(g): G,
    axum::Extension(key): Key,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    let req: SpeechRequest = json_body(&headers, body)?;
    refuse_unknown(
        &req.extra,
        &["user", "instructions"],
        "model, input, voice, response_format and speed",
    )?;
    let text = match &req.input {
        Some(Value::String(s)) => flownet_core::speech::text_of(s).map_err(|e| {
            ApiError::bad_request("invalid_input", e.to_string()).with_param("input")
        })?,
        _ => {
            return Err(ApiError::bad_request(
                "invalid_input",
                "`input` must be the text to speak",
            )
            .with_param("input"));
        }
    };
    if req
        .voice
        .as_ref()
        .is_some_and(|v| !v.is_string() && !v.is_null())
    {
        return Err(
            ApiError::bad_request("invalid_voice", "`voice` must be a string").with_param("voice"),
        );
    }
    let format = match req.response_format.as_deref() {
        None | Some("wav") => "wav",
        Some("pcm") => "pcm",
        Some(other) => {
            return Err(ApiError::bad_request(
                "unsupported_response_format",
                format!("`response_format` {other:?} is not served here: wav or pcm"),
            )
            .with_param("response_format"));
        }
    };
    let mut params = Map::new();
    params.insert("format".into(), json!(format));
    if let Some(speed) = req.speed {
        if !(0.25..=4.0).contains(&speed) {
            return Err(ApiError::bad_request(
                "invalid_speed",
                format!("`speed` must be from 0.25 to 4, not {speed}"),
            )
            .with_param("speed"));
        }
        params.insert("speed".into(), json!(speed));
    }
    let (meta, candidates) = choose(
        &g,
        &key,
        req.model.as_deref(),
        TaskKind::TextToSpeech,
        "/v1/audio/speech",
    )
    .await?;
    let (prompt, input) = hold_input(&g, &headers, text, "input").await?;
    let job = Job {
        prompt: &prompt,
        input,
        max_units: None,
    };
    let params = vec![Value::Object(params).to_string()];
    let d = run_tasks(&g, &key, &candidates, job, params)
        .await?
        .into_iter()
        .next()
        .ok_or_else(|| ApiError::internal("running the task", "no output"))?;
    let mime = if format == "pcm" {
        "audio/pcm"
    } else {
        "audio/wav"
    };
    let wav_ok = format == "pcm" || flownet_core::mime::sniff(&d.bytes) == "audio/wav";
    if !wav_ok {
        return Err(ApiError::new(
            StatusCode::BAD_GATEWAY,
            "not_audio",
            format!("task {}'s output is not a WAV file", d.task.id),
        ));
    }
    let fields = task_fields(&d.task, &meta.id);
    let mut response = (StatusCode::OK, [(header::CONTENT_TYPE, mime)], d.bytes).into_response();
    for (name, value) in [
        ("x-flownet-task-id", fields.get("task_id")),
        ("x-flownet-sha256", fields.get("sha256")),
        ("x-flownet-nft-id", fields.get("nft_id")),
        ("x-flownet-model", Some(&json!(meta.id))),
    ] {
        let text = match value {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Null) | None => continue,
            Some(v) => v.to_string(),
        };
        if let Ok(v) = axum::http::HeaderValue::from_str(&text) {
            response.headers_mut().insert(name, v);
        }
    }
    Ok(response)
}
