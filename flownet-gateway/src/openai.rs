//! The OpenAI-compatible API: `GET /v1/models`, `POST /v1/images/generations`, and
//! `POST /v1/completions` and `/v1/embeddings` for the models of those kinds that the
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

/// Picks the model (or the best one of `kind`) and the best node for it within the
/// key's max price.
async fn choose(
    g: &Gateway,
    key: &ApiKey,
    model: Option<&str>,
    kind: TaskKind,
    endpoint: &str,
) -> ApiResult<(ModelMeta, Node, OfferedModel)> {
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
    let cheapest = match flownet_core::best_offer(&nodes, &meta.id, Some(key.max_price)) {
        Ok((node, offer)) => return Ok((meta, node.clone(), offer.clone())),
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

/// Pays for one task per `params`, waits for all and fetches their outputs. Tasks
/// still open when the wait ends are cancelled (their escrow comes back).
async fn run_tasks(
    g: &Gateway,
    key: &ApiKey,
    node: &Node,
    offer: &OfferedModel,
    prompt: &str,
    params: Vec<String>,
) -> ApiResult<Vec<Delivered>> {
    let wallet = g.wallet(key.address, &key.key);
    let needed = Amount(offer.price.0.saturating_mul(params.len() as u64));
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
    let mut submitted: Vec<(Task, u64)> = Vec::new();
    for p in &params {
        match wallet
            .submit(node.owner, &offer.model_id, prompt, p, offer.price)
            .await
        {
            Ok(id) => {
                let task = g.ledger.task(id).await?.ok_or_else(|| {
                    ApiError::internal("reading a task", "just submitted task is missing")
                })?;
                let now = task.submitted_at;
                g.hub.track_submit(task.clone(), now, started);
                submitted.push((task, now));
            }
            Err(e) => {
                cancel_open(&wallet, submitted.iter().map(|(t, _)| t.id)).await;
                return Err(ApiError::from_core_openai(&e));
            }
        }
    }
    let deadline = started + g.config.task_timeout;
    let mut out = Vec::new();
    let mut failure = None;
    for (task, now) in &submitted {
        let left = deadline.saturating_duration_since(Instant::now());
        let state = g
            .hub
            .wait_final(task.clone(), *now, left, g.closing())
            .await;
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
                        "task {} ended {status}: node {} did not deliver and the escrow went back to the account",
                        t.id, t.node
                    ),
                )));
            }
            (status, _) => {
                failure = failure.or(Some(ApiError::new(
                    StatusCode::GATEWAY_TIMEOUT,
                    "task_timeout",
                    format!(
                        "task {} is still {status} after {} s: open tasks are cancelled and refunded; a claimed one is refunded if its node misses its deadline",
                        t.id,
                        g.config.task_timeout.as_secs()
                    ),
                )));
            }
        }
    }
    if let Some(e) = failure {
        cancel_open(&wallet, submitted.iter().map(|(t, _)| t.id)).await;
        return Err(e);
    }
    Ok(out)
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

