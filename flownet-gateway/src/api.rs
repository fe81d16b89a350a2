//! The page's API: reads of the ledger, the relay of signed envelopes, task events and
//! output blobs.

use std::{net::IpAddr, sync::Arc, time::Instant};

use axum::{
    Json,
    body::Bytes,
    extract::{Path, Query, State, rejection::QueryRejection},
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response, Sse, sse::KeepAlive},
};
use flownet_core::{
    Action, Address, BlobStore, Digest32, Endpoint, Node, OutputRef, SignedEnvelope, Task, TaskId,
    TaskKind, TaskQuery, TaskStatus, endpoint::Scheme, rules,
};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::{
    api_error::{ApiError, ApiResult},
    events,
    gateway::{Gateway, json_body},
};
use flownet_node::blobs::{FetchError, fetch_checked, sniff_mime};

type G = State<Arc<Gateway>>;

fn parse_address(s: &str) -> ApiResult<Address> {
    s.parse()
        .map_err(|e: flownet_core::Error| ApiError::bad_request("invalid_address", e.to_string()))
}

fn parse_task_id(s: &str) -> ApiResult<TaskId> {
    s.parse().map_err(|_| {
        ApiError::bad_request(
            "invalid_task_id",
            format!("invalid task id {s:?}: expected a positive integer"),
        )
    })
}

fn query<T>(q: Result<Query<T>, QueryRejection>) -> ApiResult<T> {
    q.map(|Query(q)| q)
        .map_err(|e| ApiError::bad_request("invalid_query", e.body_text()))
}

pub async fn info(State(g): G) -> ApiResult<Json<Value>> {
    let info = g.ledger.info().await?;
    Ok(Json(json!({
        "ledger": info.id,
        "network": info.network,
        "now": info.now,
        "height": info.height,
        "config": info.config,
        "faucet_amount": info.config.faucet_amount.to_string(),
        "globals": info.globals,
        "limits": {
            "max_prompt_bytes": rules::MAX_PROMPT_BYTES,
            "max_params_bytes": rules::MAX_PARAMS_BYTES,
            "max_body_bytes": g.config.max_body_bytes,
            "max_image_bytes": g.config.max_image_bytes,
        },
        "openai": g.keys.is_some(),
        "version": env!("CARGO_PKG_VERSION"),
    })))
}

/// A node as the page shows it: stats computed, prices in tokens and in units, and
/// each model's kind where the gateway knows it.
pub fn node_json(g: &Gateway, n: &Node) -> Value {
    json!({
        "owner": n.owner,
        "name": n.name,
        "endpoint": n.endpoint,
        "active": n.active,
        "score": n.stats.score(),
        "ratings": n.stats.ratings_count,
        "reliability": n.stats.reliability(),
        "community_score": n.stats.community_score(),
        "community_ratings": n.stats.community_count,
        "fulfilled": n.stats.fulfilled,
        "missed": n.stats.missed,
        "declined": n.stats.declined,
        // What the payers' rated tasks cost in all: what the score's weight rests on.
        "rated_paid": flownet_core::Amount(n.stats.rated_paid).to_string(),
        "reliability_bound": n.stats.reliability_bound(),
        "rank_key": n.stats.rank_key(),
        "models": n.models.iter().map(|m| {
            let meta = g.models.get(&m.model_id);
            json!({
                "model_id": m.model_id,
                "weights_sha256": m.weights_sha256,
                "price": m.price.to_string(),
                "price_units": m.price.0,
                "unit": m.unit,
                "kind": meta.map(|m| m.kind),
                "output_mime": meta.map(|m| m.output_mime.as_str()),
            })
        }).collect::<Vec<_>>(),
    })
}

