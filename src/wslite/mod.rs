//! A lean server-side WebSocket for broadcast endpoints (`/ws/alerts`): the handshake
//! (`handshake`), the framing (`frame`), and [`Conn`], the upgraded connection.
//!
//! Why not axum's `WebSocket` (tungstenite) here: a broadcast server writes the same message
//! to every subscriber. Server frames are unmasked, so the encoded frame is the same bytes for
//! everyone: [`Conn::send_texts`] writes a 2–10 byte header and the shared payload (`Bytes`,
//! serialized once per alert) with one `writev`, copying nothing per subscriber. Reading keeps
//! no buffer of its own (tungstenite holds and zero-fills a read buffer per connection): the
//! caller reads into a small stack buffer only when the socket is readable, and the decoder
//! keeps at most a control frame. An idle subscriber is the socket, the task and a few hundred
//! bytes of state (BENCHMARKS.md, `alert-load`).
//!
//! Writes first try once without a timer (the common case: the socket has room); only a write
//! that would block waits, bounded by the caller's timeout.

pub mod frame;
pub mod handshake;
pub mod utf8;

use std::io::{self, IoSlice};
use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf as _, Bytes};
use futures_util::FutureExt as _;
use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
use tokio::net::TcpStream;

pub use frame::{ClientEvent, Decoder, FrameError};

/// Frames written per `writev` (each is a header and a payload slice).
const CHUNK: usize = 8;

/// An upgraded WebSocket connection (server side).
#[derive(Debug)]
pub struct Conn {
    io: Io,
    /// Bytes the HTTP server read past the handshake (handed out before the socket's).
    early: Bytes,
    decoder: Decoder,
}

/// Longest a closing connection waits for the client to close its side too.
const LINGER: Duration = Duration::from_secs(1);
/// Most a closing connection reads (and drops) while it waits.
const LINGER_BYTES: usize = 64 * 1024;

/// The connection under the upgrade.
#[derive(Debug)]
enum Io {
    /// Plain TCP served beside hyper (`http::alerts_ws_raw`): shareable, so the alert hub task
    /// can write to it directly (`alerts_live::Direct`).
    Tcp(Arc<TcpStream>),
    /// Through hyper's upgraded stream (TLS, or a later request on a kept-alive connection).
    Upgraded(TokioIo<Upgraded>),
}

impl Conn {
    /// Wraps a connection hyper upgraded (TLS, or a later request on a kept-alive
    /// connection); client data messages over `max_message` bytes end it (1009).
    pub fn new(upgraded: Upgraded, max_message: u64) -> Conn {
        Conn {
            io: Io::Upgraded(TokioIo::new(upgraded)),
            early: Bytes::new(),
            decoder: Decoder::new(max_message),
        }
    }

    /// Wraps a plain-TCP connection after its handshake (`early`: what the client sent past
    /// the request head).
    pub fn tcp(stream: TcpStream, early: Bytes, max_message: u64) -> Conn {
        Conn {
            io: Io::Tcp(Arc::new(stream)),
            early,
            decoder: Decoder::new(max_message),
        }
    }

    /// The plain-TCP socket, for writes from elsewhere that are exclusive with this
    /// connection's own (see `alerts_live::mailbox`); `None` through hyper.
    pub fn socket(&self) -> Option<Arc<TcpStream>> {
        match &self.io {
            Io::Tcp(stream) => Some(stream.clone()),
            Io::Upgraded(_) => None,
        }
    }

