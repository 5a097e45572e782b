//! Passive ICE-TCP (RFC 6544) for networks that block UDP: one listener; each connection
//! carries RFC 4571 frames (16-bit length + datagram; `rfc4571`), read by its own thread and routed like
//! UDP datagrams, and written by a second thread from a bounded queue the worker fills.
//!
//! A connection costs two threads, so everything about one is bounded:
//! - at most `max_tcp_connections` at once; beyond it a new connection is closed at once;
//! - one that has routed nothing to a session (no STUN with a known username) within the
//!   connect timeout is closed, and so is one silent for [`IDLE`] (ICE consent checks come
//!   every ~5 s, RFC 7675), and one whose session ended (checked once per connect timeout:
//!   its peer's frames would otherwise keep it open);
//! - its writer queue holds [`TCP_WRITE_QUEUE`] frames (the worker drops beyond it), and a
//!   peer that stops reading for [`WRITE_TIMEOUT`] is disconnected.
//!
//! Every close the SFU decides is counted in `hubcast_sfu_tcp_closed_total{reason}`.

use std::io::Write as _;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{SyncSender, TrySendError};
use std::time::{Duration, Instant};

use super::demux::{AddrTable, UfragTable};
use super::metrics::{DropReason, SfuMetrics};
use super::rfc4571::{End, Frame, FrameReader};
use super::worker::{Datagram, WorkerMsg};

/// Datagrams queued toward one connection's writer thread (~300 KB of video, ~0.25 s at
/// 10 Mbit/s); beyond it the worker drops (see `worker::send_tcp`).
pub(crate) const TCP_WRITE_QUEUE: usize = 256;
/// A connection silent this long is gone: ICE consent freshness (RFC 7675) sends a check
/// every ~5 s, and browsers give up on consent after 30 s.
pub(crate) const IDLE: Duration = Duration::from_secs(30);
/// A peer that has not taken a frame for this long is disconnected (its writer thread would
/// otherwise wait on it forever).
pub(crate) const WRITE_TIMEOUT: Duration = Duration::from_secs(5);
/// How often blocked reads wake to check for shutdown and the deadlines.
const POLL: Duration = Duration::from_millis(200);

/// What bounds the connections (from `SfuConfig`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct TcpLimits {
    /// Connections open at once.
    pub max_connections: usize,
    /// Time to route a first datagram to a session.
    pub connect_timeout: Duration,
}

