//! The media ports' sockets: binding them, and sending on the one UDP socket shared by every
//! peer (workers send on it directly, with `sendmmsg`; its receiving thread is `ingress`;
//! ICE-TCP is `tcp`).

use std::io::IoSlice;
use std::net::{SocketAddr, TcpListener, UdpSocket};

use socket2::{Domain, Socket, Type};

use nix::errno::Errno;
use nix::sys::socket::{MsgFlags, MultiHeaders, SockaddrStorage, sendmmsg};
use str0m::net::Transmit;

use super::metrics::SfuMetrics;

/// Largest datagram accepted (anything larger is not WebRTC media on a sane path MTU).
pub(crate) const MAX_DATAGRAM: usize = 2048;

/// Most datagrams handed to the kernel in one `sendmmsg`.
pub(crate) const SEND_BATCH: usize = 32;

/// Binds the media UDP port. The IPv6 wildcard (`[::]`) takes both families whatever the
/// host's `net.ipv6.bindv6only` says, so one port serves IPv4 and IPv6 peers.
pub(crate) fn bind_udp(addr: SocketAddr) -> std::io::Result<UdpSocket> {
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, None)?;
    dual_stack(&socket, addr)?;
    socket.bind(&addr.into())?;
    Ok(socket.into())
}

/// Binds and listens on the ICE-TCP port (`SO_REUSEADDR`, as `std` does; dual-stack like
/// [`bind_udp`]).
pub(crate) fn bind_tcp(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    dual_stack(&socket, addr)?;
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    socket.listen(1024)?;
    Ok(socket.into())
}

/// Clears `IPV6_V6ONLY` on a socket about to bind the IPv6 wildcard.
fn dual_stack(socket: &Socket, addr: SocketAddr) -> std::io::Result<()> {
    match addr {
        SocketAddr::V6(v6) if v6.ip().is_unspecified() => socket.set_only_v6(false),
        _ => Ok(()),
    }
}

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
    /// - when the socket's send buffer is full (`EAGAIN`/`ENOBUFS`) everything left in the
    ///   batch is dropped and counted in `send_dropped`, as a full router queue would:
    ///   waiting here would stall every room on the worker, and the viewers' NACKs recover
    ///   media.
    pub(crate) fn send(
        &mut self,
        socket: &UdpSocket,
        batch: &mut Vec<Transmit>,
        metrics: &SfuMetrics,
    ) {
        use std::os::fd::AsRawFd as _;
        let total = batch.len();
        // Counted once per call, not per `sendmmsg` return.
        let (mut datagrams, mut bytes) = (0usize, 0usize);
        'chunks: for (c, chunk) in batch.chunks(SEND_BATCH).enumerate() {
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
                    Ok(k) if k > 0 => {
                        datagrams += k;
                        bytes += chunk[at..at + k]
                            .iter()
                            .map(|t| t.contents.len())
                            .sum::<usize>();
                        at += k;
                    }
                    Err(Errno::EINTR) => {}
                    Ok(_) | Err(Errno::EAGAIN | Errno::ENOBUFS) => {
                        // Full now, full for the next chunks too: drop all that is left.
                        let left = total - (c * SEND_BATCH + at);
                        metrics
                            .send_dropped
                            .inc_by(u64::try_from(left).unwrap_or(u64::MAX));
                        break 'chunks;
                    }
                    Err(errno) => {
                        tracing::trace!(%errno, to = ?chunk.get(at).map(|t| t.destination), "send failed");
                        metrics.send_errors.inc();
                        at += 1;
                    }
                }
            }
        }
        metrics.sent_datagrams.inc_by(datagrams as u64);
        metrics.sent_bytes.inc_by(bytes as u64);
        batch.clear();
    }
}

/// A transmit of `body` from `from` to `to` over `proto` (tests of the send paths).
#[cfg(test)]
pub(crate) fn test_transmit(
    proto: str0m::net::Protocol,
    from: std::net::SocketAddr,
    to: std::net::SocketAddr,
    body: &[u8],
) -> Transmit {
    Transmit {
        proto,
        source: from,
        destination: to,
        contents: body.to_vec().into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::SocketAddr;
    use std::time::{Duration, Instant};
    use str0m::net::Protocol;

    fn transmit(from: SocketAddr, to: SocketAddr, body: &[u8]) -> Transmit {
        test_transmit(Protocol::Udp, from, to, body)
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
        assert_eq!(metrics.sent_datagrams.get(), want.len() as u64);
        let bytes: usize = want.iter().map(Vec::len).sum();
        assert_eq!(
            metrics.sent_bytes.get(),
            bytes as u64,
            "the refused one not counted"
        );
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
}
