//! The gateway's state, its router and the layers every request goes through.

use std::{
    collections::HashMap,
    net::{IpAddr, Ipv4Addr, SocketAddr},
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::{
    Router,
    body::Bytes,
    extract::{ConnectInfo, DefaultBodyLimit, MatchedPath, Request, State},
    http::{HeaderMap, HeaderValue, Method, header},
    middleware::{self, Next},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use flownet_core::{Address, Ledger, LedgerId, ModelInfo, NodeEvent, SigningKey, TaskKind, Wallet};
use serde::Serialize;
use tokio::sync::watch;

use crate::{
    Error, Result, api,
    api_error::{ApiError, ApiResult},
    assets,
    events::TaskHub,
    keys::ApiKeys,
    limits::{Rate, RateLimiter},
    metrics::Metrics,
    openai,
};
use flownet_node::FsBlobStore;

#[cfg(feature = "flow")]
type FlowSideArg = crate::flow::FlowSide;
#[cfg(not(feature = "flow"))]
type FlowSideArg = std::convert::Infallible;

/// What the gateway allows and how long it waits.
#[derive(Debug, Clone)]
pub struct GatewayConfig {
    /// Largest request body.
    pub max_body_bytes: usize,
    /// Longest a request may take, except event streams and OpenAI generations.
    pub request_timeout: Duration,
    /// Longest an OpenAI request waits for its tasks to be delivered.
    pub task_timeout: Duration,
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
    /// Longest one event stream stays open (a task nobody expires never ends).
    pub max_stream_duration: Duration,
    /// Most images one OpenAI request may ask for.
    pub max_images: u32,
    /// Longest a client may take to send a request's headers (a connection that
    /// dribbles them is closed), and to send the next request on a kept-alive
    /// connection.
    pub header_timeout: Duration,
    /// Accounts created through the relay per client IP, on Flow only, where the
    /// sponsor pays for each.
    pub account_rate: Rate,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        Self {
            max_body_bytes: 64 * 1024,
            request_timeout: Duration::from_secs(30),
            task_timeout: Duration::from_secs(120),
            ip_rate: Rate::new(1200, 200),
            cors_origins: Vec::new(),
            allowed_hosts: Vec::new(),
            poll_interval: Duration::from_millis(100),
            public_url: None,
            max_event_streams: 512,
            max_stream_duration: Duration::from_secs(1800),
            max_images: 4,
            header_timeout: Duration::from_secs(10),
            account_rate: Rate::new(6, 3),
        }
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
    /// The ledger's network name: `embedded`, `emulator`, `testnet`, `mainnet`.
    pub(crate) network: String,
    /// On Flow: the FlowLedger behind `ledger` and who pays.
    #[cfg(feature = "flow")]
    pub(crate) flow: Option<crate::flow::FlowSide>,
    pub(crate) config: GatewayConfig,
    pub(crate) http: ureq::Agent,
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
        flow: crate::flow::FlowSide,
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
        let http = ureq::Agent::config_builder()
            .timeout_global(Some(config.request_timeout.min(Duration::from_secs(20))))
            .http_status_as_error(false)
            .build()
            .into();
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
            network: info.network,
            #[cfg(feature = "flow")]
            flow,
            config,
            http,
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

    /// The router: the page, its API, the OpenAI-compatible API, `/metrics` and
    /// `/healthz`.
    pub fn router(self: &Arc<Self>) -> Router {
        let quick = Router::new()
            .route("/api/info", get(api::info))
            .route("/api/models", get(api::models))
            .route("/api/nodes", get(api::nodes))
            .route("/api/nodes/{owner}", get(api::node))
            .route("/api/accounts/{address}", get(api::account))
            .route("/api/tasks", get(api::tasks))
            .route("/api/tasks/{id}", get(api::task))
            .route("/api/outputs", get(api::outputs))
            .route("/api/nfts/{owner}", get(api::nfts))
            .route("/api/blobs/{sha256}", get(api::blob))
            .route("/api/relay", post(api::relay))
            .route("/v1/models", get(openai::models))
            .route("/v1/models/{model}", get(openai::model))
            .route("/metrics", get(metrics));
        #[cfg(feature = "flow")]
        let quick = quick.merge(crate::flow::routes());
        let quick = quick.layer(middleware::from_fn_with_state(self.clone(), timeout));
        // These wait on purpose: the event stream until the task ends, the OpenAI
        // generations until their tasks are delivered (with their own timeout).
        let waiting = Router::new()
            .route("/api/tasks/{id}/events", get(api::task_events))
            .route("/v1/images/generations", post(openai::images))
            .route("/v1/completions", post(openai::completions))
            .route("/v1/embeddings", post(openai::embeddings))
            .route("/v1/chat/completions", post(openai::chat));
        let mut router = Router::new()
            .merge(quick)
            .merge(waiting)
            .route("/healthz", get(|| async { "ok" }))
            .route("/", get(assets::index))
            .route("/assets/{*path}", get(assets::asset))
            .layer(middleware::from_fn_with_state(self.clone(), page_policy))
            .fallback(fallback)
            .layer(DefaultBodyLimit::max(self.config.max_body_bytes))
            .layer(middleware::from_fn_with_state(self.clone(), limit_ip));
        if !self.config.cors_origins.is_empty() {
            let origins: Vec<HeaderValue> = self
                .config
                .cors_origins
                .iter()
                .filter_map(|o| HeaderValue::from_str(o).ok())
                .collect();
            router = router.layer(
                tower_http::cors::CorsLayer::new()
                    .allow_origin(origins)
                    .allow_methods([Method::GET, Method::POST])
                    .allow_headers([header::CONTENT_TYPE, header::AUTHORIZATION])
                    .max_age(Duration::from_secs(600)),
            );
        }
        router
            .layer(middleware::from_fn_with_state(self.clone(), check_host))
            .layer(middleware::from_fn_with_state(self.clone(), observe))
            .with_state(self.clone())
    }

    /// Starts the event hub's poller, which reads the ledger while tasks are watched
    /// (the event streams and the OpenAI requests wait on it), until `stop` turns true;
    /// then ends the streams and waiting requests. [`Gateway::serve`] starts it; an app
    /// that mounts [`Gateway::router`] itself starts it once.
    pub fn spawn_events(
        self: &Arc<Self>,
        stop: watch::Receiver<bool>,
    ) -> tokio::task::JoinHandle<()> {
        let hub = tokio::spawn(
            self.hub
                .clone()
                .run(self.config.poll_interval, stop.clone()),
        );
        let gateway = self.clone();
        tokio::spawn(async move {
            let mut stop = stop;
            stopped(&mut stop).await;
            // End the streams and waits first: the shutdown waits for every connection
            // to finish.
            gateway.closing.send_replace(true);
            let _ = hub.await;
        })
    }

    /// Serves on `listener` until `stop` turns true, with the event hub's poller and
    /// the header timeout of its config.
    pub async fn serve(
        self: Arc<Self>,
        listener: tokio::net::TcpListener,
        stop: watch::Receiver<bool>,
    ) -> Result<()> {
        let events = self.spawn_events(stop.clone());
        let mut stop = stop;
        let stop = async move { stopped(&mut stop).await };
        let served = serve(listener, self.router(), self.config.header_timeout, stop).await;
        let _ = events.await;
        served
    }

    /// Task counts by status, for `/metrics`.
    async fn task_counts(&self) -> flownet_core::Result<Vec<(&'static str, u64)>> {
        Ok(self
            .ledger
            .task_counts()
            .await?
            .into_iter()
            .map(|(s, n)| (s.as_str(), n))
            .collect())
    }
}

async fn metrics(State(g): State<Arc<Gateway>>) -> ApiResult<Response> {
    let counts = g.task_counts().await?;
    Ok((
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        g.metrics.render(&counts),
    )
        .into_response())
}

async fn fallback(method: Method, uri: axum::http::Uri) -> ApiError {
    ApiError::not_found(format!("no route for {method} {}", uri.path()))
        .with_type("invalid_request_error")
}

/// On Flow with an FCL discovery wallet, lets the page frame that wallet's origin
/// (the discovery and login run in a frame); the policy is unchanged otherwise.
async fn page_policy(
    #[cfg_attr(not(feature = "flow"), allow(unused_variables))] State(g): State<Arc<Gateway>>,
    req: Request,
    next: Next,
) -> Response {
    #[cfg_attr(not(feature = "flow"), allow(unused_mut))]
    let mut response = next.run(req).await;
    #[cfg(feature = "flow")]
    if let Some(origin) = g.flow.as_ref().and_then(|f| f.discovery_origin())
        && let Some(csp) = response
            .headers()
            .get(header::CONTENT_SECURITY_POLICY)
            .and_then(|v| v.to_str().ok())
        && let Ok(v) = HeaderValue::from_str(&format!("{csp}; frame-src {origin}"))
    {
        response
            .headers_mut()
            .insert(header::CONTENT_SECURITY_POLICY, v);
    }
    response
}

/// Counts every answer by route pattern and status code.
async fn observe(State(g): State<Arc<Gateway>>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |m| m.as_str().to_owned());
    let method = req.method().clone();
    let response = next.run(req).await;
    g.metrics
        .http_request(&route, method.as_str(), response.status().as_u16());
    response
}

/// Refuses requests whose `Host` is not this gateway's: a page on another site that
/// rebinds its name to 127.0.0.1 would otherwise read the API as same-origin.
async fn check_host(State(g): State<Arc<Gateway>>, req: Request, next: Next) -> Response {
    if !host_allowed(req.headers(), &g.config.allowed_hosts) {
        return ApiError::new(
            axum::http::StatusCode::MISDIRECTED_REQUEST,
            "host_not_allowed",
            "this gateway does not answer for that Host (start it with --allowed-host NAME)",
        )
        .into_response();
    }
    next.run(req).await
}

fn host_allowed(headers: &HeaderMap, allowed: &[String]) -> bool {
    if allowed.iter().any(|h| h == "*") {
        return true;
    }
    // HTTP/1.1 requires Host; a request without one is not from a browser page.
    let Some(host) = headers.get(header::HOST).and_then(|h| h.to_str().ok()) else {
        return true;
    };
    let name = if let Some(rest) = host.strip_prefix('[') {
        rest.split(']').next().unwrap_or("")
    } else {
        host.rsplit_once(':').map_or(host, |(n, _)| n)
    };
    let name = name.to_ascii_lowercase();
    name == "localhost"
        || name.parse::<IpAddr>().is_ok()
        || allowed.iter().any(|a| a.eq_ignore_ascii_case(&name))
}

/// Rate-limits the APIs per client IP.
async fn limit_ip(State(g): State<Arc<Gateway>>, req: Request, next: Next) -> Response {
    let path = req.uri().path();
    if path.starts_with("/api/") || path.starts_with("/v1/") {
        let ip = req
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |c| c.0.ip());
        if let Err(retry) = g.ip_limiter.check(&ip, g.config.ip_rate) {
            g.metrics.rate_limited("ip");
            return ApiError::rate_limited("client address", retry).into_response();
        }
    }
    next.run(req).await
}

