//! The shutdown signal: one `watch` channel per running gateway, set to `true` by
//! SIGTERM/SIGINT or [`crate::server::Running::shutdown`]; every long-running task holds a
//! receiver and ends when [`stopped`] resolves.

use tokio::sync::watch;

/// Resolves once shutdown has been asked for (or the sender is gone).
pub async fn stopped(rx: &mut watch::Receiver<bool>) {
    let _ = rx.wait_for(|&s| s).await;
}
