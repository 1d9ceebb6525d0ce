//! Structured logging.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

/// Install the global subscriber for `service`. `RUST_LOG` sets levels
/// (default `default_level`: `info` for services, `warn` for CLIs);
/// `LOG_FORMAT` is `json` or `text` (default: text on a terminal, JSON
/// otherwise, which is what log shippers want).
pub fn init(service: &str, default_level: &str) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_level));
    let json = match std::env::var("LOG_FORMAT").ok().as_deref() {
        Some("json") => true,
        Some("text") => false,
        _ => !std::io::stderr().is_terminal(),
    };
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let result = if json {
        builder.json().flatten_event(true).with_current_span(false).try_init()
    } else {
        builder.compact().try_init()
    };
    if result.is_ok() {
        tracing::info!(service, version = env!("CARGO_PKG_VERSION"), "starting");
    }
}
