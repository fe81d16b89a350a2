//! `flownet sponsor` (the `flow` build): the gasless service. It co-signs as
//! payer only transactions that run one of FlowNet's own templates, rate
//! limited per account, creates accounts for keys that prove themselves, and
//! co-signs the faucet (see `flownet_chain::flow::sponsor`); and
//! [`HttpPayer`], its client, which `FlowLedger` uses when
//! `FLOWNET_FLOW_SPONSOR_URL` is set and no sponsor key is.
//!
//! The wire format (JSON):
//!
//! - `GET /healthz` → `ok`;
//! - `GET /v1/sponsor/info` → `{"address": "0x…", "key_index": 0, "network": "emulator",
//!   "templates": {"Submit": "<sha3-256 hex>", …}, "gas_limits": {"Submit":
//!   2500, …}, "burst": 10, "period_s": 60, "max_gas_limit": 9999,
//!   "fee_budget": 10000000, "fee_budget_per_client": 250000,
//!   "fee_period_s": 86400, "ledger_id": "<hex>", "faucet": "<sha3-256
//!   hex>", "accounts": {"burst": 30, "period_s": 60, "per_client_burst": 5,
//!   "per_client_period_s": 3600, "initial_flow": "0", "pow_difficulty":
//!   20}}`;
//! - `POST /v1/sponsor` with a [`SponsorRequest`] → `{"id": "<tx id hex>"}`;
//! - `POST /v1/sponsor/accounts/challenge` with `{"public_key": "<64 bytes
//!   hex>"}` → `{"challenge": "<hex>", "difficulty": 20, "expires": <unix
//!   s>}` (`null` when the sponsor asks no work): the proof of work to do
//!   before asking for the key's account (`flownet_chain::flow::pow`);
//! - `POST /v1/sponsor/accounts` with `{"envelope": <a core `SignedEnvelope`
//!   of `create_account` for `ledger_id`>, "pow": {"challenge": "<hex>",
//!   "nonce": <u64>}}` (or the bare envelope, where no work is asked) →
//!   `{"address": "0x…", "transaction": "<tx id hex>"}` once the account is
//!   sealed;
//! - `POST /v1/sponsor/faucet` with a [`SponsorRequest`] of `faucet.cdc`
//!   (authorizers: the user, then the sponsor) → `{"id": "<tx id hex>"}`;
//! - `POST /v1/sponsor/sign` with a [`SponsorRequest`]: the checks of
//!   `/v1/sponsor`, then the payer's envelope signature only, nothing sent
//!   (for clients that send the transaction themselves, such as the web page
//!   with FCL) → `{"address": "0x…", "key_index": 0, "signature": "<r ‖ s
//!   hex>", "id": "<tx id hex>"}`;
//! - `POST /v1/sponsor/faucet/sign`: the checks of `/v1/sponsor/faucet`, then
//!   the same signature answer, nothing sent.
//!
//! A refusal is `{"error": "...", "kind": "..."}` (with `retry_after_ms` and
//! a `Retry-After` header on 429): `bad_request`, `invalid_envelope`,
//! `wrong_ledger`, `payer_mismatch`, `sponsor_as_signer`, `gas_limit`,
//! `bad_faucet`, `bad_arguments` → 400; `bad_payload_signature`,
//! `bad_signature` → 401; `not_whitelisted`, `not_offered`, `faucet_used`,
//! `proof_of_work` → 403; `already_exists`, `faucet_reserved` → 409;
//! `execution` (the Cadence error) → 422; `rate_limited`, `budget` → 429;
//! `access` → 502; `state` (the state file failed) → 503.
//!
//! The limits, budgets, spent challenges and faucet reservations are kept in
//! the service's state file ([`SponsorState`]), so a restart refills nothing.

use std::{
    net::{IpAddr, SocketAddr},
    path::Path,
    sync::Arc,
    time::Duration,
};

use async_trait::async_trait;
use axum::{
    Json, Router,
    extract::{ConnectInfo, Request, State},
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use flownet_chain::flow::{
    AccessClient, AccountPolicy, Challenge, CreatedAccount, Network, Payer, Proof, ProposalKey,
    Sponsor, SponsorError, SponsorPolicy, SponsorState, Template, Transaction, TxSignature,
    Whitelist, sponsor::INITIAL_FLOW, sponsor::SPONSORED, sponsor::check_create_account,
    sponsor::script_hash,
};
use flownet_core::{Address, Amount, PublicKey, SignedEnvelope};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::{Error, Result};

/// The proposal key of a [`SponsorRequest`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WireProposalKey {
    pub address: Address,
    pub key_index: u32,
    pub sequence_number: u64,
}

/// One payload signature: `signature` is `r ‖ s`, hex.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WireSignature {
    pub address: Address,
    pub key_index: u32,
    pub signature: String,
}

/// `POST /v1/sponsor`: a transaction whose payload is signed by its proposer
/// and authorizers, with `payer` the sponsor's address.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SponsorRequest {
    /// The Cadence source, exactly as signed (UTF-8).
    pub script: String,
    /// Each argument's JSON-Cadence text, exactly as signed.
    pub arguments: Vec<String>,
    /// 32 bytes, hex.
    pub reference_block_id: String,
    pub gas_limit: u64,
    pub proposal_key: WireProposalKey,
    pub payer: Address,
    pub authorizers: Vec<Address>,
    pub payload_signatures: Vec<WireSignature>,
}

impl SponsorRequest {
    pub fn from_transaction(tx: &Transaction) -> Result<Self> {
        Ok(Self {
            script: String::from_utf8(tx.script.clone())
                .map_err(|e| Error::Invalid(format!("the script is not UTF-8: {e}")))?,
            arguments: tx
                .arguments
                .iter()
                .map(|a| {
                    String::from_utf8(a.clone())
                        .map_err(|e| Error::Invalid(format!("an argument is not UTF-8: {e}")))
                })
                .collect::<Result<_>>()?,
            reference_block_id: hex::encode(tx.reference_block_id),
            gas_limit: tx.gas_limit,
            proposal_key: WireProposalKey {
                address: tx.proposal_key.address,
                key_index: tx.proposal_key.key_index,
                sequence_number: tx.proposal_key.sequence_number,
            },
            payer: tx.payer,
            authorizers: tx.authorizers.clone(),
            payload_signatures: tx
                .payload_signatures
                .iter()
                .map(|s| WireSignature {
                    address: s.address,
                    key_index: s.key_index,
                    signature: hex::encode(&s.signature),
                })
                .collect(),
        })
    }