fn flownet_fields(d: &Delivered, meta: &ModelMeta) -> Map<String, Value> {
    let t = &d.task;
    let r = t.result.as_ref();
    let mut m = Map::new();
    m.insert("task_id".into(), json!(t.id));
    m.insert("nft_id".into(), json!(t.nft));
    m.insert("sha256".into(), json!(r.map(|r| r.sha256)));
    m.insert("mime".into(), json!(r.map(|r| r.mime.clone())));
    m.insert("node".into(), json!(t.node));
    m.insert("model".into(), json!(meta.id));
    m.insert("weights_sha256".into(), json!(t.weights_sha256));
    m.insert("price".into(), json!(t.price.to_string()));
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

pub async fn images(State(g): G, headers: HeaderMap, body: Body) -> ApiResult<Json<Value>> {
    let key = authenticate(&g, &headers)?;
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
    let (meta, node, offer) = choose(
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
    let delivered = run_tasks(&g, &key, &node, &offer, &prompt, params).await?;
    let base_url = base_url(&g, &headers);
    let data: Vec<Value> = delivered
        .iter()
        .map(|d| {
            let mut item = flownet_fields(d, &meta);
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

fn base_url(g: &Gateway, headers: &HeaderMap) -> String {
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

/// Text completion by a text-generation model: the prompt is the task's prompt and the
/// output's text is the completion. Parameters beyond the prompt are the model's own
/// and are refused here rather than mistranslated.
pub async fn completions(State(g): G, headers: HeaderMap, body: Body) -> ApiResult<Json<Value>> {
    let key = authenticate(&g, &headers)?;
    let req: CompletionRequest = json_body(&headers, body)?;
    refuse_unknown(&req.extra, &["user", "n", "stream"], "model and prompt")?;
    if req.extra.get("stream").and_then(Value::as_bool) == Some(true) {
        return Err(ApiError::bad_request(
            "stream_unsupported",
            "streaming is not supported: leave `stream` out",
        )
        .with_param("stream"));
    }
    if req
        .extra
        .get("n")
        .and_then(Value::as_u64)
        .is_some_and(|n| n != 1)
    {
        return Err(ApiError::bad_request("invalid_n", "`n` must be 1").with_param("n"));
    }
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
    let (meta, node, offer) = choose(
        &g,
        &key,
        req.model.as_deref(),
        TaskKind::TextGeneration,
        "/v1/completions",
    )
    .await?;
    let delivered = run_tasks(&g, &key, &node, &offer, &prompt, vec!["{}".into()]).await?;
    let d = &delivered[0];
    let text = String::from_utf8(d.bytes.clone()).map_err(|_| {
        ApiError::new(
            StatusCode::BAD_GATEWAY,
            "not_text",
            format!("task {}'s output is not UTF-8 text", d.task.id),
        )
    })?;
    let mut choice = Map::new();
    choice.insert("text".into(), json!(text));
    choice.insert("index".into(), json!(0));
    choice.insert("logprobs".into(), Value::Null);
    choice.insert("finish_reason".into(), json!("stop"));
    Ok(Json(json!({
        "id": format!("cmpl-flownet-{}", d.task.id),
        "object": "text_completion",
        "created": d.task.submitted_at,
        "model": meta.id,
        "choices": [choice],
        "usage": { "prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0 },
        "flownet": flownet_fields(d, &meta),
    })))
}

#[derive(Debug, Deserialize)]
pub struct EmbeddingRequest {
    model: Option<String>,
    input: Option<Value>,
    #[serde(flatten)]
    extra: Map<String, Value>,
}

/// Embeddings by an embedding model; its output must be a JSON array of numbers or an
/// object with an `embedding` array.
pub async fn embeddings(State(g): G, headers: HeaderMap, body: Body) -> ApiResult<Json<Value>> {
    let key = authenticate(&g, &headers)?;
    let req: EmbeddingRequest = json_body(&headers, body)?;
    refuse_unknown(&req.extra, &["user", "encoding_format"], "model and input")?;
    // OpenAI's clients ask for base64 (little-endian f32s) by default.
    let base64 = match req.extra.get("encoding_format").and_then(Value::as_str) {
        None | Some("float") => false,
        Some("base64") => true,
        Some(other) => {
            return Err(ApiError::bad_request(
                "invalid_encoding_format",
                format!("`encoding_format` must be float or base64, not {other:?}"),
            )
            .with_param("encoding_format"));
        }
    };
    let input = match req.input {
        Some(Value::String(s)) => s,
        _ => {
            return Err(
                ApiError::bad_request("invalid_input", "`input` must be one string")
                    .with_param("input"),
            );
        }
    };
    check_prompt(&input, "input")?;
    let (meta, node, offer) = choose(
        &g,
        &key,
        req.model.as_deref(),
        TaskKind::Embedding,
        "/v1/embeddings",
    )
    .await?;
    let delivered = run_tasks(&g, &key, &node, &offer, &input, vec!["{}".into()]).await?;
    let d = &delivered[0];
    let parsed: Value = serde_json::from_slice(&d.bytes).unwrap_or(Value::Null);
    let vector = match &parsed {
        Value::Array(_) => parsed.clone(),
        Value::Object(o) => o.get("embedding").cloned().unwrap_or(Value::Null),
        _ => Value::Null,
    };
    if !vector
        .as_array()
        .is_some_and(|a| a.iter().all(Value::is_number))
    {
        return Err(ApiError::new(
            StatusCode::BAD_GATEWAY,
            "not_an_embedding",
            format!("task {}'s output is not a JSON array of numbers", d.task.id),
        ));
    }
    let embedding = if base64 {
        let bytes: Vec<u8> = vector
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_f64)
            .flat_map(|x| (x as f32).to_le_bytes())
            .collect();
        json!(base64::engine::general_purpose::STANDARD.encode(bytes))
    } else {
        vector
    };
    Ok(Json(json!({
        "object": "list",
        "data": [{ "object": "embedding", "index": 0, "embedding": embedding }],
        "model": meta.id,
        "usage": { "prompt_tokens": 0, "total_tokens": 0 },
        "flownet": flownet_fields(d, &meta),
    })))
}

/// Chat needs a chat model, which no node serves: answered with OpenAI's error for a
/// missing model, so clients fail clearly.
pub async fn chat(State(g): G, headers: HeaderMap) -> ApiResult<Json<Value>> {
    authenticate(&g, &headers)?;
    Err(ApiError::new(
        StatusCode::NOT_FOUND,
        "model_not_found",
        "no chat model is served on this marketplace: text-generation models answer on /v1/completions (see GET /v1/models)",
    )
    .with_type("invalid_request_error")
    .with_param("model"))
}