pub async fn models(State(g): G) -> ApiResult<Json<Value>> {
    let nodes = g.ledger.nodes().await?;
    let mut models: Vec<&crate::gateway::ModelMeta> = g.models.values().collect();
    models.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(Json(json!({
        "models": models.iter().map(|m| {
            let offered_by = nodes.iter().filter(|n| n.active && n.offer(&m.id).is_some()).count();
            json!({
                "id": m.id, "kind": m.kind, "name": m.name, "output_mime": m.output_mime,
                "prompt_mapping": m.prompt_mapping, "defaults": m.defaults, "size": m.size,
                "offered_by": offered_by,
            })
        }).collect::<Vec<_>>()
    })))
}

pub async fn nodes(State(g): G) -> ApiResult<Json<Value>> {
    let nodes = g.ledger.nodes().await?;
    Ok(Json(json!({
        "nodes": nodes.iter().map(|n| node_json(&g, n)).collect::<Vec<_>>()
    })))
}

pub async fn node(State(g): G, Path(owner): Path<String>) -> ApiResult<Json<Value>> {
    let owner = parse_address(&owner)?;
    let node = g
        .ledger
        .node(owner)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no node {owner}")))?;
    Ok(Json(node_json(&g, &node)))
}

pub async fn account(State(g): G, Path(address): Path<String>) -> ApiResult<Json<Value>> {
    let address = parse_address(&address)?;
    let a = g
        .ledger
        .account(address)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no account {address}")))?;
    Ok(Json(json!({
        "address": a.address,
        "public_key": a.public_key,
        "hash_algo": a.hash_algo,
        "sequence": a.sequence,
        "balance": a.balance.to_string(),
        "balance_units": a.balance.0,
        "faucet_used": a.faucet_used,
    })))
}

#[derive(Debug, Deserialize)]
pub struct TasksQuery {
    requester: Option<String>,
    node: Option<String>,
    status: Option<String>,
    after: Option<TaskId>,
    limit: Option<u32>,
}

/// Most tasks one listing returns.
const MAX_LIST: u32 = 200;

pub async fn tasks(
    State(g): G,
    q: Result<Query<TasksQuery>, QueryRejection>,
) -> ApiResult<Json<Value>> {
    let q = query(q)?;
    let query = TaskQuery {
        requester: q.requester.as_deref().map(parse_address).transpose()?,
        node: q.node.as_deref().map(parse_address).transpose()?,
        status: q
            .status
            .as_deref()
            .map(|s| {
                s.parse::<TaskStatus>()
                    .map_err(|e| ApiError::bad_request("invalid_status", e.to_string()))
            })
            .transpose()?,
        after: q.after,
        limit: Some(q.limit.unwrap_or(50).min(MAX_LIST)),
    };
    let tasks = g.ledger.tasks(query).await?;
    Ok(Json(with_cids(json!({ "tasks": tasks }))))
}

pub async fn task(State(g): G, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    let id = parse_task_id(&id)?;
    let task = load_task(&g, id).await?;
    let ratings = g.ledger.ratings(id).await?;
    Ok(Json(with_cids(json!({ "task": task, "ratings": ratings }))))
}

/// A JSON view with a `cid` beside each blob of one block.
fn with_cids(mut v: Value) -> Value {
    flownet_core::cid::add_cids(&mut v);
    v
}

async fn load_task(g: &Gateway, id: TaskId) -> ApiResult<Task> {
    g.ledger
        .task(id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no task {id}")))
}

/// Counts the open event streams, all and per client, for as long as one lives.
struct StreamGuard(Arc<Gateway>, IpAddr);

impl StreamGuard {
    /// Opens a stream for `client` within the global and per-client caps.
    fn open(g: &Arc<Gateway>, client: Option<Client>) -> ApiResult<Self> {
        if g.metrics.sse_streams() >= g.config.max_event_streams {
            return Err(too_many_streams());
        }
        let ip = client.map_or(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED), |c| {
            flownet_core::rate::client_key(c.0.0.ip())
        });
        if !g
            .streams_per_ip
            .try_open(&ip, g.config.max_event_streams_per_ip)
        {
            return Err(too_many_streams());
        }
        g.metrics.sse_opened();
        Ok(Self(g.clone(), ip))
    }
}