    pub fn to_transaction(&self) -> Result<Transaction> {
        let reference: [u8; 32] = hex::decode(&self.reference_block_id)
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| Error::Invalid("reference_block_id must be 32 bytes of hex".into()))?;
        let mut tx = Transaction::new(
            self.script.as_bytes().to_vec(),
            self.arguments
                .iter()
                .map(|a| a.as_bytes().to_vec())
                .collect(),
            reference,
            self.gas_limit,
            ProposalKey {
                address: self.proposal_key.address,
                key_index: self.proposal_key.key_index,
                sequence_number: self.proposal_key.sequence_number,
            },
            self.payer,
            self.authorizers.clone(),
        );
        for s in &self.payload_signatures {
            tx.payload_signatures.push(TxSignature {
                address: s.address,
                key_index: s.key_index,
                signature: hex::decode(&s.signature)
                    .map_err(|e| Error::Invalid(format!("a payload signature is not hex: {e}")))?,
            });
        }
        Ok(tx)
    }
}

struct AppState {
    sponsor: Sponsor,
    info: serde_json::Value,
}

/// `POST /v1/sponsor/accounts`: the envelope and the proof of work.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AccountRequest {
    pub envelope: SignedEnvelope,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pow: Option<Proof>,
}

/// The client's address of a request served with connect info (a test's
/// plain `axum::serve` has none: then the client buckets are not applied,
/// and the global ones still are).
fn client_of(ext: &axum::http::Extensions) -> Option<IpAddr> {
    ext.get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip())
}

type Client = Option<axum::Extension<ConnectInfo<SocketAddr>>>;

fn ip(c: &Client) -> Option<IpAddr> {
    c.as_ref().map(|c| c.0.0.ip())
}

fn refusal(e: &SponsorError) -> (StatusCode, &'static str) {
    match e {
        SponsorError::NotWhitelisted { .. } => (StatusCode::FORBIDDEN, "not_whitelisted"),
        SponsorError::RateLimited { .. } => (StatusCode::TOO_MANY_REQUESTS, "rate_limited"),
        SponsorError::BadPayloadSignature { .. } => {
            (StatusCode::UNAUTHORIZED, "bad_payload_signature")
        }
        SponsorError::PayerMismatch { .. } => (StatusCode::BAD_REQUEST, "payer_mismatch"),
        SponsorError::SponsorAsSigner(_) => (StatusCode::BAD_REQUEST, "sponsor_as_signer"),
        SponsorError::GasLimit { .. } => (StatusCode::BAD_REQUEST, "gas_limit"),
        SponsorError::Transaction(_) => (StatusCode::BAD_REQUEST, "bad_request"),
        SponsorError::Access(_) => (StatusCode::BAD_GATEWAY, "access"),
        SponsorError::NotOffered(_) => (StatusCode::FORBIDDEN, "not_offered"),
        SponsorError::InvalidEnvelope(_) => (StatusCode::BAD_REQUEST, "invalid_envelope"),
        SponsorError::WrongLedger { .. } => (StatusCode::BAD_REQUEST, "wrong_ledger"),
        SponsorError::BadEnvelopeSignature(_) => (StatusCode::UNAUTHORIZED, "bad_signature"),
        SponsorError::AccountExists(_) => (StatusCode::CONFLICT, "already_exists"),
        SponsorError::TooManyAccounts { .. } => (StatusCode::TOO_MANY_REQUESTS, "rate_limited"),
        SponsorError::FaucetUsed(_) => (StatusCode::FORBIDDEN, "faucet_used"),
        SponsorError::BadFaucet(_) => (StatusCode::BAD_REQUEST, "bad_faucet"),
        SponsorError::Execution(_) => (StatusCode::UNPROCESSABLE_ENTITY, "execution"),
        SponsorError::ProofOfWork(_) => (StatusCode::FORBIDDEN, "proof_of_work"),
        SponsorError::Budget { .. } => (StatusCode::TOO_MANY_REQUESTS, "budget"),
        SponsorError::BadArguments(_) => (StatusCode::BAD_REQUEST, "bad_arguments"),
        SponsorError::FaucetReserved { .. } => (StatusCode::CONFLICT, "faucet_reserved"),
        SponsorError::State(_) => (StatusCode::SERVICE_UNAVAILABLE, "state"),
    }
}

/// The JSON answer of a refusal, with `Retry-After` when rate limited.
pub fn refusal_response(e: &SponsorError) -> Response {
    let (status, kind) = refusal(e);
    tracing::info!(%e, "the sponsor refused");
    let retry_after_ms = match e {
        SponsorError::RateLimited { retry_after_ms, .. }
        | SponsorError::TooManyAccounts { retry_after_ms }
        | SponsorError::Budget { retry_after_ms, .. } => Some(*retry_after_ms),
        _ => None,
    };
    let mut body = json!({ "error": e.to_string(), "kind": kind });
    if let Some(ms) = retry_after_ms {
        body["retry_after_ms"] = json!(ms);
    }
    let mut r = (status, Json(body)).into_response();
    if let Some(ms) = retry_after_ms
        && let Ok(v) = HeaderValue::from_str(&ms.div_ceil(1000).max(1).to_string())
    {
        r.headers_mut().insert(header::RETRY_AFTER, v);
    }
    r
}

fn bad_request(kind: &str, message: impl std::fmt::Display) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Json(json!({ "error": message.to_string(), "kind": kind })),
    )
        .into_response()
}

/// The largest request body the account and faucet routes read.
const MAX_BODY: usize = 64 * 1024;

/// `POST /v1/sponsor/accounts/challenge`: `{"public_key": hex}` → the
/// challenge, or `null` when no work is asked.
async fn challenge_route(State(s): State<Arc<AppState>>, body: axum::body::Bytes) -> Response {
    #[derive(Deserialize)]
    struct Ask {
        public_key: PublicKey,
    }
    let ask: Ask = match serde_json::from_slice(&body) {
        Ok(a) => a,
        Err(e) => {
            return bad_request(
                "bad_request",
                format!("{e} (expected {{\"public_key\": \"<64 bytes hex>\"}})"),
            );
        }
    };
    match s.sponsor.challenge(&ask.public_key) {
        Ok(c) => Json(json!(c)).into_response(),
        Err(e) => refusal_response(&e),
    }
}