    /// Reads what the client sent into `buf` (0: the client closed the connection).
    /// Cancel-safe.
    pub async fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if !self.early.is_empty() {
            let n = self.early.len().min(buf.len());
            buf[..n].copy_from_slice(&self.early[..n]);
            self.early.advance(n);
            return Ok(n);
        }
        match &mut self.io {
            Io::Upgraded(io) => io.read(buf).await,
            Io::Tcp(stream) => read_shared(stream, buf).await,
        }
    }

    /// Decodes `input` (bytes just read); calls `event` for each complete client frame.
    pub fn decode(
        &mut self,
        input: &[u8],
        event: impl FnMut(ClientEvent),
    ) -> Result<(), FrameError> {
        self.decoder.feed(input, event)
    }

    /// Writes each payload as one text frame, in order, within `limit`, except the first
    /// `skip` bytes of the first frame (header included), which are already on the wire.
    pub async fn send_texts<B: AsRef<[u8]>>(
        &mut self,
        payloads: impl IntoIterator<Item = B>,
        mut skip: usize,
        limit: Duration,
    ) -> io::Result<()> {
        let mut heads = [([0u8; 10], 0usize); CHUNK];
        let mut held: [Option<B>; CHUNK] = std::array::from_fn(|_| None);
        let mut n = 0;
        for payload in payloads {
            heads[n] = frame::header(frame::TEXT, payload.as_ref().len());
            held[n] = Some(payload);
            n += 1;
            if n == CHUNK {
                self.write_pairs(&heads, &held[..n], std::mem::take(&mut skip), limit)
                    .await?;
                n = 0;
            }
        }
        if n > 0 {
            self.write_pairs(&heads, &held[..n], skip, limit).await?;
        }
        Ok(())
    }

    /// Writes one text frame built from `text`.
    pub async fn send_text(&mut self, text: &str, limit: Duration) -> io::Result<()> {
        let (head, len) = frame::header(frame::TEXT, text.len());
        let mut slices = [IoSlice::new(&head[..len]), IoSlice::new(text.as_bytes())];
        self.write_all(&mut slices, limit).await
    }

    /// Writes an already encoded control frame ([`frame::control`], [`frame::close`]).
    pub async fn send_raw(&mut self, bytes: &[u8], limit: Duration) -> io::Result<()> {
        let mut slices = [IoSlice::new(bytes)];
        self.write_all(&mut slices, limit).await
    }

    /// Sends a close frame (`code`, `reason`), waiting at most one second, and ends the
    /// connection: our side is shut, then what the client still sends (its own close frame,
    /// the rest of a message refused as too large) is read and dropped until it closes too,
    /// for at most a second and 64 KiB. Closing a socket with bytes unread sends a
    /// reset, which can destroy the close frame on its way: the client would see 1006, not the
    /// code (RFC 6455 § 7.1.1: the server closes first, cleanly).
    pub async fn close(&mut self, code: u16, reason: &str) {
        let _ = self
            .send_raw(&frame::close(code, reason), Duration::from_secs(1))
            .await;
        match &mut self.io {
            Io::Upgraded(io) => {
                let _ = tokio::time::timeout(Duration::from_secs(1), io.shutdown()).await;
            }
            Io::Tcp(stream) => {
                let _ = socket2::SockRef::from(&**stream).shutdown(std::net::Shutdown::Write);
            }
        }
        let linger = async {
            let (mut sink, mut left) = ([0u8; 1024], LINGER_BYTES);
            while left > 0 {
                match self.read(&mut sink).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => left = left.saturating_sub(n),
                }
            }
        };
        let _ = tokio::time::timeout(LINGER, linger).await;
    }

    async fn write_pairs<B: AsRef<[u8]>>(
        &mut self,
        heads: &[([u8; 10], usize); CHUNK],
        payloads: &[Option<B>],
        skip: usize,
        limit: Duration,
    ) -> io::Result<()> {
        let empty = IoSlice::new(&[]);
        let mut slices = [empty; 2 * CHUNK];
        for (i, payload) in payloads.iter().enumerate() {
            let (head, len) = &heads[i];
            slices[2 * i] = IoSlice::new(&head[..*len]);
            slices[2 * i + 1] = IoSlice::new(payload.as_ref().map_or(&[], AsRef::as_ref));
        }
        let mut slices = &mut slices[..2 * payloads.len()];
        let total: usize = slices.iter().map(|s| s.len()).sum();
        IoSlice::advance_slices(&mut slices, skip.min(total));
        self.write_all(slices, limit).await
    }

    async fn write_all(&mut self, slices: &mut [IoSlice<'_>], limit: Duration) -> io::Result<()> {
        match &mut self.io {
            Io::Upgraded(io) => write_all_vectored(io, slices, limit).await,
            Io::Tcp(stream) => write_all_shared(stream, slices, limit).await,
        }
    }
}

/// Reads from a socket shared with the hub task's writers (`&TcpStream`: readiness and a
/// non-blocking read, no `&mut`). Cancel-safe.
pub async fn read_shared(stream: &TcpStream, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        stream.readable().await?;
        match stream.try_read(buf) {
            Err(err) if err.kind() == io::ErrorKind::WouldBlock => {}
            result => return result,
        }
    }
}

/// [`write_all_vectored`] for a socket shared by reference (`try_write_vectored` when
/// writable): the plain-TCP WebSocket and the side-path SSE stream.
pub async fn write_all_shared(
    stream: &TcpStream,
    mut slices: &mut [IoSlice<'_>],
    limit: Duration,
) -> io::Result<()> {
    IoSlice::advance_slices(&mut slices, 0);
    // Set at the first wait, cleared by progress: no timer while the socket has room.
    let mut deadline = None;
    while !slices.is_empty() {
        match stream.try_write_vectored(slices) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => {
                IoSlice::advance_slices(&mut slices, n);
                deadline = None;
            }
            Err(err) if err.kind() == io::ErrorKind::WouldBlock => {
                let at = *deadline.get_or_insert_with(|| tokio::time::Instant::now() + limit);
                tokio::time::timeout_at(at, stream.writable())
                    .await
                    .map_err(|_| io::Error::from(io::ErrorKind::TimedOut))??;
            }
            Err(err) => return Err(err),
        }
    }
    Ok(())
}

