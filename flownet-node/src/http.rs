//! One serving loop for every FlowNet HTTP server — the node's blob server, the
//! gateway and the sponsor service: hyper's own HTTP/1 connection loop with a header
//! timeout (a client that never finishes its headers, or idles on a kept-alive
//! connection, is cut off), a body timeout (a request body must arrive whole within
//! it) and a cap on open connections (past it, new connections wait in the listen
//! backlog). Each request carries its client's `ConnectInfo<SocketAddr>`.

use std::{future::Future, net::SocketAddr, sync::Arc, time::Duration};

use axum::{
    Router,
    extract::{ConnectInfo, Request, State},
    http::header,
    middleware::{self, Next},
    response::Response,
};
use futures::StreamExt as _;
use tokio::sync::Semaphore;

/// The limits of [`serve`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpLimits {
    /// Longest a client may take to send a request's headers, and to send the next
    /// request on a kept-alive connection.
    pub header_timeout: Duration,
    /// Longest a client may take to send a request's body, from its headers on.
    pub body_timeout: Duration,
    /// Most connections open at once.
    pub max_connections: usize,
}

impl Default for HttpLimits {
    fn default() -> Self {
        Self {
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(30),
            max_connections: 1024,
        }
    }
}

/// The error a body read gets once its deadline passed.
#[derive(Debug)]
struct BodyTimeout;

impl std::fmt::Display for BodyTimeout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the request body did not arrive in time")
    }
}

impl std::error::Error for BodyTimeout {}

/// Gives a request's body a deadline: reading it fails once `timeout` has passed
/// since the headers came.
async fn body_deadline(State(timeout): State<Duration>, req: Request, next: Next) -> Response {
    let has_body = req.headers().contains_key(header::TRANSFER_ENCODING)
        || req
            .headers()
            .get(header::CONTENT_LENGTH)
            .is_some_and(|v| v.as_bytes() != b"0");
    if !has_body {
        return next.run(req).await;
    }
    let deadline = tokio::time::sleep(timeout);
    let (parts, body) = req.into_parts();
    let data = body.into_data_stream();
    // Each read races the one deadline, so a body that keeps dribbling is cut off too.
    let timed = futures::stream::unfold(Some((data, Box::pin(deadline))), |state| async move {
        let (mut data, mut deadline) = state?;
        tokio::select! {
            item = data.next() => {
                let item = item?.map_err(axum::BoxError::from);
                Some((item, Some((data, deadline))))
            }
            () = &mut deadline => Some((Err(axum::BoxError::from(BodyTimeout)), None)),
        }
    });
    let req = Request::from_parts(parts, axum::body::Body::from_stream(timed));
    next.run(req).await
}

/// Serves `app` on `listener` under `limits` until `stop` resolves, then waits for the
/// open connections to finish.
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: Router,
    limits: HttpLimits,
    stop: impl Future<Output = ()> + Send,
) -> std::io::Result<()> {
    let app = app.layer(middleware::from_fn_with_state(
        limits.body_timeout,
        body_deadline,
    ));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let mut stop = std::pin::pin!(stop);
    loop {
        let slot = tokio::select! {
            s = slots.clone().acquire_owned() => match s {
                Ok(s) => s,
                Err(_) => break,
            },
            () = &mut stop => break,
        };
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
            app.clone()
                .layer(axum::Extension(ConnectInfo::<SocketAddr>(peer))),
        );
        let conn = hyper::server::conn::http1::Builder::new()
            .timer(hyper_util::rt::TokioTimer::new())
            .header_read_timeout(limits.header_timeout)
            .serve_connection(hyper_util::rt::TokioIo::new(tcp), service);
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!("connection from {peer}: {e}");
            }
            drop(slot);
        });
    }
    // Open connections get a moment to finish; an event stream or a client that
    // keeps its connection open does not hold the process past it.
    if tokio::time::timeout(SHUTDOWN_GRACE, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::debug!("connections still open after {SHUTDOWN_GRACE:?}: closing them");
    }
    Ok(())
}

/// How long [`serve`] waits for open connections once stopped.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(3);