/// `POST /v1/sponsor/accounts`: the envelope and the proof of work are
/// checked before any bucket is touched, so a forger cannot spend another
/// client's budget; the sponsor then applies the global and the client's
/// bucket and creates the account.
async fn accounts_route(State(s): State<Arc<AppState>>, req: Request) -> Response {
    let client = client_of(req.extensions());
    let body = match axum::body::to_bytes(req.into_body(), MAX_BODY).await {
        Ok(b) => b,
        Err(e) => return bad_request("bad_request", format!("reading the body: {e}")),
    };
    let (signed, pow) = match serde_json::from_slice::<AccountRequest>(&body) {
        Ok(r) => (r.envelope, r.pow),
        Err(_) => match serde_json::from_slice::<SignedEnvelope>(&body) {
            Ok(s) => (s, None),
            Err(e) => {
                return bad_request(
                    "invalid_envelope",
                    format!(
                        "{e} (expected {{\"envelope\": a signed envelope (ledger, signer, sequence, action, signature), \"pow\": {{\"challenge\", \"nonce\"}}}})"
                    ),
                );
            }
        },
    };
    let Some(ledger) = s.sponsor.ledger_id() else {
        return refusal_response(&SponsorError::NotOffered("create accounts".into()));
    };
    if let Err(e) = check_create_account(&signed, ledger) {
        tracing::info!(%e, ?client, "sponsor refused an account");
        return refusal_response(&e);
    }
    match s
        .sponsor
        .create_account(&signed, pow.as_ref(), client)
        .await
    {
        Ok(c) => Json(json!({
            "address": c.address,
            "transaction": hex::encode(c.transaction),
        }))
        .into_response(),
        Err(e) => {
            tracing::info!(%e, ?client, "sponsor refused an account");
            refusal_response(&e)
        }
    }
}

/// `POST /v1/sponsor/faucet`.
async fn faucet_route(
    State(s): State<Arc<AppState>>,
    client: Client,
    body: axum::body::Bytes,
) -> Response {
    let tx = match serde_json::from_slice::<SponsorRequest>(&body)
        .map_err(|e| Error::Invalid(e.to_string()))
        .and_then(|r| r.to_transaction())
    {
        Ok(tx) => tx,
        Err(e) => return bad_request("bad_request", format!("{e:#}")),
    };
    match s.sponsor.faucet(tx, ip(&client)).await {
        Ok(id) => Json(json!({ "id": hex::encode(id) })).into_response(),
        Err(e) => {
            tracing::info!(%e, "sponsor refused a faucet");
            refusal_response(&e)
        }
    }
}

/// `POST /v1/sponsor/faucet/sign`: the faucet's checks and co-signature,
/// nothing sent.
async fn faucet_sign_route(
    State(s): State<Arc<AppState>>,
    client: Client,
    body: axum::body::Bytes,
) -> Response {
    let tx = match parse_request(&body) {
        Ok(tx) => tx,
        Err(r) => return *r,
    };
    signature_answer(
        s.sponsor.address(),
        s.sponsor.sign_faucet(tx, ip(&client)).await,
    )
}

async fn sponsor_route(
    State(s): State<Arc<AppState>>,
    client: Client,
    body: axum::body::Bytes,
) -> Response {
    let tx = match parse_request(&body) {
        Ok(tx) => tx,
        Err(r) => return *r,
    };
    match s.sponsor.sponsor(tx, ip(&client)).await {
        Ok(id) => Json(json!({ "id": hex::encode(id) })).into_response(),
        Err(e) => refusal_response(&e),
    }
}

/// The request of a `POST /v1/sponsor…` body, or its refusal.
fn parse_request(body: &[u8]) -> Result<Transaction, Box<Response>> {
    serde_json::from_slice::<SponsorRequest>(body)
        .map_err(|e| Error::Invalid(e.to_string()))
        .and_then(|r| r.to_transaction())
        .map_err(|e| {
            Box::new(
                (
                    StatusCode::BAD_REQUEST,
                    Json(json!({ "error": format!("{e:#}"), "kind": "bad_request" })),
                )
                    .into_response(),
            )
        })
}

/// The answer of `POST /v1/sponsor/sign`: the payer's envelope signature.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SignedByPayer {
    pub address: Address,
    pub key_index: u32,
    /// `r ‖ s`, hex.
    pub signature: String,
    /// The transaction's id once sent with this signature, hex.
    pub id: String,
}

impl SignedByPayer {
    /// The payer's signature of `tx` (signed by `payer`).
    pub fn of(tx: &Transaction, payer: Address) -> Result<Self, SponsorError> {
        let s = tx
            .envelope_signatures
            .iter()
            .find(|s| s.address == payer)
            .ok_or_else(|| SponsorError::Transaction("the payer did not sign".into()))?;
        let id = tx
            .id()
            .map_err(|e| SponsorError::Transaction(e.to_string()))?;
        Ok(Self {
            address: s.address,
            key_index: s.key_index,
            signature: hex::encode(&s.signature),
            id: hex::encode(id),
        })
    }
}

async fn sign_route(
    State(s): State<Arc<AppState>>,
    client: Client,
    body: axum::body::Bytes,
) -> Response {
    let tx = match parse_request(&body) {
        Ok(tx) => tx,
        Err(r) => return *r,
    };
    signature_answer(
        s.sponsor.address(),
        s.sponsor.sign_envelope(tx, ip(&client)).await,
    )
}

/// The answer of a sign-only route: the payer `me`'s signature of `signed`, or
/// the refusal.
fn signature_answer(me: Address, signed: Result<Transaction, SponsorError>) -> Response {
    match signed.and_then(|tx| SignedByPayer::of(&tx, me)) {
        Ok(signed) => Json(signed).into_response(),
        Err(e) => refusal_response(&e),
    }
}

/// The service's router, with the default per-client limit on new accounts.
pub fn router(sponsor: Sponsor, network: &Network, policy: &SponsorPolicy) -> Result<Router> {
    router_with_accounts(sponsor, network, policy, &AccountPolicy::default())
}

