//! FLTS process plumbing shared by every binary.
//!
//! # Layout
//! - [`Secret`]: a string that prints as `***`.
//! - [`logging`]: structured logs (JSON off a terminal, text on one).
//! - [`shutdown`]: one [`CancellationToken`](tokio_util::sync::CancellationToken)
//!   per process, cancelled by the first SIGTERM or SIGINT.
//! - [`admin`]: the admin HTTP server every service runs: `/metrics`,
//!   `/healthz`, `/readyz`.

pub mod admin;
pub mod logging;
pub mod shutdown;

/// A secret that never appears in logs or `Debug` output.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }
    /// The secret itself; call only where it is handed to a client.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

impl std::str::FromStr for Secret {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Secret(s.to_string()))
    }
}
