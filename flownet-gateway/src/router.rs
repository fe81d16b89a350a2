//! The gateway's router, the layers every request goes through, and serving it.

use std::{
    net::{IpAddr, Ipv4Addr, SocketAddr},
    sync::Arc,
    time::Duration,
};

use axum::{
    Router,
    extract::{ConnectInfo, DefaultBodyLimit, MatchedPath, Request, State},
    http::{HeaderMap, HeaderValue, Method, header},
    middleware::{self, Next},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use tokio::sync::watch;

use crate::{
    Result, api,
    api_error::{ApiError, ApiResult},
    assets,
    gateway::Gateway,
    openai,
};

impl Gateway {
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
            .route("/ipfs/{cid}", get(api::ipfs_block))
            .route("/api/relay", post(api::relay))
            // Images held for the page go past the body limit (up to their own).
            .route(
                "/api/inputs",
                post(api::inputs).layer(DefaultBodyLimit::max(
                    self.config.max_image_bytes.max(self.config.max_body_bytes),
                )),
            )
            .route("/v1/models", get(openai::models))
            .route("/v1/models/{model}", get(openai::model))
            .route("/metrics", get(metrics));
        #[cfg(feature = "flow")]
        let quick = quick.merge(crate::flow::routes());
        let quick = quick.layer(middleware::from_fn_with_state(self.clone(), timeout));
        // These wait on purpose: the event streams until the task ends, the OpenAI
        // generations until their tasks are delivered (with their own timeout).
        // The paid routes check the API key before they read a byte of the body.
        let paid = Router::new()
            .route("/v1/images/generations", post(openai::images))
            .route("/v1/completions", post(openai::completions))
            .route("/v1/embeddings", post(openai::embeddings))
            .route("/v1/audio/speech", post(openai::speech))
            .route("/v1/chat/completions", post(openai::chat))
            .route_layer(middleware::from_fn_with_state(
                self.clone(),
                openai::require_key,
            ));
        let waiting = Router::new()
            .route("/api/tasks/{id}/events", get(api::task_events))
            .route("/api/tasks/{id}/stream", get(api::task_stream))
            .merge(paid);
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
            gateway.close();
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
        let served = flownet_node::serve(listener, self.router(), self.config.http_limits(), stop)
            .await
            .map_err(crate::Error::io("serving"));
        let _ = events.await;
        served
    }
}

async fn metrics(State(g): State<Arc<Gateway>>, headers: HeaderMap) -> ApiResult<Response> {
    if let Some(token) = &g.config.metrics_token {
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("");
        // Compared as digests, so the time taken says nothing of the token.
        if flownet_core::crypto::sha256(given.as_bytes())
            != flownet_core::crypto::sha256(token.as_bytes())
        {
            return Err(ApiError::new(
                axum::http::StatusCode::UNAUTHORIZED,
                "metrics_token_required",
                "this gateway's /metrics needs Authorization: Bearer <its metrics token>",
            ));
        }
    }
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
    if path.starts_with("/api/") || path.starts_with("/v1/") || path == "/metrics" {
        let ip = req
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |c| c.0.ip());
        let key = flownet_core::rate::client_key(ip);
        if let Err(retry) = g.ip_limiter.check(&key, g.config.ip_rate) {
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

/// Resolves once `stop` says true (or its sender is gone).
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