/// The service's router; `accounts` says what `info` tells of new accounts
/// (the sponsor applies the limits it was built [`Sponsor::with_accounts`]).
pub fn router_with_accounts(
    sponsor: Sponsor,
    network: &Network,
    policy: &SponsorPolicy,
    accounts: &AccountPolicy,
) -> Result<Router> {
    let templates: serde_json::Map<String, serde_json::Value> = SPONSORED
        .iter()
        .map(|t| {
            Ok((
                format!("{t:?}"),
                json!(hex::encode(script_hash(network.template(*t)?.as_bytes()))),
            ))
        })
        .collect::<Result<_>>()?;
    let gas_limits: serde_json::Map<String, serde_json::Value> = SPONSORED
        .iter()
        .chain(&[Template::Faucet])
        .map(|t| {
            (
                format!("{t:?}"),
                json!(t.gas_limit().min(policy.max_gas_limit)),
            )
        })
        .collect();
    let mut info = json!({
        "address": sponsor.address(),
        "key_index": Payer::key_index(&sponsor),
        "network": network.name,
        "templates": templates,
        "gas_limits": gas_limits,
        "burst": policy.burst,
        "period_s": policy.period.as_secs(),
        "max_gas_limit": policy.max_gas_limit,
        "fee_budget": policy.fee_budget,
        "fee_budget_per_client": policy.fee_budget_per_client,
        "fee_period_s": policy.fee_period.as_secs(),
    });
    if let Some(ledger) = sponsor.ledger_id() {
        info["ledger_id"] = json!(ledger);
        info["faucet"] = json!(hex::encode(script_hash(
            network.template(Template::Faucet)?.as_bytes()
        )));
        info["accounts"] = json!({
            "burst": accounts.burst,
            "period_s": accounts.period.as_secs(),
            "per_client_burst": accounts.per_client_burst,
            "per_client_period_s": accounts.per_client_period.as_secs(),
            "initial_flow": Amount(INITIAL_FLOW).to_string(),
            "pow_difficulty": sponsor.policy().pow_difficulty,
        });
    }
    let state = Arc::new(AppState { sponsor, info });
    Ok(Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route(
            "/v1/sponsor/info",
            get(|State(s): State<Arc<AppState>>| async move { Json(s.info.clone()) }),
        )
        .route("/v1/sponsor", post(sponsor_route))
        .route("/v1/sponsor/accounts", post(accounts_route))
        .route("/v1/sponsor/accounts/challenge", post(challenge_route))
        .route("/v1/sponsor/faucet", post(faucet_route))
        .route("/v1/sponsor/sign", post(sign_route))
        .route("/v1/sponsor/faucet/sign", post(faucet_sign_route))
        // No sponsored transaction of FlowNet's comes near it; axum's default is 2 MB.
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY))
        .with_state(state))
}

/// The service paying with `payer` on `network`: connects to its Access API, and
/// returns the router to [`serve`]. `state` is the file its limits, budgets,
/// spent challenges and faucet reservations are kept in (opened, or created,
/// now: a restart on the same file refills nothing); `None` keeps them in
/// memory.
pub async fn service(
    network: &Network,
    payer: flownet_chain::flow::FlowSigner,
    policy: &SponsorPolicy,
    accounts: &AccountPolicy,
    state: Option<&Path>,
) -> Result<Router> {
    let client = AccessClient::connect(&network.access_api)
        .await
        .map_err(|e| Error::Invalid(format!("connecting to {}: {e}", network.access_api)))?;
    let whitelist = Whitelist::for_network(network)?;
    let mut sponsor =
        Sponsor::new(client, payer, whitelist, policy).with_accounts(network, accounts)?;
    if let Some(path) = state {
        let state = SponsorState::open(path)
            .map_err(|e| Error::Invalid(format!("{}: {e}", path.display())))?;
        sponsor = sponsor
            .with_state(Arc::new(state))
            .map_err(|e| Error::Invalid(e.to_string()))?;
    }
    router_with_accounts(sponsor, network, policy, accounts)
}

/// Serves the service's router on `listener` until the process is stopped, in the
/// serving loop every FlowNet server shares (header and body timeouts, a connection
/// cap; each request carries its client's address for the per-IP limits).
pub async fn serve(listener: tokio::net::TcpListener, app: Router) -> Result<()> {
    serve_with(listener, app, flownet_node::HttpLimits::default()).await
}

/// [`serve`] under `limits`.
pub async fn serve_with(
    listener: tokio::net::TcpListener,
    app: Router,
    limits: flownet_node::HttpLimits,
) -> Result<()> {
    flownet_node::serve(listener, app, limits, std::future::pending())
        .await
        .map_err(Error::io("serving"))
}

/// The client of a `flownet sponsor` service.
#[derive(Debug)]
pub struct HttpPayer {
    url: String,
    address: Address,
    key_index: u32,
    /// The service creates accounts and grants the faucet (its info names a
    /// ledger id).
    onboards: bool,
    agent: ureq::Agent,
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(30)))
        .http_status_as_error(false)
        .build()
        .into()
}

impl HttpPayer {
    /// Asks the service at `url` (`http://host:port`) for its address.
    pub async fn connect(url: &str) -> Result<Self> {
        let url = url.trim_end_matches('/').to_owned();
        let agent = agent();
        let (a, u) = (agent.clone(), url.clone());
        let info: serde_json::Value = tokio::task::spawn_blocking(move || -> Result<_, String> {
            let mut r = a
                .get(format!("{u}/v1/sponsor/info"))
                .call()
                .map_err(|e| e.to_string())?;
            if r.status() != 200 {
                return Err(format!("GET {u}/v1/sponsor/info: HTTP {}", r.status()));
            }
            let text = r.body_mut().read_to_string().map_err(|e| e.to_string())?;
            serde_json::from_str(&text).map_err(|e| e.to_string())
        })
        .await
        .map_err(|e| Error::Invalid(e.to_string()))?
        .map_err(Error::Invalid)?;
        let address = info["address"]
            .as_str()
            .ok_or_else(|| Error::Invalid(format!("{url}/v1/sponsor/info names no address")))?
            .parse()
            .map_err(|e| Error::Invalid(format!("the sponsor's address: {e}")))?;
        // Services from before `key_index` was in the info sign with key 0.
        let key_index = info["key_index"]
            .as_u64()
            .map_or(Ok(0), u32::try_from)
            .map_err(|e| Error::Invalid(format!("the sponsor's key index: {e}")))?;
        Ok(Self {
            url,
            address,
            key_index,
            onboards: info["ledger_id"].is_string(),
            agent,
        })
    }
}

