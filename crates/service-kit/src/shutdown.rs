//! Signal-driven shutdown: one cancellation token per process.

use tokio::signal::unix::{SignalKind, signal};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

/// A token cancelled by the first SIGTERM or SIGINT. Later signals are logged
/// (the process is already draining); SIGQUIT exits at once with status 131.
pub fn shutdown_token() -> CancellationToken {
    let token = CancellationToken::new();
    let cancel = token.clone();
    tokio::spawn(async move {
        let (Ok(mut term), Ok(mut int), Ok(mut quit)) =
            (signal(SignalKind::terminate()), signal(SignalKind::interrupt()), signal(SignalKind::quit()))
        else {
            warn!("cannot install signal handlers; shutdown only by process kill");
            return;
        };
        loop {
            let name = tokio::select! {
                _ = term.recv() => "SIGTERM",
                _ = int.recv() => "SIGINT",
                _ = quit.recv() => {
                    warn!("SIGQUIT: exiting immediately");
                    std::process::exit(131);
                }
            };
            if cancel.is_cancelled() {
                info!(signal = name, "already shutting down");
            } else {
                info!(signal = name, "shutting down gracefully: finishing the record in hand");
                cancel.cancel();
            }
        }
    });
    token
}