/// Writes every slice to `io` and flushes it, failing with `TimedOut` once `limit` passes
/// without progress: a slow but moving reader (a replay over a thin link) is not cut off, a
/// stalled one is. Each write is first tried without a timer (the usual case: the socket has
/// room). Shared by every writer of shared bytes (the WebSocket here, the side-path SSE
/// stream).
///
/// The flush matters over TLS: tokio-rustls takes the bytes into its session and answers
/// "written" while the encrypted records still wait in its buffer for a socket that had no
/// room; unflushed, they would leave only with the next write (the next ping, 30 s later).
pub async fn write_all_vectored<S: AsyncWrite + Unpin>(
    io: &mut S,
    mut slices: &mut [IoSlice<'_>],
    limit: Duration,
) -> io::Result<()> {
    let timed_out = |_| io::Error::from(io::ErrorKind::TimedOut);
    let mut deadline = None;
    // Zero-length slices (an empty payload) are skipped by `advance_slices`.
    while slices.iter().any(|s| !s.is_empty()) {
        let n = match io.write_vectored(slices).now_or_never() {
            Some(result) => result?,
            None => {
                let at = *deadline.get_or_insert_with(|| tokio::time::Instant::now() + limit);
                tokio::time::timeout_at(at, io.write_vectored(slices))
                    .await
                    .map_err(timed_out)??
            }
        };
        if n == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        IoSlice::advance_slices(&mut slices, n);
        deadline = None;
    }
    match io.flush().now_or_never() {
        Some(result) => result,
        None => tokio::time::timeout(limit, io.flush())
            .await
            .map_err(timed_out)?,
    }
}

#[cfg(test)]
mod tests {
    use std::io::IoSlice;
    use std::time::Duration;

    use tokio::io::AsyncReadExt as _;

    /// A writer that buffers what it is given, as tokio-rustls does with TLS records, must
    /// hand it on before the write counts as done: the subscriber has the alert now, not at
    /// the next write.
    #[tokio::test]
    async fn what_a_buffering_writer_holds_is_flushed() {
        let (near, mut far) = tokio::io::duplex(64 * 1024);
        let mut buffered = tokio::io::BufWriter::new(near);
        let (head, payload) = ([0x81u8, 5], b"alert");
        let mut slices = [IoSlice::new(&head), IoSlice::new(payload)];
        super::write_all_vectored(&mut buffered, &mut slices, Duration::from_secs(1))
            .await
            .expect("written");
        let mut got = [0u8; 7];
        tokio::time::timeout(Duration::from_secs(1), far.read_exact(&mut got))
            .await
            .expect("arrives without another write")
            .expect("read");
        assert_eq!(&got, b"\x81\x05alert");
    }

    /// A reader that takes ≤ 64 KiB every 100 ms gets 512 KiB in ≥ 0.8 s: the 300 ms limit is on
    /// progress, not on the whole write, on both writers. One that stops reading is cut off.
    #[tokio::test]
    async fn the_limit_is_on_progress_not_on_the_whole_write() {
        let limit = Duration::from_millis(300);
        let payload = vec![7u8; 1 << 19];
        let slow_reader = |mut read: Box<dyn tokio::io::AsyncRead + Unpin + Send>| {
            tokio::spawn(async move {
                let (mut got, mut buf) = (0usize, vec![0u8; 64 * 1024]);
                while got < 1 << 19 {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    match read.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => got += n,
                    }
                }
                got
            })
        };
        // A buffering writer (hyper's upgraded stream) over an in-memory pipe.
        let (near, far) = tokio::io::duplex(64 * 1024);
        let reader = slow_reader(Box::new(far));
        let mut near = near;
        let mut slices = [IoSlice::new(&payload)];
        super::write_all_vectored(&mut near, &mut slices, limit)
            .await
            .expect("a slow but moving reader is written to");
        assert_eq!(reader.await.expect("reader"), 1 << 19);
        // A shared TCP socket with a small send buffer.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let client = tokio::net::TcpStream::connect(listener.local_addr().expect("addr"))
            .await
            .expect("connect");
        let (server, _) = listener.accept().await.expect("accept");
        socket2::SockRef::from(&server)
            .set_send_buffer_size(16 * 1024)
            .expect("sndbuf");
        socket2::SockRef::from(&client)
            .set_recv_buffer_size(16 * 1024)
            .expect("rcvbuf");
        let reader = slow_reader(Box::new(client));
        let mut slices = [IoSlice::new(&payload)];
        super::write_all_shared(&server, &mut slices, limit)
            .await
            .expect("a slow but moving reader is written to");
        assert_eq!(reader.await.expect("reader"), 1 << 19);
        // Nobody reading: cut off after the limit.
        let (mut stalled, _far) = tokio::io::duplex(1024);
        let mut slices = [IoSlice::new(&payload)];
        let err = super::write_all_vectored(&mut stalled, &mut slices, limit).await;
        assert_eq!(err.map_err(|e| e.kind()), Err(std::io::ErrorKind::TimedOut));
    }
}