#[async_trait]
impl Payer for HttpPayer {
    fn address(&self) -> Address {
        self.address
    }

    fn key_index(&self) -> u32 {
        self.key_index
    }

    fn onboards(&self) -> bool {
        self.onboards
    }

    async fn sign_faucet(&self, tx: Transaction) -> Result<Transaction, SponsorError> {
        self.post_for_signature("/v1/sponsor/faucet/sign", tx).await
    }

    async fn pay(&self, tx: Transaction) -> Result<[u8; 32], SponsorError> {
        let body = SponsorRequest::from_transaction(&tx)
            .and_then(|r| serde_json::to_string(&r).map_err(|e| Error::Invalid(e.to_string())))
            .map_err(|e| SponsorError::Transaction(format!("{e:#}")))?;
        let (status, v, text) = self.post_json("/v1/sponsor", body).await?;
        if status == 200 {
            return id_of(&v, &text);
        }
        let message = v["error"].as_str().unwrap_or(&text).to_owned();
        // The service's refusal, kept typed where the kind says which.
        Err(match v["kind"].as_str() {
            Some("bad_payload_signature") => SponsorError::BadPayloadSignature {
                address: tx.proposal_key.address,
                reason: message,
            },
            Some("access") => SponsorError::Access(message),
            _ => SponsorError::Transaction(format!("HTTP {status}: {message}")),
        })
    }

    async fn account_challenge(&self, key: &PublicKey) -> Result<Option<Challenge>, SponsorError> {
        HttpPayer::account_challenge(self, key).await
    }

    async fn create_account(
        &self,
        signed: &SignedEnvelope,
        proof: Option<&Proof>,
    ) -> Result<CreatedAccount, SponsorError> {
        HttpPayer::create_account(self, signed, proof).await
    }

    async fn faucet(&self, tx: Transaction) -> Result<[u8; 32], SponsorError> {
        HttpPayer::faucet(self, tx).await
    }

    async fn sign_envelope(&self, tx: Transaction) -> Result<Transaction, SponsorError> {
        self.post_for_signature("/v1/sponsor/sign", tx).await
    }
}

impl HttpPayer {
    /// POSTs `tx` to a sign-only route; `tx` with the payer's envelope
    /// signature.
    async fn post_for_signature(
        &self,
        path: &str,
        mut tx: Transaction,
    ) -> Result<Transaction, SponsorError> {
        let body = SponsorRequest::from_transaction(&tx)
            .and_then(|r| serde_json::to_string(&r).map_err(|e| Error::Invalid(e.to_string())))
            .map_err(|e| SponsorError::Transaction(format!("{e:#}")))?;
        let (status, v, text) = self.post_json(path, body).await?;
        if status != 200 {
            return Err(wire_refusal(status, &v, &text, tx.proposal_key.address));
        }
        let signed: SignedByPayer = serde_json::from_value(v)
            .map_err(|e| SponsorError::Access(format!("the sponsor answered {text}: {e}")))?;
        if signed.address != self.address {
            return Err(SponsorError::Access(format!(
                "the sponsor signed as {}, not as its payer {}",
                signed.address, self.address
            )));
        }
        let signature = hex::decode(&signed.signature).map_err(|e| {
            SponsorError::Access(format!("the sponsor's signature is not hex: {e}"))
        })?;
        tx.envelope_signatures.clear();
        tx.envelope_signatures.push(TxSignature {
            address: signed.address,
            key_index: signed.key_index,
            signature,
        });
        Ok(tx)
    }

    /// POSTs `body` to `path`; the status and the JSON answer.
    async fn post_json(
        &self,
        path: &str,
        body: String,
    ) -> Result<(u16, serde_json::Value, String), SponsorError> {
        let (agent, url) = (self.agent.clone(), format!("{}{path}", self.url));
        let (status, text) = tokio::task::spawn_blocking(move || {
            let mut r = agent
                .post(&url)
                .header("content-type", "application/json")
                .send(body)
                .map_err(|e| format!("POST {url}: {e}"))?;
            let text = r
                .body_mut()
                .read_to_string()
                .map_err(|e| format!("POST {url}: {e}"))?;
            Ok::<_, String>((r.status().as_u16(), text))
        })
        .await
        .map_err(|e| SponsorError::Access(e.to_string()))?
        .map_err(SponsorError::Access)?;
        let v = serde_json::from_str(&text).unwrap_or_default();
        Ok((status, v, text))
    }
}

/// The typed refusal of a service's error answer `v`, for a request signed
/// by `who`.
fn wire_refusal(status: u16, v: &serde_json::Value, text: &str, who: Address) -> SponsorError {
    let message = v["error"].as_str().unwrap_or(text).to_owned();
    let retry_after_ms = v["retry_after_ms"].as_u64().unwrap_or(1000);
    match v["kind"].as_str() {
        Some("bad_payload_signature") => SponsorError::BadPayloadSignature {
            address: who,
            reason: message,
        },
        Some("bad_signature") => SponsorError::BadEnvelopeSignature(who),
        Some("invalid_envelope" | "wrong_ledger") => SponsorError::InvalidEnvelope(
            message
                .strip_prefix("invalid envelope: ")
                .unwrap_or(&message)
                .to_owned(),
        ),
        Some("already_exists") => SponsorError::AccountExists(message),
        Some("proof_of_work") => SponsorError::ProofOfWork(
            message
                .strip_prefix("proof of work: ")
                .unwrap_or(&message)
                .to_owned(),
        ),
        Some("bad_arguments") => SponsorError::BadArguments(
            message
                .strip_prefix("bad arguments: ")
                .unwrap_or(&message)
                .to_owned(),
        ),
        Some("budget") => SponsorError::Budget {
            scope: message
                .strip_prefix("the sponsor's ")
                .and_then(|m| m.split(" budget").next())
                .unwrap_or("fee")
                .to_owned(),
            retry_after_ms,
        },
        Some("faucet_reserved") => SponsorError::FaucetReserved {
            account: who,
            until: message
                .rsplit("unix time ")
                .next()
                .and_then(|t| t.trim_end_matches(')').parse().ok())
                .unwrap_or_default(),
        },
        Some("state") => SponsorError::State(
            message
                .strip_prefix("sponsor state: ")
                .unwrap_or(&message)
                .to_owned(),
        ),
        Some("faucet_used") => SponsorError::FaucetUsed(who),
        Some("execution") => SponsorError::Execution(
            message
                .strip_prefix("the transaction failed: ")
                .unwrap_or(&message)
                .to_owned(),
        ),
        Some("rate_limited")
            if v["error"]
                .as_str()
                .is_some_and(|m| m.starts_with("too many new accounts")) =>
        {
            SponsorError::TooManyAccounts { retry_after_ms }
        }
        Some("rate_limited") => SponsorError::RateLimited {
            account: who,
            retry_after_ms,
        },
        Some("not_offered") => SponsorError::NotOffered(
            message
                .strip_prefix("this sponsor does not ")
                .unwrap_or(&message)
                .to_owned(),
        ),
        Some("not_whitelisted") => SponsorError::NotWhitelisted {
            sha3_256: message
                .split_whitespace()
                .nth(1)
                .unwrap_or_default()
                .to_owned(),
        },
        Some("access") => SponsorError::Access(message),
        _ => SponsorError::Transaction(format!("HTTP {status}: {message}")),
    }
}

