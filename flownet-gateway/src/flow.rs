//! The gateway on Flow (`flownet web --network emulator|testnet|mainnet`).
//!
//! The page's reads, the event streams, the blobs and the OpenAI API go through the
//! same [`Ledger`](flownet_core::Ledger) trait as on the embedded ledger, here a
//! [`FlowLedger`]. What changes is who signs: a Flow transaction must be signed by
//! its proposer's key, which never leaves the browser, so the gateway cannot relay a
//! user's envelope as it does on the embedded ledger. Instead the page builds and
//! sends the transaction itself with FCL, and the gateway helps:
//!
//! - `GET /api/flow/config`: the network, its contract addresses, the payer's
//!   address, the FCL discovery wallet, where the Access API is;
//! - `POST /api/flow/transaction`: the Cadence and JSON-Cadence arguments of a core
//!   action, from [`FlowLedger::arguments`], the mapping the ledger itself uses;
//! - `POST /api/flow/sign`: the payer's envelope signature of a transaction the user
//!   signed (a [`SponsorRequest`]): the sponsor's sign-only path
//!   ([`Payer::sign_envelope`]: FlowNet templates only, payload signatures checked,
//!   rate-limited), or, for the faucet, the sponsor as payer and second authorizer
//!   ([`Payer::sign_faucet`]);
//! - `POST /api/flow/challenge` `{"public_key": hex}`: the sponsor's proof-of-work
//!   challenge for a new account of that key (`null` when it asks none); the page
//!   solves it and relays its `create_account` envelope with the proof in the
//!   `X-FlowNet-Pow: <challenge hex>.<nonce>` header. The gateway does none of the
//!   work itself, so a public gateway is no way around the sponsor's price;
//! - `GET /api/flow/transactions/{id}`: waits for the seal and answers the outcome
//!   (task id, NFT, amount credited) read from the events, as a receipt carries it;
//! - `/api/flow/access/…`: the Access API's REST endpoints, proxied, so the page
//!   talks only to its own origin (its Content-Security-Policy allows nothing else).
//!
//! Accounts are created by relaying a `create_account` envelope the browser signed:
//! [`FlowLedger`] checks it and has the sponsor (in process, or the service's
//! `/v1/sponsor/accounts`) create a Flow account whose key is the browser's P-256
//! key, signing with SHA2-256.

use std::{sync::Arc, time::Duration};

use axum::{
    Json, Router,
    body::Bytes,
    extract::{Path, RawQuery, State},
    http::{HeaderMap, Method, StatusCode, header},
    response::{IntoResponse, Response},
    routing::{any, get, post},
};
use flownet_chain::flow::{FlowLedger, SponsorError, Template, errors};
use flownet_core::Action;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::sponsor::{SignedByPayer, SponsorRequest};
use crate::{
    api::check_sizes,
    api_error::{ApiError, ApiResult},
    gateway::{Gateway, json_body},
};

/// The most gas a transaction the gateway's payer signs may use: Flow's maximum.
/// Each template is built with its own, lower limit ([`Template::gas_limit`]), the
/// most the sponsor pays for it.
pub const GAS_LIMIT: u64 = 9999;

/// The header a relayed `create_account` envelope carries its proof of work in.
pub const POW_HEADER: &str = "x-flownet-pow";

/// The proof of an `X-FlowNet-Pow: <challenge hex>.<nonce>` header.
pub fn proof_of(headers: &HeaderMap) -> ApiResult<Option<flownet_chain::flow::Proof>> {
    let Some(v) = headers.get(POW_HEADER) else {
        return Ok(None);
    };
    let bad = || {
        ApiError::bad_request(
            "invalid_proof",
            format!("{POW_HEADER} must be <challenge hex>.<nonce>"),
        )
    };
    let (challenge, nonce) = v
        .to_str()
        .ok()
        .and_then(|v| v.split_once('.'))
        .ok_or_else(bad)?;
    Ok(Some(flownet_chain::flow::Proof {
        challenge: challenge.to_owned(),
        nonce: nonce.parse().map_err(|_| bad())?,
    }))
}

pub use crate::gateway::FlowSide;

impl FlowSide {
    /// The default REST endpoint of a network's Access API.
    pub fn default_rest(network: &str) -> Option<&'static str> {
        match network {
            "emulator" => Some("http://127.0.0.1:8888"),
            "testnet" => Some("https://rest-testnet.onflow.org"),
            "mainnet" => Some("https://rest-mainnet.onflow.org"),
            _ => None,
        }
    }

    /// The origin of the discovery wallet, for the page's Content-Security-Policy.
    pub fn discovery_origin(&self) -> Option<String> {
        origin_of(self.discovery.as_deref()?)
    }
}

