//! The gateway's state: its ledger, blob store, models, API keys, limits, event hub
//! and metrics (its router and layers are in `router`).

use std::{
    collections::HashMap,
    net::IpAddr,
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::{
    body::Bytes,
    http::{HeaderMap, header},
};
use flownet_core::{Address, Ledger, LedgerId, ModelInfo, NodeEvent, SigningKey, TaskKind, Wallet};
use serde::Serialize;
use tokio::sync::watch;

use crate::{
    Error, Result,
    api_error::{ApiError, ApiResult},
    events::TaskHub,
    keys::ApiKeys,
    limits::{Rate, RateLimiter},
    metrics::Metrics,
};
use flownet_node::{FetchPolicy, FsBlobStore};

#[cfg(feature = "flow")]
type FlowSideArg = FlowSide;
#[cfg(not(feature = "flow"))]
type FlowSideArg = std::convert::Infallible;

/// What the gateway needs on Flow besides the ledger trait.
#[cfg(feature = "flow")]
#[derive(Debug, Clone)]
pub struct FlowSide {
    pub ledger: Arc<flownet_chain::flow::FlowLedger>,
    /// Signs envelopes as payer: an in-process `Sponsor` (FLOWNET_FLOW_SPONSOR) or a
    /// `flownet sponsor` service (FLOWNET_FLOW_SPONSOR_URL).
    pub payer: Option<Arc<dyn flownet_chain::flow::Payer>>,
    /// The Access API's REST base URL, which `/api/flow/access` proxies.
    pub rest: Option<String>,
    /// FCL's `discovery.wallet`, for users who bring a Flow wallet.
    pub discovery: Option<String>,
}

/// What the gateway allows and how long it waits.
#[derive(Debug, Clone)]
pub struct GatewayConfig {
    /// Largest request body.
    pub max_body_bytes: usize,
    /// Largest image `/api/inputs` holds as a task's input (PNG or JPEG, for the
    /// models that read an image); every other body stays within `max_body_bytes`.
    pub max_image_bytes: usize,
    /// Longest a request may take, except event streams and OpenAI generations.
    pub request_timeout: Duration,
    /// Longest an OpenAI request waits for its tasks to be delivered.
    pub task_timeout: Duration,
    /// How long an OpenAI request's task waits to be claimed before it is cancelled
    /// (refunded) and paid to the next-ranked node offering the model, if there is
    /// one; a node that declines hands the task on at once.
    pub claim_wait: Duration,
    /// Requests per client IP to the APIs (`/api`, `/v1`).
    pub ip_rate: Rate,
    /// Origins allowed to call the APIs from other sites' pages; none by default.
    pub cors_origins: Vec<String>,
    /// Host names (without port) accepted in `Host` besides loopback ones; `*` accepts
    /// any. Guards a loopback gateway against DNS rebinding.
    pub allowed_hosts: Vec<String>,
    /// How often the event hub reads the ledger while tasks are watched.
    pub poll_interval: Duration,
    /// The gateway's address as clients reach it, for `url` answers
    /// [default: from the request's `Host`].
    pub public_url: Option<String>,
    /// Most event streams open at once.
    pub max_event_streams: i64,
    /// Most event streams one client (an IPv4 address, an IPv6 /64) holds open.
    pub max_event_streams_per_ip: usize,
    /// Longest one event stream stays open (a task nobody expires never ends).
    pub max_stream_duration: Duration,
    /// Most images one OpenAI request may ask for.
    pub max_images: u32,
    /// Longest a client may take to send a request's headers (a connection that
    /// dribbles them is closed), and to send the next request on a kept-alive
    /// connection.
    pub header_timeout: Duration,
    /// Longest a client may take to send a request's body, from its headers on.
    pub body_timeout: Duration,
    /// Most connections open at once (past it, new ones wait to be accepted).
    pub max_connections: usize,
    /// Accounts created through the relay per client IP, on Flow only, where the
    /// sponsor pays for each.
    pub account_rate: Rate,
    /// Where the gateway finds GGUF models to recount the tokens of metered answers
    /// with (`units_check` in the flownet fields); `None` skips the recount.
    pub models_dir: Option<std::path::PathBuf>,
    /// Which addresses the gateway fetches nodes' outputs and streams from, checked
    /// after DNS: public ones only by default, so a node cannot register an endpoint
    /// on the gateway's own machine or network and have the gateway request it. A
    /// single-machine setup allows loopback (`FetchPolicy::LOOPBACK`).
    pub fetch_policy: FetchPolicy,
    /// When set, `/metrics` answers only requests with `Authorization: Bearer <it>`.
    pub metrics_token: Option<String>,
    /// Most bytes of outputs fetched from nodes the gateway keeps in its blob store;
    /// past it the oldest it fetched are deleted (0 keeps none).
    pub max_cache_bytes: u64,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        Self {
            max_body_bytes: 64 * 1024,
            max_image_bytes: 4 * 1024 * 1024,
            request_timeout: Duration::from_secs(30),
            task_timeout: Duration::from_secs(120),
            claim_wait: Duration::from_secs(10),
            ip_rate: Rate::new(1200, 200),
            cors_origins: Vec::new(),
            allowed_hosts: Vec::new(),
            poll_interval: Duration::from_millis(100),
            public_url: None,
            max_event_streams: 512,
            max_event_streams_per_ip: 16,
            max_stream_duration: Duration::from_secs(1800),
            max_images: 4,
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(20),
            max_connections: 1024,
            account_rate: Rate::new(6, 3),
            models_dir: None,
            fetch_policy: FetchPolicy::PUBLIC,
            metrics_token: None,
            max_cache_bytes: 1 << 30,
        }
    }
}