impl Drop for StreamGuard {
    fn drop(&mut self) {
        self.0.metrics.sse_closed();
        self.0.streams_per_ip.close(&self.1);
    }
}

type Client = axum::Extension<axum::extract::ConnectInfo<std::net::SocketAddr>>;

pub async fn task_events(
    State(g): G,
    client: Option<Client>,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let id = parse_task_id(&id)?;
    let guard = StreamGuard::open(&g, client)?;
    let rx = match g.hub.subscribe_watched(id) {
        Some(rx) => rx,
        None => {
            let task = load_task(&g, id).await?;
            let now = match g.hub.last_now() {
                Some(now) => now,
                None => g.ledger.info().await?.now,
            };
            g.hub.subscribe(task, now)
        }
    };
    let stream = events::task_events(rx, guard, g.closing(), g.config.max_stream_duration);
    Ok(Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response())
}

fn too_many_streams() -> ApiError {
    let mut e = ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "too_many_streams",
        "too many event streams are open: poll GET /api/tasks/{id} instead",
    );
    e.retry_after = Some(5);
    e
}

/// The answer of a text-generation task as its node writes it, for the page (which
/// signed the task itself): the node's token stream relayed as OpenAI's
/// `chat.completion.chunk` events, then checked against the delivered output, whose
/// remainder (or the whole text, for a task already done) is sent from the checked
/// bytes. The last chunk carries the task's fields (`flownet`: sha256, price, cost,
/// refunded, units), then the usage, then `data: [DONE]`. A task not delivered ends
/// with an `{"error"}` event; the gateway cancels nothing here (it holds no key of the
/// requester's).
pub async fn task_stream(
    State(g): G,
    client: Option<Client>,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let id = parse_task_id(&id)?;
    let task = load_task(&g, id).await?;
    let kind = g.models.get(&task.model_id).map(|m| m.kind);
    if kind != Some(TaskKind::TextGeneration) {
        return Err(ApiError::bad_request(
            "not_text_generation",
            format!(
                "task {id} runs {}, which is not a text-generation model here: follow /api/tasks/{id}/events instead",
                task.model_id
            ),
        ));
    }
    let node = g
        .ledger
        .node(task.node)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("node {} is gone", task.node)))?;
    let guard = StreamGuard::open(&g, client)?;
    let model = task.model_id.clone();
    let stream = crate::stream::ChatStream {
        id: format!("chatcmpl-flownet-{id}"),
        model: model.clone(),
        include_usage: true,
        wallet: None,
        fields: Box::new(move |t, _| crate::openai::task_fields(t, &model)),
        guard: Some(Box::new(guard)),
    };
    Ok(crate::stream::relay(g, task, node, stream))
}

#[derive(Debug, Deserialize)]
pub struct OutputsQuery {
    /// Marks the outputs this account has rated, and leaves out its own.
    viewer: Option<String>,
    limit: Option<u32>,
}

