//! The sockets: one UDP socket shared by every peer (workers send on it directly, with
//! `sendmmsg`; its receiving thread is `ingress`), and one TCP listener for passive ICE-TCP,
//! whose connections carry RFC 4571 frames (16-bit length + datagram).

use std::io::{IoSlice, Read as _, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{SyncSender, TrySendError};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::socket::{MsgFlags, MultiHeaders, SockaddrStorage, sendmmsg};
use str0m::net::{Protocol, Transmit};

use super::demux::{AddrTable, Demuxed, UfragTable};
use super::metrics::SfuMetrics;
use super::worker::{Datagram, WorkerMsg};

/// Largest datagram accepted (anything larger is not WebRTC media on a sane path MTU).
pub(crate) const MAX_DATAGRAM: usize = 2048;
/// How often blocked reads wake to check for shutdown.
const POLL: Duration = Duration::from_millis(200);

/// Datagrams queued toward one ICE-TCP connection's writer thread (~300 KB of video, ~0.25 s
/// at 10 Mbit/s); beyond it the worker drops (see `worker::send_tcp`).
pub(crate) const TCP_WRITE_QUEUE: usize = 256;

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

    /// Sends `batch`, [`SEND_BATCH`] per call, then clears it. Never blocks the worker:
    /// - a datagram the kernel refuses (bad destination, oversize) is skipped and counted in
    ///   `send_errors`, and the ones after it still go out;
    /// - when the socket's send buffer is full (`EAGAIN`/`ENOBUFS`) the rest of the chunk is
    ///   dropped and counted in `send_dropped`, as a full router queue would: waiting here
    ///   would stall every room on the worker, and the viewers' NACKs recover media.
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
            let mut at = 0;
            while at < n {
                let sent = sendmmsg(
                    socket.as_raw_fd(),
                    &mut self.headers,
                    &iovs[at..n],
                    &addrs[at..n],
                    [],
                    MsgFlags::MSG_DONTWAIT,
                )
                .map(|results| results.count());
                match sent {
                    // The kernel stops at the first datagram it refuses and reports the ones
                    // before it; the next call reports that datagram's error.
                    Ok(k) if k > 0 => at += k,
                    Err(Errno::EINTR) => {}
                    Ok(_) | Err(Errno::EAGAIN | Errno::ENOBUFS) => {
                        metrics
                            .send_dropped
                            .inc_by(u64::try_from(n - at).unwrap_or(u64::MAX));
                        break;
                    }
                    Err(errno) => {
                        tracing::trace!(%errno, to = ?chunk.get(at).map(|t| t.destination), "send failed");
                        metrics.send_errors.inc();
                        at += 1;
                    }
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
    let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<u8>>(TCP_WRITE_QUEUE);
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

#[cfg(test)]
mod tests {
    use super::*;

    fn transmit(from: SocketAddr, to: SocketAddr, body: &[u8]) -> Transmit {
        Transmit {
            proto: Protocol::Udp,
            source: from,
            destination: to,
            contents: body.to_vec().into(),
        }
    }

    fn receive_all(socket: &UdpSocket) -> Vec<Vec<u8>> {
        socket
            .set_read_timeout(Some(Duration::from_millis(300)))
            .expect("read timeout");
        let mut got = Vec::new();
        let mut buf = [0u8; MAX_DATAGRAM];
        while let Ok(n) = socket.recv(&mut buf) {
            got.push(buf[..n].to_vec());
        }
        got
    }

    /// One refused datagram in the middle of a batch is counted and skipped; the ones after it
    /// still go out, in order, and nothing waits.
    #[test]
    fn a_refused_datagram_does_not_stop_the_rest() {
        let registry = prometheus::Registry::new();
        let metrics = SfuMetrics::new(&registry).expect("metrics");
        let socket = UdpSocket::bind("127.0.0.1:0").expect("bind sender");
        let receiver = UdpSocket::bind("127.0.0.1:0").expect("bind receiver");
        let (from, to) = (
            socket.local_addr().expect("addr"),
            receiver.local_addr().expect("addr"),
        );
        // An IPv6 destination on an IPv4 socket: the kernel refuses that one datagram.
        let unreachable: SocketAddr = "[::1]:9".parse().expect("addr");
        let mut batch = vec![
            transmit(from, to, b"one"),
            transmit(from, unreachable, b"refused"),
            transmit(from, to, b"two"),
        ];
        // More than one chunk, so the chunking is covered too.
        for i in 0..SEND_BATCH + 5 {
            batch.push(transmit(from, to, format!("n{i}").as_bytes()));
        }
        let mut sender = BatchSender::new();
        sender.send(&socket, &mut batch, &metrics);
        assert!(batch.is_empty(), "the batch is cleared");
        let got = receive_all(&receiver);
        let mut want = vec![b"one".to_vec(), b"two".to_vec()];
        want.extend((0..SEND_BATCH + 5).map(|i| format!("n{i}").into_bytes()));
        assert_eq!(got, want);
        assert_eq!(metrics.send_errors.get(), 1);
        assert_eq!(metrics.send_dropped.get(), 0);
    }

    /// A full send buffer never blocks the worker: what does not fit is dropped and counted.
    /// In a loopback-only namespace a token-bucket queue on `lo` (8 kbit/s) holds the sent
    /// datagrams, so a socket with a small send buffer fills after a few; the old fallback (a
    /// blocking `send_to` per remaining datagram) waited here for about a minute.
    #[test]
    fn a_full_send_buffer_drops_and_counts_instead_of_waiting() {
        testkit::isolated!();
        let tc = std::process::Command::new("tc")
            .args(["qdisc", "add", "dev", "lo", "root", "tbf"])
            .args(["rate", "8kbit", "burst", "1600", "limit", "1000000"])
            .status()
            .expect("run tc (iproute2)");
        assert!(tc.success(), "tc qdisc add failed");
        let registry = prometheus::Registry::new();
        let metrics = SfuMetrics::new(&registry).expect("metrics");
        let socket = UdpSocket::bind("127.0.0.1:0").expect("bind sender");
        nix::sys::socket::setsockopt(&socket, nix::sys::socket::sockopt::SndBuf, &4096)
            .expect("SO_SNDBUF");
        let receiver = UdpSocket::bind("127.0.0.1:0").expect("bind receiver");
        let (from, to) = (
            socket.local_addr().expect("addr"),
            receiver.local_addr().expect("addr"),
        );
        let total = 2 * SEND_BATCH;
        let mut batch: Vec<Transmit> = (0..total)
            .map(|_| transmit(from, to, &[0x80; 1200]))
            .collect();
        let mut sender = BatchSender::new();
        let started = Instant::now();
        sender.send(&socket, &mut batch, &metrics);
        let took = started.elapsed();
        assert!(took < Duration::from_secs(2), "send waited {took:?}");
        let dropped = metrics.send_dropped.get();
        assert!(dropped > 0, "nothing was dropped: the queue did not fill");
        assert!(
            dropped < total as u64,
            "nothing was sent: {dropped} dropped"
        );
        assert_eq!(metrics.send_errors.get(), 0);
    }

    /// A stalled ICE-TCP viewer fills its writer's bounded queue; further datagrams are dropped
    /// and counted, never queued without bound nor waited for.
    #[test]
    fn a_stalled_tcp_writer_queue_is_bounded() {
        let registry = prometheus::Registry::new();
        let metrics = SfuMetrics::new(&registry).expect("metrics");
        let remote: SocketAddr = "127.0.0.1:40000".parse().expect("addr");
        let local: SocketAddr = "127.0.0.1:3478".parse().expect("addr");
        let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<u8>>(TCP_WRITE_QUEUE);
        let writers = std::collections::HashMap::from([(remote, tx)]);
        for _ in 0..TCP_WRITE_QUEUE + 10 {
            super::super::worker::send_tcp(&metrics, &writers, transmit(local, remote, b"x"));
        }
        assert_eq!(rx.try_iter().count(), TCP_WRITE_QUEUE);
        assert_eq!(metrics.send_dropped.get(), 10);
        // Unknown connection, then a closed one: errors, not drops.
        let other: SocketAddr = "127.0.0.1:40001".parse().expect("addr");
        super::super::worker::send_tcp(&metrics, &writers, transmit(local, other, b"x"));
        drop(rx);
        super::super::worker::send_tcp(&metrics, &writers, transmit(local, remote, b"x"));
        assert_eq!(metrics.send_errors.get(), 2);
        assert_eq!(metrics.send_dropped.get(), 10);
    }
}