impl GatewayConfig {
    /// The serving loop's limits from this config.
    pub fn http_limits(&self) -> flownet_node::HttpLimits {
        flownet_node::HttpLimits {
            header_timeout: self.header_timeout,
            body_timeout: self.body_timeout,
            max_connections: self.max_connections,
        }
    }
}

/// The outputs a gateway fetched from nodes and keeps: only those (never what a node
/// on this machine stored itself), so evicting them loses nothing but a refetch.
#[derive(Debug, Default)]
pub(crate) struct OutputCache {
    kept: std::collections::VecDeque<(flownet_core::Digest32, u64)>,
    bytes: u64,
}

impl OutputCache {
    /// Records `sha256` (`size` bytes) as kept; returns what must go to stay within
    /// `max` bytes (`sha256` itself when it alone is larger).
    pub(crate) fn keep(
        &mut self,
        sha256: flownet_core::Digest32,
        size: u64,
        max: u64,
    ) -> Vec<flownet_core::Digest32> {
        if size > max {
            return vec![sha256];
        }
        self.kept.push_back((sha256, size));
        self.bytes += size;
        let mut evicted = Vec::new();
        while self.bytes > max {
            let Some((old, n)) = self.kept.pop_front() else {
                break;
            };
            self.bytes -= n;
            evicted.push(old);
        }
        evicted
    }

    #[cfg(test)]
    pub(crate) fn bytes(&self) -> u64 {
        self.bytes
    }
}

/// What the gateway knows of a model beyond its id: from the manifests in the models
/// dir, or from the engine of the node it runs.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModelMeta {
    pub id: String,
    pub kind: TaskKind,
    pub name: String,
    pub output_mime: String,
    pub prompt_mapping: String,
    pub defaults: serde_json::Value,
    /// `WxH` of the images a text-to-image model makes, when known.
    pub size: Option<String>,
}

impl ModelMeta {
    pub fn from_info(m: &ModelInfo) -> Self {
        Self {
            id: m.id.clone(),
            kind: m.kind,
            name: m.name.clone(),
            output_mime: m.output_mime.clone(),
            prompt_mapping: m.prompt_mapping.clone(),
            defaults: m.defaults.clone(),
            size: None,
        }
    }

    pub fn from_manifest(m: &flownet_infer::ModelManifest) -> Self {
        let mut meta = Self::from_info(&m.info());
        if m.kind == TaskKind::TextToImage
            && let Some(shape) = m.outputs.first().map(|o| &o.shape)
            && shape.len() >= 2
        {
            let (h, w) = (shape[shape.len() - 2], shape[shape.len() - 1]);
            if h > 0 && w > 0 {
                meta.size = Some(format!("{w}x{h}"));
            }
        }
        meta
    }

    /// Whether the model takes a `seed` parameter, so that several outputs for one
    /// prompt can differ.
    pub fn has_seed(&self) -> bool {
        self.defaults.get("seed").is_some()
    }
}