/// Accepts ICE-TCP connections until `stop`; each gets a reader thread.
pub(crate) fn accept_loop(
    listener: &TcpListener,
    workers: &Arc<Vec<SyncSender<WorkerMsg>>>,
    ufrags: &UfragTable,
    metrics: &SfuMetrics,
    limits: TcpLimits,
    stop: &Arc<AtomicBool>,
) {
    let _ = listener.set_nonblocking(true);
    while !stop.load(Ordering::Relaxed) {
        match listener.accept() {
            Ok((stream, remote)) => {
                // The gauge counts exactly this SFU's open connections (its own metrics).
                let open = usize::try_from(metrics.tcp_connections.get()).unwrap_or(0);
                if open >= limits.max_connections {
                    metrics.tcp_closed.with_label_values(&["full"]).inc();
                    tracing::debug!(%remote, "ICE-TCP connection refused: at the limit");
                    drop(stream);
                    continue;
                }
                let slot = Slot::take(metrics);
                let workers = workers.clone();
                let ufrags = ufrags.clone();
                let metrics = metrics.clone();
                let stop = stop.clone();
                let spawned = std::thread::Builder::new()
                    .name("sfu-tcp".into())
                    .spawn(move || {
                        let _slot = slot;
                        connection(stream, remote, &workers, &ufrags, &metrics, limits, &stop);
                    });
                if let Err(err) = spawned {
                    tracing::warn!(error = %err, "cannot spawn ICE-TCP reader");
                }
            }
            Err(err) if err.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(err) => {
                tracing::debug!(error = %err, "ICE-TCP accept failed");
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
}

/// One open connection's place in the gauge (which the limit reads), given back on drop
/// (also when its thread could not be spawned).
struct Slot {
    gauge: prometheus::IntGauge,
}

impl Slot {
    fn take(metrics: &SfuMetrics) -> Slot {
        metrics.tcp_connections.inc();
        Slot {
            gauge: metrics.tcp_connections.clone(),
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.gauge.dec();
    }
}

/// One connection: reads frames and routes them like UDP datagrams; a writer thread sends
/// the frames the worker produces for this remote address.
fn connection(
    stream: TcpStream,
    remote: SocketAddr,
    workers: &[SyncSender<WorkerMsg>],
    ufrags: &UfragTable,
    metrics: &SfuMetrics,
    limits: TcpLimits,
    stop: &AtomicBool,
) {
    let _ = stream.set_nodelay(true);
    let _ = stream.set_read_timeout(Some(POLL));
    let _ = stream.set_write_timeout(Some(WRITE_TIMEOUT));
    let Ok(writer_stream) = stream.try_clone() else {
        return;
    };
    // Names this connection to the workers: its detach must not drop the writer of a newer
    // connection from the same address.
    static CONNECTIONS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let conn = CONNECTIONS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<u8>>(TCP_WRITE_QUEUE);
    let writer_metrics = metrics.clone();
    let spawned = std::thread::Builder::new()
        .name("sfu-tcp-w".into())
        .spawn(move || write_frames(writer_stream, &rx, &writer_metrics));
    if spawned.is_err() {
        return;
    }
    let mut reader = stream;
    let mut table = AddrTable::default();
    let mut attached = None;
    let opened = Instant::now();
    let mut frames = FrameReader::new(opened);
    let mut heard = opened;
    // The session the frames last went to, and when it was last seen registered.
    let mut attached_route: Option<u64> = None;
    let mut checked = opened;
    loop {
        // Until a session is found the connect timeout applies, then the idle one.
        let deadline = match attached {
            None => opened + limits.connect_timeout,
            Some(_) => heard + IDLE,
        };
        let (data, at) = match frames.next(&mut reader, deadline, stop) {
            Ok(Frame::Datagram(data, at)) => (data, at),
            Ok(Frame::Oversize) => {
                metrics.dropped(DropReason::Oversize);
                continue;
            }
            Err(End::Expired) => {
                let reason = if attached.is_none() {
                    "no_session"
                } else {
                    "idle"
                };
                metrics.tcp_closed.with_label_values(&[reason]).inc();
                tracing::debug!(%remote, reason, "ICE-TCP connection closed");
                break;
            }
            Err(End::Closed) => break,
        };
        heard = at;
        // Frames keep resetting the idle clock, so a connection whose session ended (deleted,
        // reaped) would stay open as long as its peer sends: every connect timeout, it must
        // still route to a registered session.
        if let Some(route) = attached_route
            && heard.duration_since(checked) > limits.connect_timeout
        {
            if !ufrags.has_session(route) {
                metrics.tcp_closed.with_label_values(&["no_session"]).inc();
                tracing::debug!(%remote, "ICE-TCP connection closed: its session ended");
                break;
            }
            checked = heard;
        }
        let route = match table.route(remote, data, ufrags, at).into_route() {
            Ok(route) => route,
            Err(why) => {
                metrics.dropped(why);
                continue;
            }
        };
        // One connection's own table: a session taking another's address on it is next to
        // impossible (a restarted client opens a new connection), but such an orphan is ended
        // as on UDP.
        super::ingress::tell_orphans(&mut table, workers);
        let Some(worker) = workers.get(route.worker) else {
            break;
        };
        if attached_route != Some(route.session) {
            attached_route = Some(route.session);
            checked = heard;
        }
        if attached != Some(route.worker) {
            let attach = WorkerMsg::TcpAttach {
                remote,
                conn,
                writer: tx.clone(),
            };
            if worker.send(attach).is_err() {
                break;
            }
            if let Some(old) = attached.and_then(|w| workers.get(w)) {
                let _ = old.send(WorkerMsg::TcpDetach { remote, conn });
            }
            attached = Some(route.worker);
        }
        let msg = WorkerMsg::Datagram(Datagram {
            session: route.session,
            source: remote,
            data: data.to_vec(),
            at: heard,
        });
        match worker.try_send(msg) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => metrics.dropped(DropReason::QueueFull),
            // The worker is gone: the SFU is shutting down.
            Err(TrySendError::Disconnected(_)) => break,
        }
    }
    // Ends the writer even while the worker still holds a sender: the socket closes under it.
    let _ = reader.shutdown(std::net::Shutdown::Both);
    // The worker's copy of the writer's sender is the last one; dropping it ends the writer.
    if let Some(worker) = attached.and_then(|w| workers.get(w)) {
        let _ = worker.send(WorkerMsg::TcpDetach { remote, conn });
    }
}

/// The writer thread: frames from the worker, each with its RFC 4571 length, until the queue
/// closes or the peer stops reading for [`WRITE_TIMEOUT`].
fn write_frames(
    mut stream: TcpStream,
    rx: &std::sync::mpsc::Receiver<Vec<u8>>,
    metrics: &SfuMetrics,
) {
    for frame in rx {
        let Ok(len) = u16::try_from(frame.len()) else {
            continue;
        };
        let written = write_frame(&mut stream, &len.to_be_bytes(), &frame);
        if let Err(err) = written {
            if matches!(
                err.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ) {
                metrics
                    .tcp_closed
                    .with_label_values(&["write_stalled"])
                    .inc();
            }
            break;
        }
    }
    let _ = stream.shutdown(std::net::Shutdown::Both);
}

/// Writes an RFC 4571 frame, its length and then its datagram, with one vectored write
/// (two writes on a `TCP_NODELAY` socket would be two system calls and can be two segments).
fn write_frame(stream: &mut TcpStream, len: &[u8; 2], frame: &[u8]) -> std::io::Result<()> {
    let mut parts = [std::io::IoSlice::new(len), std::io::IoSlice::new(frame)];
    let mut bufs = &mut parts[..];
    while !bufs.is_empty() {
        match stream.write_vectored(bufs) {
            Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
            Ok(n) => std::io::IoSlice::advance_slices(&mut bufs, n),
            Err(err) if err.kind() == std::io::ErrorKind::Interrupted => {}
            Err(err) => return Err(err),
        }
    }
    Ok(())
}

#[cfg(test)]
#[path = "tcp_tests.rs"]
mod tests;
