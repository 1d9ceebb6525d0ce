//! The admin HTTP server: `/metrics` (Prometheus text), `/healthz` (the
//! process is alive), `/readyz` (it can do its job, e.g. a model is loaded).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::Router;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use prometheus::{Encoder, TextEncoder};
use tokio_util::sync::CancellationToken;

/// Where the admin server listens (`#[command(flatten)]`).
#[derive(Debug, Clone, clap::Args)]
pub struct AdminArgs {
    /// Address of the admin HTTP server (/metrics, /healthz, /readyz).
    #[arg(long, env = "METRICS_ADDR", default_value = "0.0.0.0:9090")]
    pub metrics_addr: SocketAddr,
}

/// Whether the service is ready; shared between the work and `/readyz`.
#[derive(Debug, Clone, Default)]
pub struct Readiness(Arc<AtomicBool>);

impl Readiness {
    pub fn set(&self, ready: bool) {
        self.0.store(ready, Ordering::Release);
    }
    pub fn is_ready(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}

/// Prometheus text exposition of the default registry.
pub async fn metrics_text() -> impl IntoResponse {
    let mut buf = Vec::new();
    let encoder = TextEncoder::new();
    match encoder.encode(&prometheus::gather(), &mut buf) {
        Ok(()) => (StatusCode::OK, [(header::CONTENT_TYPE, encoder.format_type().to_string())], buf).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

/// The admin routes; services may merge their own routes into it.
pub fn router(ready: Readiness) -> Router {
    Router::new().route("/metrics", get(metrics_text)).route("/healthz", get(|| async { "ok" })).route(
        "/readyz",
        get(move || {
            let ready = ready.clone();
            async move {
                if ready.is_ready() {
                    (StatusCode::OK, "ready")
                } else {
                    (StatusCode::SERVICE_UNAVAILABLE, "not ready")
                }
            }
        }),
    )
}

/// Bind the admin server's address (a stage binds before it starts work, so a
/// taken port fails the start at once).
pub async fn bind(addr: SocketAddr) -> anyhow::Result<tokio::net::TcpListener> {
    let listener =
        tokio::net::TcpListener::bind(addr).await.map_err(|e| anyhow::anyhow!("bind admin server on {addr}: {e}"))?;
    tracing::info!(addr = %listener.local_addr()?, "admin server listening");
    Ok(listener)
}

/// How long a client of the admin server has to send its request line and headers.
pub const ADMIN_HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// Serve `router` on a bound `listener` until `cancel` fires, with
/// [`ADMIN_HEADER_TIMEOUT`].
pub async fn serve_on(
    listener: tokio::net::TcpListener,
    router: Router,
    cancel: CancellationToken,
) -> anyhow::Result<()> {
    serve_http(listener, router, ADMIN_HEADER_TIMEOUT, cancel).await
}

/// Serve `router` over HTTP/1.1 on `listener` until `cancel` fires; requests
/// in flight finish. Every HTTP server of the pipeline (admin and inference)
/// runs on this.
///
/// hyper's connection builder rather than `axum::serve`, which sets no timer
/// and therefore no header timeout: a connection whose request line and
/// headers are not complete within `header_timeout` (idle keep-alive
/// connections included) is closed, so slow or stalled clients cannot hold
/// connections open (issue 17).
pub async fn serve_http(
    listener: tokio::net::TcpListener,
    router: Router,
    header_timeout: Duration,
    cancel: CancellationToken,
) -> anyhow::Result<()> {
    // Every connection task holds a receiver; `closed()` waits for the last one.
    let (open, held) = tokio::sync::watch::channel(());
    loop {
        let stream = tokio::select! {
            _ = cancel.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of file descriptors and the like: wait instead of spinning.
                    tracing::warn!(error = %e, "HTTP accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let service = hyper_util::service::TowerToHyperService::new(router.clone());
        let (cancel, held) = (cancel.clone(), held.clone());
        tokio::spawn(async move {
            let _held = held;
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder.timer(hyper_util::rt::TokioTimer::new()).header_read_timeout(header_timeout);
            let conn = builder.serve_connection(hyper_util::rt::TokioIo::new(stream), service);
            tokio::pin!(conn);
            tokio::select! {
                done = conn.as_mut() => {
                    if let Err(e) = done {
                        tracing::debug!(error = %e, "HTTP connection ended");
                    }
                    return;
                }
                _ = cancel.cancelled() => conn.as_mut().graceful_shutdown(),
            }
            let _ = conn.await;
        });
    }
    drop(held);
    open.closed().await;
    Ok(())
}

/// Serve `router` on `addr` until `cancel` fires.
pub async fn serve(addr: SocketAddr, router: Router, cancel: CancellationToken) -> anyhow::Result<()> {
    serve_on(bind(addr).await?, router, cancel).await
}