/// The gateway: one ledger, the local blob store, what it knows of models, the API
/// keys, the event hub and the metrics.
pub struct Gateway {
    pub(crate) ledger: Arc<dyn Ledger>,
    pub(crate) ledger_id: LedgerId,
    pub(crate) blobs: Option<FsBlobStore>,
    pub(crate) models: HashMap<String, ModelMeta>,
    pub(crate) keys: Option<ApiKeys>,
    pub(crate) hub: Arc<TaskHub>,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) ip_limiter: RateLimiter<IpAddr>,
    pub(crate) key_limiter: RateLimiter<String>,
    pub(crate) account_limiter: RateLimiter<IpAddr>,
    wallets: Mutex<HashMap<Address, Arc<Wallet<dyn Ledger>>>>,
    /// Answers of paid requests kept for replay (`Idempotency-Key`, SDK retries).
    pub(crate) idempotency: Arc<crate::idempotency::Idempotency>,
    /// The ledger's network name: `embedded`, `emulator`, `testnet`, `mainnet`.
    pub(crate) network: String,
    /// On Flow: the FlowLedger behind `ledger` and who pays.
    #[cfg(feature = "flow")]
    pub(crate) flow: Option<FlowSide>,
    pub(crate) config: GatewayConfig,
    /// For the operator's own services (the Access API on Flow): no redirects.
    #[cfg_attr(not(feature = "flow"), allow(dead_code))]
    pub(crate) http: ureq::Agent,
    /// For fetching nodes' outputs: under `config.fetch_policy`, no redirects.
    pub(crate) node_http: ureq::Agent,
    /// For following a node's task stream: as long as a task may take, under
    /// `config.fetch_policy`, no redirects.
    pub(crate) stream_http: ureq::Agent,
    /// Outputs whose node recently served bytes that are not them, so that asking
    /// again does not fetch them again.
    pub(crate) mismatches: crate::limits::RecentSet<(flownet_core::Digest32, Address)>,
    /// The outputs this gateway fetched and keeps, oldest first, within
    /// `config.max_cache_bytes`.
    pub(crate) cache: Mutex<OutputCache>,
    /// Event streams open per client (`flownet_core::rate::client_key`).
    pub(crate) streams_per_ip: crate::limits::OpenCounts<IpAddr>,
    /// Turns true when the gateway stops, so event streams and waiting requests end
    /// and the graceful shutdown does not wait for them.
    closing: watch::Sender<bool>,
}

