//! `flownet sponsor` (the `flow` build): the gasless service. It co-signs as
//! payer only transactions that run one of FlowNet's own templates, rate
//! limited per account (see `flownet_chain::flow::sponsor`), and
//! [`HttpPayer`], its client, which `FlowLedger` uses when
//! `FLOWNET_FLOW_SPONSOR_URL` is set and no sponsor key is.
//!
//! The wire format (JSON):
//!
//! - `GET /healthz` → `ok`;
//! - `GET /v1/sponsor/info` → `{"address": "0x…", "key_index": 0, "network": "emulator",
//!   "templates": {"Submit": "<sha3-256 hex>", …}, "burst": 10,
//!   "period_s": 60, "max_gas_limit": 9999}`;
//! - `POST /v1/sponsor` with a [`SponsorRequest`] → `{"id": "<tx id hex>"}`,
//!   or `{"error": "...", "kind": "not_whitelisted" | "rate_limited" |
//!   "bad_payload_signature" | "payer_mismatch" | "sponsor_as_signer" |
//!   "gas_limit" | "bad_request" | "access"}` with 403, 429 (and
//!   `Retry-After`), 401, 400, 400, 400, 400 or 502;
//! - `POST /v1/sponsor/sign` with a [`SponsorRequest`]: the same checks, then
//!   the payer's envelope signature only, nothing sent (for clients that send
//!   the transaction themselves, such as the web page with FCL) →
//!   `{"address": "0x…", "key_index": 0, "signature": "<r ‖ s hex>", "id":
//!   "<tx id hex>"}`, or the same refusals.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use anyhow::{Context as _, Result, anyhow, bail};
use async_trait::async_trait;
use axum::{
    Json, Router,
    extract::State,
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use flownet_chain::flow::{
    AccessClient, Network, Payer, ProposalKey, Sponsor, SponsorError, SponsorPolicy, Transaction,
    TxSignature, Whitelist, sponsor::SPONSORED, sponsor::script_hash,
};
use flownet_core::Address;
use serde::{Deserialize, Serialize};
use serde_json::json;

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
            script: String::from_utf8(tx.script.clone()).context("the script is not UTF-8")?,
            arguments: tx
                .arguments
                .iter()
                .map(|a| String::from_utf8(a.clone()).context("an argument is not UTF-8"))
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
            .context("reference_block_id must be 32 bytes of hex")?;
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
                signature: hex::decode(&s.signature).context("a payload signature is not hex")?,
            });
        }
        Ok(tx)
    }
}

struct AppState {
    sponsor: Sponsor,
    info: serde_json::Value,
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
    }
}

async fn sponsor_route(State(s): State<Arc<AppState>>, body: axum::body::Bytes) -> Response {
    let tx = match parse_request(&body) {
        Ok(tx) => tx,
        Err(r) => return *r,
    };
    match s.sponsor.sponsor(tx).await {
        Ok(id) => Json(json!({ "id": hex::encode(id) })).into_response(),
        Err(e) => refusal_response(e),
    }
}

/// The request of a `POST /v1/sponsor…` body, or its refusal.
fn parse_request(body: &[u8]) -> Result<Transaction, Box<Response>> {
    serde_json::from_slice::<SponsorRequest>(body)
        .map_err(anyhow::Error::from)
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

async fn sign_route(State(s): State<Arc<AppState>>, body: axum::body::Bytes) -> Response {
    let tx = match parse_request(&body) {
        Ok(tx) => tx,
        Err(r) => return *r,
    };
    let me = s.sponsor.address();
    match s
        .sponsor
        .sign_envelope(tx)
        .await
        .and_then(|tx| SignedByPayer::of(&tx, me))
    {
        Ok(signed) => Json(signed).into_response(),
        Err(e) => refusal_response(e),
    }
}

/// A refusal as the service answers it: status, `{"error", "kind"}` and, when
/// rate limited, `Retry-After`.
pub fn refusal_response(e: SponsorError) -> Response {
    let (status, kind) = refusal(&e);
    tracing::info!(%e, "sponsor refused a transaction");
    let mut r = (
        status,
        Json(json!({ "error": e.to_string(), "kind": kind })),
    )
        .into_response();
    if let SponsorError::RateLimited { retry_after_ms, .. } = e {
        let secs = retry_after_ms.div_ceil(1000).max(1);
        if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
            r.headers_mut().insert(header::RETRY_AFTER, v);
        }
    }
    r
}

