//! The sockets: one UDP socket shared by every peer (workers send on it directly, with
//! `sendmmsg`; its receiving thread is `ingress`), and one TCP listener for passive ICE-TCP,
//! whose connections carry RFC 4571 frames (16-bit length + datagram).

use std::io::{IoSlice, Read as _, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{SyncSender, TrySendError};
use std::time::{Duration, Instant};

use nix::sys::socket::{MsgFlags, MultiHeaders, SockaddrStorage, sendmmsg};
use str0m::net::{Protocol, Transmit};

use super::demux::{AddrTable, Demuxed, UfragTable};
use super::metrics::SfuMetrics;
use super::worker::{Datagram, WorkerMsg};

/// Largest datagram accepted (anything larger is not WebRTC media on a sane path MTU).
pub(crate) const MAX_DATAGRAM: usize = 2048;
/// How often blocked reads wake to check for shutdown.
const POLL: Duration = Duration::from_millis(200);

/// Most datagrams handed to the kernel in one `sendmmsg`.
pub(crate) const SEND_BATCH: usize = 32;

/// Sends UDP transmits with as few `sendmmsg` calls as possible, reusing its system-call
/// headers: nothing is allocated per call or per datagram. One per worker thread (the headers
/// hold raw pointers, so it is built on the thread that uses it).
#[derive(Debug)]
pub(crate) struct BatchSender {
    headers: MultiHeaders<SockaddrStorage>,
}

impl BatchSender {
    pub(crate) fn new() -> Self {
        BatchSender {
            headers: MultiHeaders::preallocate(SEND_BATCH, None),
        }
    }

    /// Sends `batch`, [`SEND_BATCH`] per call, then clears it. A partial or failed call falls
    /// back to one `send_to` per remaining datagram, so nothing is silently skipped.
    pub(crate) fn send(
        &mut self,
        socket: &UdpSocket,
        batch: &mut Vec<Transmit>,
        metrics: &SfuMetrics,
    ) {
        use std::os::fd::AsRawFd as _;
        for chunk in batch.chunks(SEND_BATCH) {
            let addrs: [Option<SockaddrStorage>; SEND_BATCH] =
                std::array::from_fn(|i| chunk.get(i).map(|t| SockaddrStorage::from(t.destination)));
            let iovs: [[IoSlice<'_>; 1]; SEND_BATCH] = std::array::from_fn(|i| {
                [IoSlice::new(
                    chunk.get(i).map_or(&[][..], |t| &t.contents[..]),
                )]
            });
            let n = chunk.len();
            let sent = sendmmsg(
                socket.as_raw_fd(),
                &mut self.headers,
                &iovs[..n],
                &addrs[..n],
                [],
                MsgFlags::MSG_DONTWAIT,
            )
            .map_or(0, |results| results.count());
            for t in chunk.iter().skip(sent) {
                if socket.send_to(&t.contents, t.destination).is_err() {
                    metrics.send_errors.inc();
                }
            }
        }
        batch.clear();
    }
}

/// Accepts ICE-TCP connections until `stop`; each gets a reader thread.
pub(crate) fn tcp_accept_loop(
    listener: &TcpListener,
    workers: &Arc<Vec<SyncSender<WorkerMsg>>>,
    ufrags: &UfragTable,
    metrics: &SfuMetrics,
    stop: &Arc<AtomicBool>,
) {
    let _ = listener.set_nonblocking(true);
    while !stop.load(Ordering::Relaxed) {
        match listener.accept() {
            Ok((stream, remote)) => {
                let workers = workers.clone();
                let ufrags = ufrags.clone();
                let metrics = metrics.clone();
                let stop = stop.clone();
                let spawned = std::thread::Builder::new()
                    .name("sfu-tcp".into())
                    .spawn(move || {
                        tcp_connection(stream, remote, &workers, &ufrags, &metrics, &stop)
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

/// One ICE-TCP connection: reads RFC 4571 frames and routes them like UDP datagrams; a writer
/// thread sends the frames the worker produces for this remote address.
fn tcp_connection(
    stream: TcpStream,
    remote: SocketAddr,
    workers: &[SyncSender<WorkerMsg>],
    ufrags: &UfragTable,
    metrics: &SfuMetrics,
    stop: &AtomicBool,
) {
    let local = stream.local_addr().unwrap_or(remote);
    let _ = stream.set_nodelay(true);
    let _ = stream.set_read_timeout(Some(POLL));
    let Ok(mut writer_stream) = stream.try_clone() else {
        return;
    };
    let (tx, rx) = std::sync::mpsc::channel::<Vec<u8>>();
    let writer = std::thread::Builder::new()
        .name("sfu-tcp-w".into())
        .spawn(move || {
            for frame in rx {
                let Ok(len) = u16::try_from(frame.len()) else {
                    continue;
                };
                if writer_stream.write_all(&len.to_be_bytes()).is_err()
                    || writer_stream.write_all(&frame).is_err()
                {
                    break;
                }
            }
            let _ = writer_stream.shutdown(std::net::Shutdown::Both);
        });
    if writer.is_err() {
        return;
    }
    let mut reader = stream;
    let mut table = AddrTable::default();
    let mut attached = None;
    let mut header = [0u8; 2];
    let mut frame = vec![0u8; usize::from(u16::MAX)];
    while !stop.load(Ordering::Relaxed) {
        match read_exact_or_timeout(&mut reader, &mut header, stop) {
            Ok(true) => {}
            Ok(false) | Err(_) => break,
        }
        let len = usize::from(u16::from_be_bytes(header));
        if read_exact_or_timeout(&mut reader, &mut frame[..len], stop).map_or(true, |ok| !ok) {
            break;
        }
        if len > MAX_DATAGRAM {
            metrics.dropped("oversize");
            continue;
        }
        let data = &frame[..len];
        let Demuxed::Route(route) = table.route(remote, data, ufrags) else {
            metrics.dropped("unknown_sender");
            continue;
        };
        let Some(worker) = workers.get(route.worker) else {
            break;
        };
        if attached != Some(route.worker) {
            let attach = WorkerMsg::TcpAttach {
                remote,
                writer: tx.clone(),
            };
            if worker.send(attach).is_err() {
                break;
            }
            if let Some(old) = attached.and_then(|w| workers.get(w)) {
                let _ = old.send(WorkerMsg::TcpDetach { remote });
            }
            attached = Some(route.worker);
        }
        let msg = WorkerMsg::Datagram(Datagram {
            session: route.session,
            proto: Protocol::Tcp,
            source: remote,
            destination: local,
            data: data.to_vec(),
            at: Instant::now(),
        });
        if let Err(TrySendError::Full(_)) = worker.try_send(msg) {
            metrics.dropped("queue_full");
        }
    }
    // The reader is done: the worker's copy of the writer is the last one; dropping it ends
    // the writer thread, which closes the socket.
    if let Some(worker) = attached.and_then(|w| workers.get(w)) {
        let _ = worker.send(WorkerMsg::TcpDetach { remote });
    }
}

/// Reads exactly `buf.len()` bytes, retrying on read timeouts until `stop`. `Ok(false)` on EOF.
fn read_exact_or_timeout(
    stream: &mut TcpStream,
    buf: &mut [u8],
    stop: &AtomicBool,
) -> std::io::Result<bool> {
    let mut filled = 0;
    while filled < buf.len() {
        match stream.read(&mut buf[filled..]) {
            Ok(0) => return Ok(false),
            Ok(n) => filled += n,
            Err(err)
                if matches!(
                    err.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                if stop.load(Ordering::Relaxed) {
                    return Ok(false);
                }
            }
            Err(err) if err.kind() == std::io::ErrorKind::Interrupted => {}
            Err(err) => return Err(err),
        }
    }
    Ok(true)
}
