//! What a served connection holds for as long as its socket is open: its place under
//! `http.max_connections` and in the `hubcast_http_connections` gauge ([`Held`]). A hyper
//! connection's is carried by its socket's [`crate::stall::StallGuard`].
//!
//! Why on the socket, not the serving task: hyper's connection future ends as soon as it hands
//! an upgraded connection (a WebSocket) to its handler, while the socket lives on in the
//! handler's task. A permit held by the serving task would be given back then, and WebSockets
//! would not count against the cap at all: enough of them would use up the process's file
//! descriptors and stop every accept. Inside the stream, the permit goes wherever the socket
//! goes and is given back when it closes.

use tokio::sync::OwnedSemaphorePermit;

/// A connection's permit and its place in the connections gauge, both given back on drop.
#[derive(Debug)]
pub struct Held {
    _permit: OwnedSemaphorePermit,
    _counted: Counted,
}

impl Held {
    /// Holds `permit` and counts the connection in `gauge` until dropped.
    pub fn new(permit: OwnedSemaphorePermit, gauge: prometheus::IntGauge) -> Held {
        Held {
            _permit: permit,
            _counted: Counted::new(gauge),
        }
    }
}

/// A place in a gauge (an open WebSocket session, say), given back on drop: also when its
/// task panics or is cancelled at shutdown, where a hand-made `dec` at the end would be skipped
/// and the gauge would count a session for good.
#[derive(Debug)]
pub struct Counted(prometheus::IntGauge);

impl Counted {
    /// Counts one in `gauge` until dropped.
    pub fn new(gauge: prometheus::IntGauge) -> Counted {
        gauge.inc();
        Counted(gauge)
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.dec();
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    use tokio::sync::Semaphore;

    use super::*;
    use crate::stall::StallGuard;

    #[tokio::test]
    async fn the_permit_and_the_gauge_go_with_the_stream() {
        let cap = Arc::new(Semaphore::new(1));
        let gauge = prometheus::IntGauge::new("held_test", "test").expect("gauge");
        let permit = cap.clone().try_acquire_owned().expect("a place");
        let (near, mut far) = tokio::io::duplex(64);
        let mut held = StallGuard::new(near, Duration::from_secs(10))
            .holding(Held::new(permit, gauge.clone()));
        assert_eq!((cap.available_permits(), gauge.get()), (0, 1));
        held.write_all(b"ping").await.expect("write");
        let mut buf = [0u8; 4];
        far.read_exact(&mut buf).await.expect("read");
        assert_eq!(&buf, b"ping");
        // Moved elsewhere (as hyper moves an upgraded socket): still held.
        let moved = tokio::spawn(async move { held }).await.expect("task");
        assert_eq!((cap.available_permits(), gauge.get()), (0, 1));
        drop(moved);
        assert_eq!((cap.available_permits(), gauge.get()), (1, 0));
    }

    #[tokio::test]
    async fn a_counted_session_is_uncounted_even_when_its_task_is_aborted() {
        let gauge = prometheus::IntGauge::new("counted_test", "test").expect("gauge");
        let counted = gauge.clone();
        let task = tokio::spawn(async move {
            let _counted = Counted::new(counted);
            std::future::pending::<()>().await;
        });
        tokio::task::yield_now().await;
        while gauge.get() == 0 {
            tokio::task::yield_now().await;
        }
        task.abort();
        assert!(task.await.is_err_and(|e| e.is_cancelled()));
        assert_eq!(gauge.get(), 0);
    }
}