type G = State<Arc<Gateway>>;

fn flow(g: &Gateway) -> ApiResult<&FlowSide> {
    g.flow.as_ref().ok_or_else(|| {
        ApiError::not_found(
            "this gateway serves the embedded ledger, not Flow (start it with --network emulator|testnet|mainnet)",
        )
        .with_type("invalid_request_error")
    })
}

/// The routes of the Flow side; they answer 404 on the embedded ledger.
pub fn routes() -> Router<Arc<Gateway>> {
    Router::new()
        .route("/api/flow/config", get(config))
        .route("/api/flow/transaction", post(build))
        .route("/api/flow/sign", post(sign))
        .route("/api/flow/challenge", post(challenge))
        .route("/api/flow/transactions/{id}", get(transaction))
        .route("/api/flow/access/{*path}", any(access))
}

async fn config(State(g): G) -> ApiResult<Json<Value>> {
    let f = flow(&g)?;
    let network = f.ledger.network();
    let marketplace = f.ledger.marketplace();
    Ok(Json(json!({
        "network": network.name,
        "chain_id": network.chain_id,
        "access_node": f.rest.as_ref().map(|_| "/api/flow/access"),
        "contracts": network.contracts,
        "marketplace": marketplace,
        "event_prefix": format!("A.{}.FlowNetMarketplace.", hex::encode(marketplace.0)),
        "payer": f.payer.as_ref().map(|p| p.address()),
        // FCL names the payer's key before the payer signs.
        "payer_key_index": f.payer.as_ref().map_or(0, |p| p.key_index()),
        "faucet": f.payer.as_ref().is_some_and(|p| p.onboards()),
        "create_account": f.payer.as_ref().is_some_and(|p| p.onboards()),
        "discovery_wallet": f.discovery,
        "gas_limit": GAS_LIMIT,
    })))
}

#[derive(Debug, Deserialize)]
struct BuildRequest {
    action: Action,
}