/// Answers 504 when a quick route takes longer than the request timeout.
async fn timeout(State(g): State<Arc<Gateway>>, req: Request, next: Next) -> Response {
    match tokio::time::timeout(g.config.request_timeout, next.run(req)).await {
        Ok(r) => r,
        Err(_) => ApiError::new(
            axum::http::StatusCode::GATEWAY_TIMEOUT,
            "timeout",
            format!(
                "the gateway gave up after {} s",
                g.config.request_timeout.as_secs()
            ),
        )
        .into_response(),
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

/// Resolves once `stop` says true (or its sender is gone).
/// Serves `app` on `listener` until `stop` resolves, then waits for the open
/// connections to finish. Each request carries its client's `ConnectInfo<SocketAddr>`.
/// It runs hyper's own connection loop rather than `axum::serve`, for the header
/// timeout: a client that opens a connection and never finishes its headers is cut off
/// after `header_timeout` instead of holding it (and a task) forever.
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: Router,
    header_timeout: Duration,
    stop: impl Future<Output = ()> + Send,
) -> Result<()> {
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut stop = std::pin::pin!(stop);
    loop {
        let (tcp, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(c) => c,
                Err(e) => {
                    // Out of file descriptors and the like: wait, don't spin.
                    tracing::warn!("accepting a connection: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut stop => break,
        };
        // Event streams write small frames that must leave at once, not wait for
        // Nagle's algorithm to batch them.
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!("TCP_NODELAY: {e}");
        }
        let service = hyper_util::service::TowerToHyperService::new(
            app.clone().layer(axum::Extension(ConnectInfo(peer))),
        );
        let conn = hyper::server::conn::http1::Builder::new()
            .timer(hyper_util::rt::TokioTimer::new())
            .header_read_timeout(header_timeout)
            .serve_connection(hyper_util::rt::TokioIo::new(tcp), service);
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!("connection from {peer}: {e}");
            }
        });
    }
    graceful.shutdown().await;
    Ok(())
}

async fn stopped(stop: &mut watch::Receiver<bool>) {
    while !*stop.borrow() {
        if stop.changed().await.is_err() {
            break;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_and_allowed_hosts_pass() {
        let h = |v: &str| {
            let mut m = HeaderMap::new();
            m.insert(header::HOST, HeaderValue::from_str(v).unwrap());
            m
        };
        let none: Vec<String> = Vec::new();
        assert!(host_allowed(&h("127.0.0.1:8080"), &none));
        assert!(host_allowed(&h("localhost:8080"), &none));
        assert!(host_allowed(&h("[::1]:8080"), &none));
        assert!(!host_allowed(&h("evil.example:8080"), &none));
        assert!(host_allowed(&h("flownet.lan"), &["flownet.lan".to_owned()]));
        assert!(host_allowed(&h("anything"), &["*".to_owned()]));
    }
}