/// The newest fulfilled tasks, for rating: with what their bounty still pays and
/// whether the viewer rated them.
pub async fn outputs(
    State(g): G,
    q: Result<Query<OutputsQuery>, QueryRejection>,
) -> ApiResult<Json<Value>> {
    let q = query(q)?;
    let viewer = q.viewer.as_deref().map(parse_address).transpose()?;
    let limit = q.limit.unwrap_or(24).clamp(1, 100) as usize;
    let total = g.ledger.info().await?.globals.task_count;
    // Tasks come oldest first: read windows backwards from the newest.
    let mut found: Vec<Task> = Vec::new();
    let mut upper = total;
    const WINDOW: u64 = 500;
    while upper > 0 && found.len() < limit {
        let lower = upper.saturating_sub(WINDOW);
        let mut window = g
            .ledger
            .tasks(TaskQuery {
                status: Some(TaskStatus::Fulfilled),
                after: Some(lower),
                limit: Some(WINDOW as u32),
                ..TaskQuery::default()
            })
            .await?;
        window.retain(|t| t.id <= upper && Some(t.requester) != viewer && Some(t.node) != viewer);
        window.reverse();
        found.extend(window);
        upper = lower;
    }
    found.truncate(limit);
    let mut out = Vec::with_capacity(found.len());
    for t in found {
        let ratings = g.ledger.ratings(t.id).await?;
        out.push(json!({
            "task": t,
            "ratings": ratings.len(),
            "rated_by_viewer": viewer.is_some_and(|v| ratings.iter().any(|r| r.rater == v)),
            "bounty_next": rules::next_bounty(&t).to_string(),
        }));
    }
    Ok(Json(with_cids(json!({ "outputs": out }))))
}

pub async fn nfts(State(g): G, Path(owner): Path<String>) -> ApiResult<Json<Value>> {
    let owner = parse_address(&owner)?;
    let nfts = g.ledger.nfts(owner).await?;
    Ok(Json(with_cids(json!({ "nfts": nfts }))))
}

#[derive(Debug, Deserialize)]
pub struct BlobQuery {
    /// The task whose output this is, so the gateway can fetch it from the node.
    task: Option<TaskId>,
}

/// Most bytes fetched from a node for one output.
const MAX_BLOB_BYTES: u64 = 32 * 1024 * 1024;

pub async fn blob(
    State(g): G,
    Path(sha): Path<String>,
    q: Result<Query<BlobQuery>, QueryRejection>,
) -> ApiResult<Response> {
    let q = query(q)?;
    let sha = Digest32::from_hex(&sha).map_err(|_| {
        ApiError::bad_request("invalid_sha256", "expected /api/blobs/<64 hex digits>")
    })?;
    if let Some(bytes) = local_blob(&g, sha).await? {
        return Ok(blob_response(bytes));
    }
    let Some(id) = q.task else {
        return Err(ApiError::not_found(format!(
            "blob {sha} is not stored here (add ?task=<id> to fetch it from its node)"
        )));
    };
    let task = load_task(&g, id).await?;
    let output = task
        .result
        .clone()
        .filter(|r| r.sha256 == sha)
        .ok_or_else(|| ApiError::not_found(format!("task {id} has no output with sha256 {sha}")))?;
    let bytes = fetch_from_node(&g, &task, &output).await?;
    Ok(blob_response(bytes))
}

/// `GET /ipfs/{cid}`: the trustless-gateway answer for a raw block this gateway keeps
/// (inputs it holds, outputs it fetched), as the node's server gives it.
pub async fn ipfs_block(
    State(g): G,
    Path(cid): Path<String>,
    axum::extract::RawQuery(q): axum::extract::RawQuery,
    headers: axum::http::HeaderMap,
) -> Response {
    flownet_node::server::ipfs_block(g.blobs.clone(), &cid, q.as_deref(), &headers).await
}

pub(crate) async fn local_blob(g: &Gateway, sha: Digest32) -> ApiResult<Option<Vec<u8>>> {
    let Some(store) = g.blobs.clone() else {
        return Ok(None);
    };
    tokio::task::spawn_blocking(move || store.get(&sha))
        .await
        .map_err(|e| ApiError::internal("reading the blob store", e))?
        .map_err(|e| ApiError::internal("reading the blob store", e))
}

