//! One shutdown signal for the whole process.
//!
//! SIGINT or SIGTERM cancels [`Shutdown::token`]; the listener stops accepting, every connection
//! and long-lived task (`select!`ing on the token) winds down, and the server waits up to the
//! grace period for them before the process exits 0. A second SIGINT or SIGTERM during that
//! wait ends the process at once, with status 1 (an operator's second Ctrl-C). SIGHUP
//! (`systemctl reload`) never ends the process: it reloads TLS certificate files when they are
//! configured (`cert_reload`), and is logged otherwise.

use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// The shared shutdown handle: a cancellation token plus a tracker of long-lived tasks
/// (WebSockets) that must be drained before exit.
#[derive(Debug, Clone, Default)]
pub struct Shutdown {
    token: CancellationToken,
    tasks: TaskTracker,
}

impl Shutdown {
    /// A fresh, not yet triggered handle.
    pub fn new() -> Self {
        Self::default()
    }

    /// The token every connection selects on.
    pub fn token(&self) -> &CancellationToken {
        &self.token
    }

    /// Starts shutdown (idempotent).
    pub fn trigger(&self) {
        self.token.cancel();
    }

    /// Whether shutdown has started.
    pub fn is_triggered(&self) -> bool {
        self.token.is_cancelled()
    }

    /// Tracks a long-lived task so [`Shutdown::drain`] waits for it.
    pub fn track<F>(&self, future: F) -> tokio_util::task::task_tracker::TrackedFuture<F>
    where
        F: std::future::Future,
    {
        self.tasks.track_future(future)
    }

    /// Waits for every tracked task, up to `grace`. Returns how many were still running.
    pub async fn drain(&self, grace: Duration) -> usize {
        self.tasks.close();
        match tokio::time::timeout(grace, self.tasks.wait()).await {
            Ok(()) => 0,
            Err(_) => self.tasks.len(),
        }
    }

    /// Triggers this handle when the process receives SIGINT or SIGTERM, exits at a second
    /// one, and takes SIGHUP (whose default action would end the process).
    pub fn listen_for_signals(&self) {
        let this = self.clone();
        tokio::spawn(async move {
            let reason = wait_for_signal().await;
            tracing::info!(signal = reason, "shutdown requested");
            this.trigger();
            let again = wait_for_signal().await;
            tracing::warn!(
                signal = again,
                "second signal: exiting without waiting for the grace period"
            );
            std::process::exit(1);
        });
        #[cfg(unix)]
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
            Ok(mut hangups) => {
                tokio::spawn(async move {
                    while hangups.recv().await.is_some() {
                        tracing::info!("SIGHUP: certificate files, if configured, are checked now");
                    }
                });
            }
            Err(err) => tracing::warn!(error = %err, "cannot handle SIGHUP"),
        }
    }
}

async fn wait_for_signal() -> &'static str {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let term = signal(SignalKind::terminate());
        let int = signal(SignalKind::interrupt());
        match (term, int) {
            (Ok(mut term), Ok(mut int)) => tokio::select! {
                _ = term.recv() => "SIGTERM",
                _ = int.recv() => "SIGINT",
            },
            _ => {
                tracing::warn!("cannot install signal handlers; falling back to ctrl-c");
                let _ = tokio::signal::ctrl_c().await;
                "ctrl-c"
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
        "ctrl-c"
    }
}