impl HttpPayer {
    /// `POST /v1/sponsor/accounts/challenge`.
    pub async fn account_challenge(
        &self,
        key: &PublicKey,
    ) -> Result<Option<Challenge>, SponsorError> {
        let body = json!({ "public_key": key }).to_string();
        let (status, v, text) = self
            .post_json("/v1/sponsor/accounts/challenge", body)
            .await?;
        if status != 200 {
            return Err(wire_refusal(status, &v, &text, Address::derive(key)));
        }
        if v.is_null() && text.trim() == "null" {
            return Ok(None);
        }
        serde_json::from_value(v)
            .map(Some)
            .map_err(|e| SponsorError::Access(format!("the sponsor answered {text}: {e}")))
    }

    /// `POST /v1/sponsor/accounts`, with `proof` of the challenge's work.
    pub async fn create_account(
        &self,
        signed: &SignedEnvelope,
        proof: Option<&Proof>,
    ) -> Result<CreatedAccount, SponsorError> {
        let body = serde_json::to_string(&AccountRequest {
            envelope: signed.clone(),
            pow: proof.cloned(),
        })
        .map_err(|e| SponsorError::InvalidEnvelope(e.to_string()))?;
        let (status, v, text) = self.post_json("/v1/sponsor/accounts", body).await?;
        if status != 200 {
            return Err(wire_refusal(status, &v, &text, signed.envelope.signer));
        }
        let address = v["address"].as_str().and_then(|a| a.parse().ok());
        let transaction = v["transaction"]
            .as_str()
            .and_then(|h| hex::decode(h).ok())
            .and_then(|b| b.try_into().ok());
        match (address, transaction) {
            (Some(address), Some(transaction)) => Ok(CreatedAccount {
                address,
                transaction,
            }),
            _ => Err(SponsorError::Access(format!("the sponsor answered {text}"))),
        }
    }

    /// `POST /v1/sponsor/faucet`.
    pub async fn faucet(&self, tx: Transaction) -> Result<[u8; 32], SponsorError> {
        let body = SponsorRequest::from_transaction(&tx)
            .and_then(|r| serde_json::to_string(&r).map_err(|e| Error::Invalid(e.to_string())))
            .map_err(|e| SponsorError::Transaction(format!("{e:#}")))?;
        let (status, v, text) = self.post_json("/v1/sponsor/faucet", body).await?;
        if status != 200 {
            return Err(wire_refusal(status, &v, &text, tx.proposal_key.address));
        }
        id_of(&v, &text)
    }
}

/// The transaction id of a service's `{"id": "<hex>"}` answer.
fn id_of(v: &serde_json::Value, text: &str) -> Result<[u8; 32], SponsorError> {
    v["id"]
        .as_str()
        .and_then(|h| hex::decode(h).ok())
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| SponsorError::Access(format!("the sponsor answered {text}")))
}

#[cfg(test)]
mod tests {
    use flownet_chain::flow::{FlowKey, HashAlgorithm, SignatureAlgorithm, Template};

    use super::*;

    /// What a refusal looks like on the wire: status, `Retry-After`, body.
    async fn wire(e: &SponsorError) -> (u16, Option<String>, serde_json::Value) {
        let r = refusal_response(e);
        let status = r.status().as_u16();
        let retry = r
            .headers()
            .get(header::RETRY_AFTER)
            .map(|v| v.to_str().unwrap().to_owned());
        let body = axum::body::to_bytes(r.into_body(), 1 << 16).await.unwrap();
        (status, retry, serde_json::from_slice(&body).unwrap())
    }