/// `POST /api/flow/transaction` `{"action": {...}}`: the Cadence and the arguments
/// that carry out the action, and who must authorize it.
async fn build(
    State(g): G,
    headers: HeaderMap,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> ApiResult<Json<Value>> {
    let f = flow(&g)?;
    let req: BuildRequest = json_body(&headers, body)?;
    if matches!(req.action, Action::CreateAccount { .. }) {
        return Err(ApiError::bad_request(
            "invalid_action",
            "create_account is relayed as a signed envelope (POST /api/relay), not sent with FCL",
        ));
    }
    check_sizes(&req.action)?;
    let (template, args) = FlowLedger::arguments(&req.action)?;
    let cadence = f
        .ledger
        .network()
        .template(template)
        .map_err(flownet_core::Error::from)?;
    let arguments = args
        .iter()
        .map(|a| serde_json::from_slice::<Value>(&a.to_json_bytes()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| ApiError::internal("encoding arguments", e))?;
    // The faucet's second authorizer is the sponsor, which holds the grant.
    let authorizers = if template == Template::Faucet {
        json!(["user", "sponsor"])
    } else {
        json!(["user"])
    };
    Ok(Json(json!({
        "template": format!("{template:?}"),
        "cadence": cadence,
        "arguments": arguments,
        "authorizers": authorizers,
        "gas_limit": template.gas_limit().min(GAS_LIMIT),
    })))
}

#[derive(Debug, Deserialize)]
struct ChallengeRequest {
    public_key: flownet_core::PublicKey,
}

/// `POST /api/flow/challenge`: the sponsor's proof-of-work challenge for a new
/// account of the key, or `null`.
async fn challenge(
    State(g): G,
    headers: HeaderMap,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> ApiResult<Json<Value>> {
    let f = flow(&g)?;
    let req: ChallengeRequest = json_body(&headers, body)?;
    let c = f.ledger.account_challenge(&req.public_key).await?;
    Ok(Json(json!(c)))
}

fn refused(e: SponsorError) -> ApiError {
    let (status, code) = match &e {
        SponsorError::NotWhitelisted { .. } => (StatusCode::FORBIDDEN, "not_whitelisted"),
        SponsorError::RateLimited { .. } => (StatusCode::TOO_MANY_REQUESTS, "rate_limit_exceeded"),
        SponsorError::BadPayloadSignature { .. } => (StatusCode::UNAUTHORIZED, "bad_signature"),
        SponsorError::PayerMismatch { .. } => (StatusCode::BAD_REQUEST, "payer_mismatch"),
        SponsorError::SponsorAsSigner(_) => (StatusCode::BAD_REQUEST, "sponsor_as_signer"),
        SponsorError::GasLimit { .. } => (StatusCode::BAD_REQUEST, "gas_limit"),
        SponsorError::Transaction(_) => (StatusCode::BAD_REQUEST, "invalid_transaction"),
        SponsorError::Access(_) => (StatusCode::BAD_GATEWAY, "network"),
        SponsorError::NotOffered(_) => (StatusCode::FORBIDDEN, "not_offered"),
        SponsorError::InvalidEnvelope(_) | SponsorError::WrongLedger { .. } => {
            (StatusCode::BAD_REQUEST, "invalid_envelope")
        }
        SponsorError::BadEnvelopeSignature(_) => (StatusCode::UNAUTHORIZED, "bad_signature"),
        SponsorError::AccountExists(_) => (StatusCode::CONFLICT, "already_exists"),
        SponsorError::TooManyAccounts { .. } => {
            (StatusCode::TOO_MANY_REQUESTS, "rate_limit_exceeded")
        }
        SponsorError::FaucetUsed(_) => (StatusCode::FORBIDDEN, "faucet"),
        SponsorError::BadFaucet(_) => (StatusCode::BAD_REQUEST, "invalid_transaction"),
        SponsorError::Execution(_) => (StatusCode::UNPROCESSABLE_ENTITY, "execution"),
        SponsorError::ProofOfWork(_) => (StatusCode::FORBIDDEN, "proof_of_work"),
        SponsorError::Budget { .. } => (StatusCode::TOO_MANY_REQUESTS, "rate_limit_exceeded"),
        SponsorError::BadArguments(_) => (StatusCode::BAD_REQUEST, "invalid_transaction"),
        SponsorError::FaucetReserved { .. } => (StatusCode::CONFLICT, "faucet"),
        SponsorError::State(_) => (StatusCode::SERVICE_UNAVAILABLE, "network"),
    };
    let mut err = ApiError::new(status, code, format!("the sponsor refused: {e}"));
    if let SponsorError::RateLimited { retry_after_ms, .. }
    | SponsorError::TooManyAccounts { retry_after_ms }
    | SponsorError::Budget { retry_after_ms, .. } = e
    {
        err.retry_after = Some(retry_after_ms.div_ceil(1000).max(1));
    }
    err
}

/// `POST /api/flow/sign`: the payer's envelope signature of a transaction whose
/// payload its proposer signed.
async fn sign(
    State(g): G,
    headers: HeaderMap,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> ApiResult<Json<SignedByPayer>> {
    let f = flow(&g)?;
    let req: SponsorRequest = json_body(&headers, body)?;
    let tx = req
        .to_transaction()
        .map_err(|e| ApiError::bad_request("invalid_transaction", format!("{e:#}")))?;
    let faucet = f
        .ledger
        .network()
        .template(Template::Faucet)
        .map_err(flownet_core::Error::from)?;
    let payer = f.payer.as_ref().ok_or_else(|| {
        ApiError::new(
            StatusCode::FORBIDDEN,
            "no_sponsor",
            "this gateway has no sponsor to pay for transactions (set FLOWNET_FLOW_SPONSOR or FLOWNET_FLOW_SPONSOR_URL)",
        )
    })?;
    // The faucet: the sponsor is payer and second authorizer (its envelope
    // signature covers both roles), after the user's payload signature and the
    // account's one grant are checked.
    let signed = if tx.script == faucet.as_bytes() {
        payer.sign_faucet(tx).await
    } else {
        payer.sign_envelope(tx).await
    }
    .map_err(refused)?;
    let payer = payer.address();
    Ok(Json(SignedByPayer::of(&signed, payer).map_err(refused)?))
}

/// `GET /api/flow/transactions/{id}`: waits for the transaction's seal; its
/// outcome, or the core error its Cadence rejection maps to.
async fn transaction(State(g): G, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    let started = std::time::Instant::now();
    let f = flow(&g)?;
    let raw: [u8; 32] = hex::decode(id.trim_start_matches("0x"))
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| {
            ApiError::bad_request(
                "invalid_transaction_id",
                "a transaction id is 32 bytes of hex",
            )
        })?;
    // Within the quick routes' own timeout.
    let wait = g
        .config
        .request_timeout
        .saturating_sub(Duration::from_secs(2));
    let r = f
        .ledger
        .client()
        .wait_sealed(raw, Duration::from_millis(100), wait)
        .await
        .map_err(flownet_core::Error::from)?;
    if !r.error_message.is_empty() {
        return Err(ApiError::from_core(&errors::from_execution_error(
            &r.error_message,
        )));
    }
    let outcome = f.ledger.outcome(&r)?;
    // A task submitted through this page: watched from its seal, for its events and
    // the submit-to-delivery latency, as the relay does on the embedded ledger.
    if r.events
        .iter()
        .any(|e| e.r#type.ends_with("FlowNetMarketplace.TaskSubmitted"))
        && let Some(id) = outcome.task
        && let Ok(Some(task)) = g.ledger.task(id).await
    {
        g.hub
            .track_submit(task, g.ledger.info().await?.now, started);
    }
    Ok(Json(json!({
        "id": hex::encode(raw),
        "height": r.block_height,
        "outcome": outcome,
    })))
}

/// The REST endpoints FCL uses; nothing else of the Access API is proxied.
const ACCESS_GET: [&str; 8] = [
    "v1/blocks",
    "v1/accounts/",
    "v1/transactions/",
    "v1/transaction_results/",
    "v1/events",
    "v1/collections/",
    "v1/network/parameters",
    "v1/node_version_info",
];
const ACCESS_POST: [&str; 2] = ["v1/transactions", "v1/scripts"];

/// `/api/flow/access/{path}`: the Access API's REST answer, passed through.
async fn access(
    State(g): G,
    method: Method,
    Path(path): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    let f = flow(&g)?;
    let base = f.rest.as_deref().ok_or_else(|| {
        ApiError::not_found("this gateway knows no Access API REST endpoint (pass --flow-rest)")
    })?;
    let allowed = match method {
        Method::GET => ACCESS_GET.iter().any(|p| path.starts_with(p)),
        Method::POST => ACCESS_POST.contains(&path.as_str()),
        _ => false,
    };
    if !allowed || path.contains("..") {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "not_proxied",
            format!("the gateway does not pass {method} /{path} to the Access API"),
        ));
    }
    let mut url = format!("{}/{path}", base.trim_end_matches('/'));
    if let Some(q) = query {
        url.push('?');
        url.push_str(&q);
    }
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json")
        .to_owned();
    let agent = g.http.clone();
    let (status, mime, bytes) = tokio::task::spawn_blocking(move || {
        let r = if method == Method::POST {
            agent
                .post(&url)
                .header("content-type", &content_type)
                .send(&body[..])
        } else {
            agent.get(&url).call()
        };
        let mut r = r.map_err(|e| format!("{url}: {e}"))?;
        let mime = r
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("application/json")
            .to_owned();
        let bytes = r
            .body_mut()
            .with_config()
            .limit(16 << 20)
            .read_to_vec()
            .map_err(|e| format!("{url}: {e}"))?;
        Ok::<_, String>((r.status().as_u16(), mime, bytes))
    })
    .await
    .map_err(|e| ApiError::internal("proxying the Access API", e))?
    .map_err(|e| {
        ApiError::new(
            StatusCode::BAD_GATEWAY,
            "network",
            format!("the Access API cannot be reached: {e}"),
        )
    })?;
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY);
    Ok((status, [(header::CONTENT_TYPE, mime)], bytes).into_response())
}

/// The origin (`scheme://host[:port]`) of an http(s) URL.
pub fn origin_of(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    let host = rest.split(['/', '?', '#']).next()?;
    let ok = !host.is_empty()
        && (scheme == "http" || scheme == "https")
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || ".-:[]".contains(c));
    ok.then(|| format!("{scheme}://{host}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_origin_is_scheme_and_host_only() {
        assert_eq!(
            origin_of("http://localhost:8701/fcl/authn").as_deref(),
            Some("http://localhost:8701")
        );
        assert_eq!(
            origin_of("https://fcl-discovery.onflow.org/testnet/authn?x=1").as_deref(),
            Some("https://fcl-discovery.onflow.org")
        );
        assert_eq!(origin_of("javascript:alert(1)"), None);
        assert_eq!(origin_of("https://a b/"), None);
        assert_eq!(origin_of("https://x.org;script-src *"), None);
    }
}