/// The service's router.
pub fn router(sponsor: Sponsor, network: &Network, policy: &SponsorPolicy) -> Result<Router> {
    let templates: serde_json::Map<String, serde_json::Value> = SPONSORED
        .iter()
        .map(|t| {
            Ok((
                format!("{t:?}"),
                json!(hex::encode(script_hash(network.template(*t)?.as_bytes()))),
            ))
        })
        .collect::<Result<_>>()?;
    let info = json!({
        "address": sponsor.address(),
        "key_index": Payer::key_index(&sponsor),
        "network": network.name,
        "templates": templates,
        "burst": policy.burst,
        "period_s": policy.period.as_secs(),
        "max_gas_limit": policy.max_gas_limit,
    });
    let state = Arc::new(AppState { sponsor, info });
    Ok(Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route(
            "/v1/sponsor/info",
            get(|State(s): State<Arc<AppState>>| async move { Json(s.info.clone()) }),
        )
        .route("/v1/sponsor", post(sponsor_route))
        .route("/v1/sponsor/sign", post(sign_route))
        .with_state(state))
}

/// Runs the service on `listen` until the process is stopped.
pub async fn serve(
    network: Network,
    payer: flownet_chain::flow::FlowSigner,
    listen: SocketAddr,
    policy: SponsorPolicy,
) -> Result<()> {
    let client = AccessClient::connect(&network.access_api)
        .await
        .with_context(|| format!("connecting to {}", network.access_api))?;
    let whitelist = Whitelist::for_network(&network)?;
    let address = payer.address;
    let sponsor = Sponsor::new(client, payer, whitelist, &policy);
    let app = router(sponsor, &network, &policy)?;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("binding {listen}"))?;
    eprintln!(
        "sponsor {address} on Flow {} listening on http://{}",
        network.name,
        listener.local_addr()?
    );
    axum::serve(listener, app).await?;
    Ok(())
}

/// The client of a `flownet sponsor` service.
#[derive(Debug)]
pub struct HttpPayer {
    url: String,
    address: Address,
    key_index: u32,
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
        let info: serde_json::Value = tokio::task::spawn_blocking(move || -> Result<_> {
            let mut r = a.get(format!("{u}/v1/sponsor/info")).call()?;
            if r.status() != 200 {
                bail!("GET {u}/v1/sponsor/info: HTTP {}", r.status());
            }
            Ok(serde_json::from_str(&r.body_mut().read_to_string()?)?)
        })
        .await??;
        let address = info["address"]
            .as_str()
            .ok_or_else(|| anyhow!("{url}/v1/sponsor/info names no address"))?
            .parse()
            .context("the sponsor's address")?;
        // Services from before `key_index` was in the info sign with key 0.
        let key_index = info["key_index"]
            .as_u64()
            .map_or(Ok(0), u32::try_from)
            .context("the sponsor's key index")?;
        Ok(Self {
            url,
            address,
            key_index,
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

    async fn pay(&self, tx: Transaction) -> Result<[u8; 32], SponsorError> {
        let body = SponsorRequest::from_transaction(&tx)
            .and_then(|r| Ok(serde_json::to_string(&r)?))
            .map_err(|e| SponsorError::Transaction(format!("{e:#}")))?;
        let (agent, url) = (self.agent.clone(), format!("{}/v1/sponsor", self.url));
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
        let v: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
        if status == 200 {
            return v["id"]
                .as_str()
                .and_then(|h| hex::decode(h).ok())
                .and_then(|b| b.try_into().ok())
                .ok_or_else(|| SponsorError::Access(format!("the sponsor answered {text}")));
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

    async fn sign_envelope(&self, mut tx: Transaction) -> Result<Transaction, SponsorError> {
        let body = SponsorRequest::from_transaction(&tx)
            .and_then(|r| Ok(serde_json::to_string(&r)?))
            .map_err(|e| SponsorError::Transaction(format!("{e:#}")))?;
        let url = format!("{}/v1/sponsor/sign", self.url);
        let (status, text) = post_json(self.agent.clone(), url, body).await?;
        if status != 200 {
            return Err(http_refusal(status, &text, tx.proposal_key.address));
        }
        let signed: SignedByPayer = serde_json::from_str(&text)
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
}

/// POSTs `body` as JSON to `url`; the status and the answer's text.
async fn post_json(
    agent: ureq::Agent,
    url: String,
    body: String,
) -> Result<(u16, String), SponsorError> {
    tokio::task::spawn_blocking(move || {
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
    .map_err(SponsorError::Access)
}

/// The service's refusal, kept typed where its kind says which.
fn http_refusal(status: u16, text: &str, proposer: Address) -> SponsorError {
    let v: serde_json::Value = serde_json::from_str(text).unwrap_or_default();
    let message = v["error"].as_str().unwrap_or(text).to_owned();
    match v["kind"].as_str() {
        Some("bad_payload_signature") => SponsorError::BadPayloadSignature {
            address: proposer,
            reason: message,
        },
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

#[cfg(test)]
mod tests {
    use flownet_chain::flow::{FlowKey, HashAlgorithm, SignatureAlgorithm, Template};

    use super::*;

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
