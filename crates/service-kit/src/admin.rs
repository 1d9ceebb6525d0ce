//! The admin HTTP server: `/metrics` (Prometheus text), `/healthz` (the
//! process is alive), `/readyz` (it can do its job, e.g. a model is loaded).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

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

/// Serve `router` on a bound `listener` until `cancel` fires.
pub async fn serve_on(listener: tokio::net::TcpListener, router: Router, cancel: CancellationToken) -> anyhow::Result<()> {
    axum::serve(listener, router).with_graceful_shutdown(async move { cancel.cancelled().await }).await?;
    Ok(())
}

/// Serve `router` on `addr` until `cancel` fires.
pub async fn serve(addr: SocketAddr, router: Router, cancel: CancellationToken) -> anyhow::Result<()> {
    serve_on(bind(addr).await?, router, cancel).await
}