/// Fetches a task's output from the node that delivered it, checks its SHA-256 and
/// keeps a copy. Only the node's own `/blobs/<sha256>` URL is fetched, so a node cannot
/// point the gateway at other addresses.
pub(crate) async fn fetch_from_node(
    g: &Gateway,
    task: &Task,
    output: &OutputRef,
) -> ApiResult<Vec<u8>> {
    if let Some(bytes) = local_blob(g, output.sha256).await? {
        return Ok(bytes);
    }
    let from_node = fetch_from_holder(g, task, output).await;
    let Err(node_error) = from_node else {
        return from_node;
    };
    // A node that is gone or does not deliver: the gateway's IPFS node may have the
    // output by its CID (added by the node that made it, pinned elsewhere).
    let Some(store) = g.blobs.clone() else {
        return Err(node_error);
    };
    let wanted = output.clone();
    let got = tokio::task::spawn_blocking(move || {
        store.fetch_from_ipfs(&wanted, flownet_node::ipfs::IPFS_TIMEOUT)
    })
    .await
    .map_err(|e| ApiError::internal("fetching an output from IPFS", e))?;
    match got {
        Some(Ok(bytes)) => Ok(bytes),
        Some(Err(e)) => {
            tracing::debug!("task {}'s output from IPFS: {e}", task.id);
            Err(node_error)
        }
        None => Err(node_error),
    }
}

/// [`fetch_from_node`] from the node's own server only.
async fn fetch_from_holder(g: &Gateway, task: &Task, output: &OutputRef) -> ApiResult<Vec<u8>> {
    let node = g
        .ledger
        .node(task.node)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("node {} is gone", task.node)))?;
    // The URL is built from the parts of the node's registered endpoint, and the
    // output must name exactly that URL.
    let expected = Endpoint::parse(&node.endpoint)
        .ok()
        .filter(|e| e.scheme() == Scheme::Http)
        .map(|e| e.blob_url(&output.sha256))
        .filter(|url| *url == output.uri);
    let Some(expected) = expected else {
        return Err(ApiError::new(
            StatusCode::BAD_GATEWAY,
            "unfetchable_output",
            format!(
                "task {}'s output is not at its node's http:// blob URL: fetch it yourself from {} and check its sha256",
                task.id, output.uri
            ),
        ));
    };
    let not_delivered = || {
        ApiError::new(
            StatusCode::BAD_GATEWAY,
            "node_did_not_deliver",
            format!(
                "the node did not deliver task {}'s output: try again later",
                task.id
            ),
        )
    };
    let key = (output.sha256, task.node);
    if g.mismatches.contains(&key) {
        return Err(not_delivered());
    }
    let agent = g.node_http.clone();
    let wanted = output.clone();
    let fetched = tokio::task::spawn_blocking(move || {
        fetch_checked(&agent, &expected, &wanted, MAX_BLOB_BYTES)
    })
    .await
    .map_err(|e| ApiError::internal("fetching an output", e))?;
    // What the node answered stays in the log: callers learn only that it did not
    // deliver, not the status or digest of whatever its endpoint reached.
    let bytes = match fetched {
        Ok(bytes) => bytes,
        Err(FetchError::Http(e)) => {
            tracing::debug!("task {}'s output from node {}: {e}", task.id, task.node);
            return Err(not_delivered());
        }
        Err(FetchError::Mismatch) => {
            tracing::debug!(
                "node {} served bytes that are not task {}'s output",
                task.node,
                task.id
            );
            g.mismatches.insert(key);
            return Err(not_delivered());
        }
    };
    if let Some(store) = g.blobs.clone() {
        let evict = g.cache.lock().unwrap_or_else(|e| e.into_inner()).keep(
            output.sha256,
            bytes.len() as u64,
            g.config.max_cache_bytes,
        );
        let copy = bytes.clone();
        let sha = output.sha256;
        // A failed cache write only costs a later refetch.
        let _ = tokio::task::spawn_blocking(move || {
            if !evict.contains(&sha) {
                let _ = store.put(&copy);
            }
            for old in evict {
                let _ = store.remove(&old);
            }
        })
        .await;
    }
    Ok(bytes)
}