impl std::fmt::Debug for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gateway")
            .field("ledger_id", &self.ledger_id)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Gateway {
    /// A gateway over `ledger`. `blobs` is the local store it serves outputs from (the
    /// data dir's, shared with a node on this machine); `keys` enables the OpenAI API.
    pub async fn new(
        ledger: Arc<dyn Ledger>,
        blobs: Option<FsBlobStore>,
        models: impl IntoIterator<Item = ModelMeta>,
        keys: Option<ApiKeys>,
        config: GatewayConfig,
    ) -> Result<Arc<Self>> {
        Self::build(ledger, blobs, models, keys, config, None).await
    }

    /// A gateway over FlowNet on Flow: the same API over `flow.ledger`, plus the
    /// page's Flow routes (`/api/flow/…`).
    #[cfg(feature = "flow")]
    pub async fn on_flow(
        flow: FlowSide,
        blobs: Option<FsBlobStore>,
        models: impl IntoIterator<Item = ModelMeta>,
        keys: Option<ApiKeys>,
        config: GatewayConfig,
    ) -> Result<Arc<Self>> {
        let ledger: Arc<dyn Ledger> = flow.ledger.clone();
        Self::build(ledger, blobs, models, keys, config, Some(flow)).await
    }

    async fn build(
        ledger: Arc<dyn Ledger>,
        blobs: Option<FsBlobStore>,
        models: impl IntoIterator<Item = ModelMeta>,
        keys: Option<ApiKeys>,
        config: GatewayConfig,
        #[cfg_attr(not(feature = "flow"), allow(unused_variables))] flow: Option<FlowSideArg>,
    ) -> Result<Arc<Self>> {
        let info = ledger.info().await.map_err(|error| Error::Ledger {
            context: "reading the ledger",
            error,
        })?;
        let ledger_id = info.id;
        let metrics = Arc::new(Metrics::default());
        let fetch_timeout = config.request_timeout.min(Duration::from_secs(20));
        let http = ureq::Agent::config_builder()
            .timeout_global(Some(fetch_timeout))
            .max_redirects(0)
            .http_status_as_error(false)
            .build()
            .into();
        let node_http = config.fetch_policy.agent(fetch_timeout);
        let stream_http =
            flownet_node::follow::stream_agent(config.fetch_policy, config.task_timeout);
        Ok(Arc::new(Self {
            hub: Arc::new(TaskHub::new(ledger.clone(), metrics.clone())),
            ledger,
            ledger_id,
            blobs,
            models: models.into_iter().map(|m| (m.id.clone(), m)).collect(),
            keys,
            metrics,
            ip_limiter: RateLimiter::default(),
            key_limiter: RateLimiter::default(),
            account_limiter: RateLimiter::default(),
            wallets: Mutex::default(),
            idempotency: Arc::default(),
            network: info.network,
            #[cfg(feature = "flow")]
            flow,
            config,
            http,
            node_http,
            stream_http,
            mismatches: crate::limits::RecentSet::new(1024, Duration::from_secs(300)),
            streams_per_ip: crate::limits::OpenCounts::default(),
            cache: Mutex::default(),
            closing: watch::Sender::new(false),
        }))
    }

    pub fn ledger(&self) -> &Arc<dyn Ledger> {
        &self.ledger
    }

    /// Turns true when the gateway is stopping.
    pub(crate) fn closing(&self) -> watch::Receiver<bool> {
        self.closing.subscribe()
    }

    /// Ends the event streams and the requests waiting for tasks.
    pub(crate) fn close(&self) {
        self.closing.send_replace(true);
    }

    /// Feeds an event of a node running in this process (for "running" steps and
    /// inference times).
    pub fn node_event(&self, event: &NodeEvent) {
        self.hub.node_event(event);
    }

    /// The wallet of a custodial API account; one per account, so its sends are
    /// serialised and their sequence numbers never collide.
    pub(crate) fn wallet(&self, address: Address, key: &SigningKey) -> Arc<Wallet<dyn Ledger>> {
        let mut wallets = self.wallets.lock().unwrap_or_else(|e| e.into_inner());
        wallets
            .entry(address)
            .or_insert_with(|| {
                // On Flow the ledger signs the account's transactions with its key,
                // at the address Flow gave it.
                #[cfg(feature = "flow")]
                if let Some(f) = &self.flow {
                    f.ledger.add_signer(flownet_chain::flow::FlowSigner::new(
                        address,
                        0,
                        flownet_chain::flow::FlowKey::from_core(key),
                    ));
                    return Arc::new(Wallet::with_address(
                        self.ledger.clone(),
                        key.clone(),
                        address,
                    ));
                }
                Arc::new(Wallet::new(self.ledger.clone(), key.clone()))
            })
            .clone()
    }

    /// The ledger's network name (`embedded` or a Flow network).
    pub fn network(&self) -> &str {
        &self.network
    }

    /// Whether the ledger is on Flow, where a sponsor pays for new accounts.
    pub fn is_on_flow(&self) -> bool {
        self.network != "embedded"
    }

    /// Task counts by status, for `/metrics`.
    pub(crate) async fn task_counts(&self) -> flownet_core::Result<Vec<(&'static str, u64)>> {
        Ok(self
            .ledger
            .task_counts()
            .await?
            .into_iter()
            .map(|(s, n)| (s.as_str(), n))
            .collect())
    }
}

/// The body of a JSON POST: refuses other content types (which also keeps other
/// sites' forms from posting here: JSON needs a CORS preflight) and bodies over the
/// limit, with the OpenAI error shape.
pub(crate) fn json_body<T: serde::de::DeserializeOwned>(
    headers: &HeaderMap,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> ApiResult<T> {
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(';')
                .next()
                .is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json"))
        });
    if !is_json {
        return Err(ApiError::new(
            axum::http::StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "the body must be JSON with Content-Type: application/json",
        ));
    }
    let bytes = body.map_err(|e| {
        if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(
                e.status(),
                "request_too_large",
                "the request body is larger than this gateway accepts",
            )
        } else {
            ApiError::bad_request("invalid_body", e.body_text())
        }
    })?;
    serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::bad_request("invalid_json", format!("invalid JSON body: {e}")))
}

#[cfg(test)]
mod cache_tests {
    use super::OutputCache;
    use flownet_core::Digest32;

    #[test]
    fn the_output_cache_evicts_the_oldest_past_its_quota() {
        let mut c = OutputCache::default();
        assert!(c.keep(Digest32([1; 32]), 40, 100).is_empty());
        assert!(c.keep(Digest32([2; 32]), 40, 100).is_empty());
        assert_eq!(c.keep(Digest32([3; 32]), 40, 100), vec![Digest32([1; 32])]);
        assert_eq!(c.bytes(), 80);
        assert_eq!(c.keep(Digest32([4; 32]), 101, 100), vec![Digest32([4; 32])]);
        assert_eq!(c.bytes(), 80);
    }
}
