//! The shutdown signal: one `watch` channel per running gateway, set to `true` by
//! SIGTERM/SIGINT or [`crate::server::Running::shutdown`]; every long-running task holds a
//! receiver and ends when [`stopped`] resolves. [`signal`] waits for SIGTERM/SIGINT, for the
//! gateway and the credentials agent alike.

use tokio::sync::watch;

/// Resolves once shutdown has been asked for (or the sender is gone).
pub async fn stopped(rx: &mut watch::Receiver<bool>) {
    let _ = rx.wait_for(|&s| s).await;
}

/// Resolves on SIGTERM or SIGINT; if those handlers cannot be registered, on Ctrl-C (and
/// never, if that cannot be waited for either).
pub async fn signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        }
        _ => {
            if tokio::signal::ctrl_c().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    }
}