    /// A 100 KiB body is refused before it is parsed or any account looked up
    /// (axum's default limit was 2 MB).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn large_bodies_are_refused() {
        let network = Network::named("emulator")
            .unwrap()
            .with_flownet_at(Address([0, 0, 0, 0, 0, 0, 0, 7]));
        let payer = flownet_chain::flow::FlowSigner::new(
            Address([0, 0, 0, 0, 0, 0, 0, 9]),
            0,
            FlowKey::generate(SignatureAlgorithm::EcdsaP256, HashAlgorithm::Sha3_256),
        );
        let policy = SponsorPolicy::default();
        let sponsor = Sponsor::new(
            AccessClient::connect_lazy("http://127.0.0.1:1").unwrap(),
            payer,
            Whitelist::for_network(&network).unwrap(),
            &policy,
        );
        let app = router(sponsor, &network, &policy).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(serve(listener, app));
        let status = tokio::task::spawn_blocking(move || {
            let agent: ureq::Agent = ureq::Agent::config_builder()
                .http_status_as_error(false)
                .build()
                .into();
            let body = format!("{{\"script\": \"{}\"}}", "x".repeat(100 * 1024));
            agent
                .post(format!("http://{addr}/v1/sponsor"))
                .header("content-type", "application/json")
                .send(body.as_bytes())
                .map(|r| r.status().as_u16())
                .unwrap_or(0)
        })
        .await
        .unwrap();
        assert_eq!(status, 413);
    }

    #[tokio::test]
    async fn refusals_keep_their_type_across_http() {
        let who = Address([0, 0, 0, 0, 0, 0, 0, 1]);
        let cases = [
            (
                SponsorError::BadEnvelopeSignature(who),
                401,
                "bad_signature",
            ),
            (SponsorError::FaucetUsed(who), 403, "faucet_used"),
            (
                SponsorError::AccountExists("this sponsor already created account 0x01".into()),
                409,
                "already_exists",
            ),
            (
                SponsorError::TooManyAccounts {
                    retry_after_ms: 2500,
                },
                429,
                "rate_limited",
            ),
            (
                SponsorError::RateLimited {
                    account: who,
                    retry_after_ms: 900,
                },
                429,
                "rate_limited",
            ),
            (
                SponsorError::InvalidEnvelope("sequence 0, not 3".into()),
                400,
                "invalid_envelope",
            ),
            (
                SponsorError::Execution("error: pre-condition failed: faucet: no".into()),
                422,
                "execution",
            ),
            (
                SponsorError::NotOffered("create accounts".into()),
                403,
                "not_offered",
            ),
            (
                SponsorError::ProofOfWork("the challenge expired: get a new one".into()),
                403,
                "proof_of_work",
            ),
            (
                SponsorError::Budget {
                    scope: "client fee".into(),
                    retry_after_ms: 5000,
                },
                429,
                "budget",
            ),
            (
                SponsorError::BadArguments("task: expected UInt64".into()),
                400,
                "bad_arguments",
            ),
            (
                SponsorError::FaucetReserved {
                    account: who,
                    until: 1_700_000_000,
                },
                409,
                "faucet_reserved",
            ),
            (SponsorError::State("disk full".into()), 503, "state"),
        ];
        for (e, status, kind) in cases {
            let (got, retry, v) = wire(&e).await;
            assert_eq!((got, v["kind"].as_str()), (status, Some(kind)), "{e}");
            assert_eq!(v["error"], e.to_string());
            assert_eq!(wire_refusal(got, &v, "", who), e);
            assert_eq!(retry.is_some(), status == 429, "{e}");
        }
        let (_, retry, v) = wire(&SponsorError::TooManyAccounts {
            retry_after_ms: 2500,
        })
        .await;
        assert_eq!(
            (retry.as_deref(), v["retry_after_ms"].as_u64()),
            (Some("3"), Some(2500))
        );
        // A wrong ledger is a 400 whose message names both ledgers.
        let (a, b) = (
            flownet_chain::flow::ledger_id("flow-emulator", who),
            flownet_chain::flow::ledger_id("flow-testnet", who),
        );
        let (status, _, v) = wire(&SponsorError::WrongLedger {
            expected: a,
            got: b,
        })
        .await;
        assert_eq!((status, v["kind"].as_str()), (400, Some("wrong_ledger")));
        let back = wire_refusal(status, &v, "", who);
        assert!(
            matches!(&back, SponsorError::InvalidEnvelope(m) if m.contains(&a.to_hex()) && m.contains(&b.to_hex())),
            "{back}"
        );
        // An answer that is not the service's JSON is kept as text.
        assert_eq!(
            wire_refusal(500, &serde_json::Value::Null, "oops", who),
            SponsorError::Transaction("HTTP 500: oops".into())
        );
    }

    fn test_network() -> Network {
        Network::named("emulator")
            .unwrap()
            .with_flownet_at(Address([0, 0, 0, 0, 0, 0, 0, 7]))
    }

    /// The service with `policy` and `accounts`, its state in `state`, served on
    /// a free loopback port (asserted); its URL. Nothing listens at its Access
    /// API: every check before the chain runs for real, the chain call fails.
    async fn loopback_service(
        policy: &SponsorPolicy,
        accounts: &AccountPolicy,
        state: &Path,
    ) -> String {
        let network = test_network();
        let payer = flownet_chain::flow::FlowSigner::new(
            Address([0, 0, 0, 0, 0, 0, 0, 9]),
            0,
            FlowKey::generate(SignatureAlgorithm::EcdsaP256, HashAlgorithm::Sha3_256),
        );
        let sponsor = Sponsor::new(
            AccessClient::connect_lazy("http://127.0.0.1:1").unwrap(),
            payer,
            Whitelist::for_network(&network).unwrap(),
            policy,
        )
        .with_accounts(&network, accounts)
        .unwrap()
        .with_state(Arc::new(SponsorState::open(state).unwrap()))
        .unwrap();
        let app = router_with_accounts(sponsor, &network, policy, accounts).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        assert!(addr.ip().is_loopback(), "tests bind loopback only: {addr}");
        tokio::spawn(serve(listener, app));
        format!("http://{addr}")
    }

    fn create_envelope(
        key: &flownet_core::SigningKey,
        ledger: flownet_core::LedgerId,
    ) -> SignedEnvelope {
        flownet_core::Envelope {
            ledger,
            signer: Address::derive(&key.public_key()),
            sequence: 0,
            action: flownet_core::Action::CreateAccount {
                public_key: key.public_key(),
                hash_algo: flownet_core::crypto::HashAlgo::Sha3_256,
            },
        }
        .sign(key)
    }

    async fn ledger_of(url: &str) -> flownet_core::LedgerId {
        let (a, u) = (agent(), format!("{url}/v1/sponsor/info"));
        let info: serde_json::Value = tokio::task::spawn_blocking(move || {
            serde_json::from_str(
                &a.get(&u)
                    .call()
                    .unwrap()
                    .body_mut()
                    .read_to_string()
                    .unwrap(),
            )
            .unwrap()
        })
        .await
        .unwrap();
        serde_json::from_value(info["ledger_id"].clone()).unwrap()
    }

    /// Over HTTP on loopback: an account needs the proof of work of a challenge
    /// for its own key, and each challenge buys one try.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn accounts_need_a_solved_challenge_each_used_once() {
        let dir = tempfile::tempdir().unwrap();
        let policy = SponsorPolicy {
            pow_difficulty: 10,
            ..SponsorPolicy::default()
        };
        let url = loopback_service(
            &policy,
            &AccountPolicy::default(),
            &dir.path().join("s.sqlite"),
        )
        .await;
        let payer = HttpPayer::connect(&url).await.unwrap();
        let ledger = ledger_of(&url).await;
        let key = flownet_core::SigningKey::generate();
        let signed = create_envelope(&key, ledger);
        // Without the work: refused, typed across HTTP.
        let err = payer.create_account(&signed, None).await.unwrap_err();
        assert!(
            matches!(&err, SponsorError::ProofOfWork(m) if m.contains("challenge")),
            "{err}"
        );
        let challenge = payer
            .account_challenge(&key.public_key())
            .await
            .unwrap()
            .expect("a public sponsor asks for work");
        assert_eq!(challenge.difficulty, 10);
        let proof =
            flownet_chain::flow::pow::solve_challenge(&challenge, key.public_key().as_bytes())
                .unwrap();
        // Another key's envelope with this key's proof: refused.
        let other = create_envelope(&flownet_core::SigningKey::generate(), ledger);
        assert!(matches!(
            payer
                .create_account(&other, Some(&proof))
                .await
                .unwrap_err(),
            SponsorError::ProofOfWork(_)
        ));
        // The right one passes every check and reaches the chain (which is not there).
        assert!(matches!(
            payer
                .create_account(&signed, Some(&proof))
                .await
                .unwrap_err(),
            SponsorError::Access(_)
        ));
        // The same challenge again: spent.
        let err = payer
            .create_account(&signed, Some(&proof))
            .await
            .unwrap_err();
        assert!(
            matches!(&err, SponsorError::ProofOfWork(m) if m.contains("used already")),
            "{err}"
        );
    }

    /// The per-client account limit, kept in the state file, holds across a
    /// restart of the service on the same file.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn account_limits_survive_restarting_the_service() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("sponsor.sqlite");
        let policy = SponsorPolicy {
            pow_difficulty: 4,
            ..SponsorPolicy::default()
        };
        let accounts = AccountPolicy {
            per_client_burst: 1,
            ..AccountPolicy::default()
        };
        let try_one = |url: String| async move {
            let payer = HttpPayer::connect(&url).await.unwrap();
            let key = flownet_core::SigningKey::generate();
            let c = payer
                .account_challenge(&key.public_key())
                .await
                .unwrap()
                .unwrap();
            let proof =
                flownet_chain::flow::pow::solve_challenge(&c, key.public_key().as_bytes()).unwrap();
            let signed = create_envelope(&key, ledger_of(&url).await);
            payer.create_account(&signed, Some(&proof)).await
        };
        let url = loopback_service(&policy, &accounts, &state).await;
        // The client's one token is taken (the creation then fails at the chain).
        assert!(matches!(
            try_one(url.clone()).await,
            Err(SponsorError::Access(_))
        ));
        assert!(matches!(
            try_one(url).await,
            Err(SponsorError::TooManyAccounts { retry_after_ms }) if retry_after_ms > 0
        ));
        // A second service on the same state file: still none.
        let url = loopback_service(&policy, &accounts, &state).await;
        assert!(matches!(
            try_one(url).await,
            Err(SponsorError::TooManyAccounts { .. })
        ));
        // A fresh state file starts full.
        let url = loopback_service(&policy, &accounts, &dir.path().join("other.sqlite")).await;
        assert!(matches!(try_one(url).await, Err(SponsorError::Access(_))));
    }

    /// The sign route refuses arguments that are not the template's before it
    /// looks anything up or signs.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_sign_route_checks_arguments_first() {
        let dir = tempfile::tempdir().unwrap();
        let url = loopback_service(
            &SponsorPolicy::default(),
            &AccountPolicy::default(),
            &dir.path().join("s.sqlite"),
        )
        .await;
        let payer = HttpPayer::connect(&url).await.unwrap();
        let user = Address([0, 0, 0, 0, 0, 0, 0, 1]);
        let key = FlowKey::generate(SignatureAlgorithm::EcdsaP256, HashAlgorithm::Sha3_256);
        let mut tx = Transaction::new(
            test_network().template(Template::Rate).unwrap(),
            vec![
                br#"{"type":"UInt64","value":"3"}"#.to_vec(),
                br#"{"type":"UInt8","value":"200"}"#.to_vec(),
            ],
            [5; 32],
            Template::Rate.gas_limit(),
            ProposalKey {
                address: user,
                key_index: 0,
                sequence_number: 0,
            },
            payer.address(),
            vec![user],
        );
        tx.sign_payload(user, 0, &key).unwrap();
        let err = payer.sign_envelope(tx.clone()).await.unwrap_err();
        assert!(
            matches!(&err, SponsorError::BadArguments(m) if m.contains("stars")),
            "{err}"
        );
        // Flow's maximum gas is no longer paid for a 1000-unit template.
        tx.gas_limit = 9999;
        let err = payer.sign_envelope(tx).await.unwrap_err();
        assert!(err.to_string().contains("gas limit 9999"), "{err}");
    }

    #[test]
    fn the_wire_form_carries_the_signed_transaction_exactly() {
        let user = Address([0, 0, 0, 0, 0, 0, 0, 1]);
        let sponsor = Address([0, 0, 0, 0, 0, 0, 0, 9]);
        let key = FlowKey::generate(SignatureAlgorithm::EcdsaP256, HashAlgorithm::Sha3_256);
        let network = Network::named("emulator").unwrap().with_flownet_at(sponsor);
        let mut tx = Transaction::new(
            network.template(Template::Cancel).unwrap(),
            vec![br#"{"value":"7","type":"UInt64"}"#.to_vec()],
            [5; 32],
            9999,
            ProposalKey {
                address: user,
                key_index: 0,
                sequence_number: 3,
            },
            sponsor,
            vec![user],
        );
        tx.sign_payload(user, 0, &key).unwrap();
        let json = serde_json::to_string(&SponsorRequest::from_transaction(&tx).unwrap()).unwrap();
        let back: SponsorRequest = serde_json::from_str(&json).unwrap();
        let back = back.to_transaction().unwrap();
        assert_eq!(back, tx);
        assert_eq!(back.payload_message(), tx.payload_message());
        assert_eq!(back.id().unwrap(), tx.id().unwrap());
        // Malformed fields are refused, not guessed at.
        let mut bad: SponsorRequest = serde_json::from_str(&json).unwrap();
        bad.reference_block_id = "05".into();
        assert!(bad.to_transaction().is_err());
        let mut bad: SponsorRequest = serde_json::from_str(&json).unwrap();
        bad.payload_signatures[0].signature = "zz".into();
        assert!(bad.to_transaction().is_err());
    }
}
