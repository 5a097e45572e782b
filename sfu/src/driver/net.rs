//! The sockets: one UDP socket shared by every peer (a receiving thread demultiplexes to the
//! workers; workers send directly), and one TCP listener for passive ICE-TCP, whose
//! connections carry RFC 4571 frames (16-bit length + datagram).

use std::io::{Read as _, Write as _};
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
/// Forget addresses of ended sessions this often.
const ADDR_SWEEP: Duration = Duration::from_secs(5);

/// Most datagrams handed to the kernel in one `sendmmsg`.
pub(crate) const SEND_BATCH: usize = 32;

/// Sends `batch` (UDP transmits) with as few `sendmmsg` calls as possible, then clears it.
/// A partial or failed batch falls back to one `send_to` per remaining datagram, so nothing
/// is silently skipped. Allocates per batch (the syscall headers), never per datagram.
pub(crate) fn send_batch(socket: &UdpSocket, batch: &mut Vec<Transmit>, metrics: &SfuMetrics) {
    use std::os::fd::AsRawFd as _;
    let mut start = 0;
    while start < batch.len() {
        let chunk = &batch[start..batch.len().min(start + SEND_BATCH)];
        let addrs: Vec<Option<SockaddrStorage>> = chunk
            .iter()
            .map(|t| Some(SockaddrStorage::from(t.destination)))
            .collect();
        let iovs: Vec<[std::io::IoSlice<'_>; 1]> = chunk
            .iter()
            .map(|t| [std::io::IoSlice::new(&t.contents)])
            .collect();
        let mut headers = MultiHeaders::<SockaddrStorage>::preallocate(chunk.len(), None);
        let sent = sendmmsg(
            socket.as_raw_fd(),
            &mut headers,
            &iovs,
            &addrs,
            [],
            MsgFlags::MSG_DONTWAIT,
        )
        .map_or(0, |results| results.count());
        for t in &chunk[sent..] {
            if socket.send_to(&t.contents, t.destination).is_err() {
                metrics.send_errors.inc();
            }
        }
        start += chunk.len();
    }
    batch.clear();
}

/// Receives on the shared UDP socket until `stop`, routing each datagram to its worker.
pub(crate) fn udp_receive_loop(
    socket: &UdpSocket,
    workers: &[SyncSender<WorkerMsg>],
    ufrags: &UfragTable,
    metrics: &SfuMetrics,
    stop: &AtomicBool,
) {
    let local = socket
        .local_addr()
        .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
    let _ = socket.set_read_timeout(Some(POLL));
    let mut table = AddrTable::default();
    let mut buf = vec![0u8; MAX_DATAGRAM + 1];
    let mut last_sweep = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        if last_sweep.elapsed() > ADDR_SWEEP {
            table.retain_live(ufrags);
            last_sweep = Instant::now();
        }
        let (len, source) = match socket.recv_from(&mut buf) {
            Ok(got) => got,
            Err(err)
                if matches!(
                    err.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                continue;
            }
            Err(err) => {
                tracing::debug!(error = %err, "UDP receive error");
                continue;
            }
        };
        if len > MAX_DATAGRAM {
            metrics.dropped("oversize");
            continue;
        }
        let data = &buf[..len];
        let Demuxed::Route(route) = table.route(source, data, ufrags) else {
            metrics.dropped("unknown_sender");
            continue;
        };
        let Some(worker) = workers.get(route.worker) else {
            continue;
        };
        let msg = WorkerMsg::Datagram(Datagram {
            session: route.session,
            proto: Protocol::Udp,
            source,
            destination: local,
            data: data.to_vec(),
            at: Instant::now(),
        });
        match worker.try_send(msg) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => metrics.dropped("queue_full"),
            Err(TrySendError::Disconnected(_)) => return,
        }
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