/// Blobs are content-addressed: they never change, so they may be cached forever,
/// and are never rendered as active content.
fn blob_response(bytes: Vec<u8>) -> Response {
    (
        [
            (header::CONTENT_TYPE, sniff_mime(&bytes)),
            (header::CACHE_CONTROL, "public, max-age=31536000, immutable"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'none'; sandbox",
            ),
        ],
        bytes,
    )
        .into_response()
}

/// Relays an envelope the browser signed. The gateway holds no user key: it checks
/// what it cheaply can before the ledger does, so a mistake costs no sequence number,
/// then passes the envelope on unchanged.
pub async fn relay(
    State(g): G,
    client: Option<axum::Extension<axum::extract::ConnectInfo<std::net::SocketAddr>>>,
    headers: HeaderMap,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> ApiResult<Json<Value>> {
    let signed: SignedEnvelope = json_body(&headers, body).map_err(|mut e| {
        if e.code == "invalid_json" {
            e.code = "invalid_envelope".into();
            e.message = format!(
                "{} (expected a signed envelope: ledger, signer, sequence, action, signature)",
                e.message
            );
        }
        e
    })?;
    let env = &signed.envelope;
    if env.ledger != g.ledger_id {
        return Err(ApiError::bad_request(
            "wrong_ledger",
            format!(
                "the envelope is for ledger {}, this gateway serves ledger {}",
                env.ledger, g.ledger_id
            ),
        ));
    }
    check_sizes(&env.action)?;
    // On Flow the sponsor pays for every account it creates: a tighter limit than
    // the API's per-IP rate keeps one client from spending its FLOW.
    if g.is_on_flow() && matches!(env.action, Action::CreateAccount { .. }) {
        let ip = client.map_or(std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED), |c| {
            c.0.0.ip()
        });
        let key = flownet_core::rate::client_key(ip);
        if let Err(retry) = g.account_limiter.check(&key, g.config.account_rate) {
            g.metrics.rate_limited("account_creation");
            return Err(ApiError::rate_limited(
                "client address's account creations",
                retry,
            ));
        }
    }
    let action = env.action.name();
    let started = Instant::now();
    // On Flow a new account carries the browser's proof of the sponsor's work;
    // the gateway relays it and does none itself.
    let creates = matches!(env.action, Action::CreateAccount { .. });
    #[cfg(feature = "flow")]
    let sent = match &g.flow {
        Some(f) if creates => {
            let proof = crate::flow::proof_of(&headers)?;
            f.ledger.create_account_proved(signed, proof).await
        }
        _ => g.ledger.send(signed).await,
    };
    #[cfg(not(feature = "flow"))]
    let sent = {
        let _ = creates;
        g.ledger.send(signed).await
    };
    match sent {
        Ok(receipt) => {
            g.metrics.relayed(action, "accepted");
            if action == "submit"
                && let Some(id) = receipt.outcome.task
                && let Ok(Some(task)) = g.ledger.task(id).await
            {
                g.hub.track_submit(task, receipt.at, started);
            }
            Ok(Json(json!({ "receipt": receipt })))
        }
        Err(e) => {
            let err = ApiError::from_core(&e);
            let code: &'static str = match e.is_rejection() {
                true => "rejected",
                false => "failed",
            };
            g.metrics.relayed(action, code);
            Err(err)
        }
    }
}

