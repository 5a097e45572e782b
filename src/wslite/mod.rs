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

use std::io::{self, IoSlice};
use std::time::Duration;

use futures_util::FutureExt as _;
use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};

pub use frame::{ClientEvent, Decoder, FrameError};

/// Frames written per `writev` (each is a header and a payload slice).
const CHUNK: usize = 8;

/// An upgraded WebSocket connection (server side).
#[derive(Debug)]
pub struct Conn {
    io: TokioIo<Upgraded>,
    decoder: Decoder,
}

impl Conn {
    /// Wraps an upgraded connection; client data messages over `max_message` bytes end it
    /// (1009).
    pub fn new(upgraded: Upgraded, max_message: u64) -> Conn {
        Conn {
            io: TokioIo::new(upgraded),
            decoder: Decoder::new(max_message),
        }
    }

    /// Reads what the client sent into `buf` (0: the client closed the connection).
    /// Cancel-safe.
    pub async fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.io.read(buf).await
    }

    /// Decodes `input` (bytes just read); calls `event` for each complete client frame.
    pub fn decode(
        &mut self,
        input: &[u8],
        event: impl FnMut(ClientEvent),
    ) -> Result<(), FrameError> {
        self.decoder.feed(input, event)
    }

    /// Writes each payload as one text frame, in order, within `limit`.
    pub async fn send_texts<B: AsRef<[u8]>>(
        &mut self,
        payloads: impl IntoIterator<Item = B>,
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
                self.write_pairs(&heads, &held[..n], limit).await?;
                n = 0;
            }
        }
        if n > 0 {
            self.write_pairs(&heads, &held[..n], limit).await?;
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

    /// Sends a close frame (`code`, `reason`), waiting at most one second: the connection ends
    /// right after either way.
    pub async fn close(&mut self, code: u16, reason: &str) {
        let _ = self
            .send_raw(&frame::close(code, reason), Duration::from_secs(1))
            .await;
        let _ = tokio::time::timeout(Duration::from_secs(1), self.io.shutdown()).await;
    }

    async fn write_pairs<B: AsRef<[u8]>>(
        &mut self,
        heads: &[([u8; 10], usize); CHUNK],
        payloads: &[Option<B>],
        limit: Duration,
    ) -> io::Result<()> {
        let empty = IoSlice::new(&[]);
        let mut slices = [empty; 2 * CHUNK];
        for (i, payload) in payloads.iter().enumerate() {
            let (head, len) = &heads[i];
            slices[2 * i] = IoSlice::new(&head[..*len]);
            slices[2 * i + 1] = IoSlice::new(payload.as_ref().map_or(&[], AsRef::as_ref));
        }
        self.write_all(&mut slices[..2 * payloads.len()], limit)
            .await
    }

    async fn write_all(&mut self, slices: &mut [IoSlice<'_>], limit: Duration) -> io::Result<()> {
        write_all_vectored(&mut self.io, slices, limit).await
    }
}

/// Writes every slice to `io`: one attempt without a timer (the usual case: the socket has
/// room), then the rest within `limit` (`TimedOut` beyond). Shared by every writer of shared
/// bytes (the WebSocket here, the side-path SSE stream).
pub async fn write_all_vectored<S: AsyncWrite + Unpin>(
    io: &mut S,
    mut slices: &mut [IoSlice<'_>],
    limit: Duration,
) -> io::Result<()> {
    // Zero-length slices (an empty payload) are skipped by `advance_slices`.
    if let Some(result) = io.write_vectored(slices).now_or_never() {
        let n = result?;
        if n == 0 && slices.iter().any(|s| !s.is_empty()) {
            return Err(io::ErrorKind::WriteZero.into());
        }
        IoSlice::advance_slices(&mut slices, n);
    }
    if slices.is_empty() {
        return Ok(());
    }
    let rest = async {
        while !slices.is_empty() {
            let n = io.write_vectored(slices).await?;
            if n == 0 {
                return Err(io::ErrorKind::WriteZero.into());
            }
            IoSlice::advance_slices(&mut slices, n);
        }
        Ok(())
    };
    match tokio::time::timeout(limit, rest).await {
        Ok(result) => result,
        Err(_) => Err(io::ErrorKind::TimedOut.into()),
    }
}
