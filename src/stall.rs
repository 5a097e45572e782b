//! [`StallGuard`]: a connection whose peer stops reading is cut off. Every accepted TCP
//! connection is wrapped in one (under TLS, too): when a write has made no progress for
//! `http.write_stall_secs`, the write fails with `TimedOut` and hyper closes the connection.
//!
//! Why at the socket: a response body (an SSE stream, a large archive page) is written by
//! hyper, which has no write timeout; a public subscriber whose network died would otherwise
//! hold its connection, its file descriptor and its subscriber slot until TCP gives up (many
//! minutes). WebSocket sessions have their own, shorter, write timeouts; this is the backstop
//! for everything. The timer exists only while a write is pending (one allocation when a
//! write first blocks, none on the usual path) and restarts whenever a write progresses.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Sleep;

use crate::held::Held;

/// An I/O stream whose writes fail after stalling for `limit`.
#[derive(Debug)]
pub struct StallGuard<S> {
    inner: S,
    limit: Duration,
    /// Armed when a write returned `Pending`; cleared when one completes.
    stalled: Option<Pin<Box<Sleep>>>,
    /// The connection's place under the cap, given back when the socket closes (see
    /// [`Held`]); `None` where the serving task holds it.
    held: Option<Held>,
}

impl<S> StallGuard<S> {
    /// Wraps `inner`.
    pub fn new(inner: S, limit: Duration) -> StallGuard<S> {
        StallGuard {
            inner,
            limit,
            stalled: None,
            held: None,
        }
    }

    /// The same stream, holding `held` for as long as it lives (wherever hyper moves it).
    pub fn holding(mut self, held: Held) -> StallGuard<S> {
        self.held = Some(held);
        self
    }

    /// Holds `held` from now on (a TLS stream's, once its handshake is done).
    pub fn hold(&mut self, held: Held) {
        self.held = Some(held);
    }

    /// The wrapped stream (for a connection that takes over its own write timeouts).
    pub fn into_inner(self) -> S {
        self.inner
    }

    /// `result` of a write attempt, with the stall timer applied.
    fn check<T>(
        &mut self,
        cx: &mut Context<'_>,
        result: Poll<io::Result<T>>,
    ) -> Poll<io::Result<T>> {
        if result.is_ready() {
            self.stalled = None;
            return result;
        }
        let limit = self.limit;
        let timer = self
            .stalled
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
        match timer.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("peer read nothing for {} s", limit.as_secs()),
            ))),
            Poll::Pending => Poll::Pending,
        }
    }
}

use std::future::Future as _;

impl<S: AsyncRead + Unpin> AsyncRead for StallGuard<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for StallGuard<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let result = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.check(cx, result)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let result = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.check(cx, result)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let result = Pin::new(&mut self.inner).poll_flush(cx);
        self.check(cx, result)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    use super::*;

    #[tokio::test]
    async fn a_write_stalled_past_the_limit_fails_and_progress_resets_the_timer() {
        let limit = Duration::from_millis(300);
        let (near, mut far) = tokio::io::duplex(64);
        let mut guarded = StallGuard::new(near, limit);
        // Progress, with pauses shorter than the limit: never an error.
        let reader = tokio::spawn(async move {
            let mut buf = [0u8; 64];
            for _ in 0..4 {
                tokio::time::sleep(Duration::from_millis(150)).await;
                let _ = far.read(&mut buf).await;
            }
            far
        });
        for _ in 0..4 {
            guarded.write_all(&[7u8; 64]).await.expect("progress");
        }
        let far = reader.await.expect("reader");
        // The reader stops: the buffer fills, and the next write fails after the limit.
        guarded
            .write_all(&[7u8; 64])
            .await
            .expect("fills the buffer");
        let started = std::time::Instant::now();
        let err = guarded.write_all(&[7u8; 1]).await.expect_err("stalled");
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert!(started.elapsed() >= limit, "{:?}", started.elapsed());
        drop(far);
    }
}