/// Holds a task's input for a task the browser signs: a conversation too long for
/// the ledger's prompt (`{"messages": [...]}` as JSON, as the text-generation models
/// read it; at most the gateway's body limit), or an image for a model that reads one
/// (`Content-Type: image/png` or `image/jpeg`, checked to decode, at most
/// `max_image_bytes`). It is kept in the blob store by its SHA-256 and served at
/// `/api/blobs/<sha256>`, where the node fetches it and checks it against the
/// Submit's input. Answers the `input` to sign: `{sha256, size, uri}`.
pub async fn inputs(
    State(g): G,
    headers: HeaderMap,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> ApiResult<Json<Value>> {
    let image = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        })
        .is_some_and(|t| t == "image/png" || t == "image/jpeg");
    let bytes = match body {
        Ok(bytes) => bytes,
        Err(e) if image => {
            return Err(ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "request_too_large",
                format!(
                    "this gateway holds images of at most {} bytes ({e})",
                    g.config.max_image_bytes
                ),
            ));
        }
        Err(e) => {
            return Err(json_body::<Value>(&headers, Err(e))
                .err()
                .unwrap_or_else(|| ApiError::bad_request("invalid_body", "unreadable body")));
        }
    };
    if image {
        return hold_image(&g, &headers, bytes).await;
    }
    if bytes.len() > g.config.max_body_bytes {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "request_too_large",
            format!(
                "a conversation held here is at most {} bytes",
                g.config.max_body_bytes
            ),
        ));
    }
    let parsed: Value = json_body(&headers, Ok(bytes.clone()))?;
    let invalid = |why: String| {
        ApiError::bad_request(
            "invalid_conversation",
            format!("an input held here is a chat conversation {{\"messages\": [...]}}: {why}"),
        )
    };
    if !parsed.get("messages").is_some_and(Value::is_array) {
        return Err(invalid("the body has no \"messages\" array".into()));
    }
    let text = std::str::from_utf8(&bytes)
        .map_err(|_| ApiError::bad_request("invalid_body", "the body must be UTF-8 JSON"))?;
    // The model's own reading of it (roles, blank messages), before it is kept.
    flownet_infer::chat::conversation(text).map_err(|e| invalid(e.to_string()))?;
    let Some(store) = g.blobs.clone() else {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "no_blob_store",
            "this gateway keeps no blobs, so it cannot hold a long conversation: start a new one that fits the ledger's prompt",
        ));
    };
    let input = crate::openai::hold_blob(&g, &headers, store, bytes.to_vec()).await?;
    rules::check_input(&input).map_err(|e| ApiError::from_core(&e))?;
    Ok(Json(
        json!({ "sha256": input.sha256, "size": input.size, "uri": input.uri, "cid": input.cid() }),
    ))
}

/// Holds an image for a task's input (see [`inputs`]): it must be a PNG or JPEG
/// within the image models' limits, read from its header before it is kept.
async fn hold_image(g: &Gateway, headers: &HeaderMap, bytes: Bytes) -> ApiResult<Json<Value>> {
    if bytes.len() > g.config.max_image_bytes {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "request_too_large",
            format!(
                "this gateway holds images of at most {} bytes",
                g.config.max_image_bytes
            ),
        ));
    }
    let (width, height) = flownet_infer::check_image(&bytes).map_err(|e| {
        ApiError::bad_request(
            "invalid_image",
            e.to_string()
                .trim_start_matches("invalid input: ")
                .to_owned(),
        )
    })?;
    let Some(store) = g.blobs.clone() else {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "no_blob_store",
            "this gateway keeps no blobs, so it cannot hold an image: use the CLI (--image FILE)",
        ));
    };
    let input = crate::openai::hold_blob(g, headers, store, bytes.to_vec()).await?;
    rules::check_input(&input).map_err(|e| ApiError::from_core(&e))?;
    Ok(Json(json!({
        "sha256": input.sha256, "size": input.size, "uri": input.uri, "cid": input.cid(),
        "width": width, "height": height,
    })))
}

/// The prompt and params limits the relay and the Flow transaction builder apply
/// before anything is signed or paid (the core's, so a mistake costs nothing).
pub(crate) fn check_sizes(action: &Action) -> ApiResult<()> {
    if let Action::Submit { prompt, params, .. } = action {
        rules::check_prompt_size(prompt)
            .map_err(|e| ApiError::from_core(&e).with_param("prompt"))?;
        rules::check_params_size(params)
            .map_err(|e| ApiError::from_core(&e).with_param("params"))?;
    }
    Ok(())
}
