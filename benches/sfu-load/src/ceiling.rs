//! The physical ceiling of an SFU's egress on this machine: one thread that seals 1228-byte
//! datagrams with AES-128-GCM (aws-lc, as str0m's SRTP on the server) and hands them to the
//! kernel 32 at a time with `sendmmsg` toward a loopback socket that another thread drains.
//! On loopback the receiver's kernel work (delivery into its socket) runs on the sender's
//! core, as it does for the hub's sends to the subscribers here.

use std::io::{IoSlice, IoSliceMut};
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use aws_lc_rs::aead::{AES_128_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use nix::sys::socket::{
    MsgFlags, MultiHeaders, SockaddrIn, SockaddrStorage, recvmmsg, sendmmsg, setsockopt, sockopt,
};

use crate::procfs;

/// Datagram size: 12-byte RTP header + 1200 bytes of payload + 16-byte GCM tag.
pub const DATAGRAM: usize = 1228;
const HEADER: usize = 12;
const TAG: usize = 16;
/// Datagrams per `sendmmsg`.
pub const BATCH: usize = 32;

/// What the ceiling loop achieved.
#[derive(Debug, Clone, Copy)]
pub struct Ceiling {
    /// Wall seconds of the send loop.
    pub wall_s: f64,
    /// CPU seconds of the sending thread (user + system, includes loopback delivery done
    /// inline in its system calls).
    pub cpu_s: f64,
    /// Seconds the sending thread was runnable but waiting for a CPU (other work on the box).
    pub wait_s: f64,
    /// CPU seconds of `ksoftirqd/*` meanwhile (delivery deferred out of the sender's calls).
    pub ksoftirqd_s: f64,
    /// Datagrams the kernel accepted.
    pub sent: u64,
    /// Datagrams the draining thread received.
    pub received: u64,
    /// AES-128-GCM seals of 1200 bytes per CPU-second, alone (no I/O).
    pub seal_only_per_s: f64,
}

impl Ceiling {
    /// Sealed-and-sent datagrams per CPU-second of the sending thread.
    pub fn per_core(&self) -> f64 {
        self.sent as f64 / self.cpu_s.max(1e-9)
    }

    /// Sealed-and-sent datagrams per wall second.
    pub fn per_wall_s(&self) -> f64 {
        self.sent as f64 / self.wall_s.max(1e-9)
    }
}

/// Runs the loop for `seconds` (plus ~1 s of seal-only measurement).
pub fn run(seconds: f64) -> anyhow::Result<Ceiling> {
    let key = key()?;
    let seal_only_per_s = seal_only(&key, Duration::from_secs(1))?;

    let receiver = UdpSocket::bind("127.0.0.1:0")?;
    receiver.set_read_timeout(Some(Duration::from_millis(100)))?;
    // A receiver that keeps up: a full receive queue would drop datagrams early in the
    // sender's call, making the sender's work per datagram cheaper than real delivery.
    setsockopt(receiver.as_raw_fd(), sockopt::RcvBuf, &(4 << 20))?;
    let target = receiver.local_addr()?;
    let stop = Arc::new(AtomicBool::new(false));
    let received = Arc::new(AtomicU64::new(0));
    let drain = {
        let stop = stop.clone();
        let received = received.clone();
        std::thread::Builder::new()
            .name("ceiling-rx".into())
            .spawn(move || drain_loop(&receiver, &stop, &received))?
    };
    let sender = UdpSocket::bind("127.0.0.1:0")?;
    let SocketAddr::V4(v4) = target else {
        anyhow::bail!("loopback receiver is not IPv4");
    };
    let dest = SockaddrIn::from(v4);
    let addrs = [Some(dest); BATCH];
    let mut headers = MultiHeaders::<SockaddrIn>::preallocate(BATCH, None);
    let mut bufs = vec![[0u8; DATAGRAM]; BATCH];
    let mut counter: u64 = 0;
    let mut sent: u64 = 0;
    let fd = sender.as_raw_fd();

    let sched0 = procfs::this_thread_sched();
    let softirq0 = procfs::ksoftirqd_cpu_seconds();
    let cpu0 = procfs::this_thread_cpu_seconds();
    let start = Instant::now();
    let run_for = Duration::from_secs_f64(seconds);
    while start.elapsed() < run_for {
        for buf in &mut bufs {
            counter += 1;
            seal(&key, buf, counter)?;
        }
        let iovs: [[IoSlice<'_>; 1]; BATCH] = std::array::from_fn(|i| [IoSlice::new(&bufs[i])]);
        match sendmmsg(fd, &mut headers, &iovs, addrs, [], MsgFlags::empty()) {
            Ok(results) => sent += results.count() as u64,
            Err(nix::errno::Errno::EAGAIN | nix::errno::Errno::ENOBUFS) => {}
            Err(e) => return Err(e).context("sendmmsg"),
        }
    }
    let wall_s = start.elapsed().as_secs_f64();
    let cpu_s = procfs::this_thread_cpu_seconds() - cpu0;
    let wait_s = procfs::this_thread_sched().since(&sched0).wait_s;
    let ksoftirqd_s = procfs::ksoftirqd_cpu_seconds() - softirq0;
    // Let the drain catch up before reading its count.
    std::thread::sleep(Duration::from_millis(200));
    stop.store(true, Ordering::Relaxed);
    let _ = drain.join();
    Ok(Ceiling {
        wall_s,
        cpu_s,
        wait_s,
        ksoftirqd_s,
        sent,
        received: received.load(Ordering::Relaxed),
        seal_only_per_s,
    })
}

/// Receives with `recvmmsg` ×32 (non-blocking; a blocking `recv` when the queue is empty)
/// until `stop`, counting datagrams.
fn drain_loop(socket: &UdpSocket, stop: &AtomicBool, received: &AtomicU64) {
    let fd = socket.as_raw_fd();
    let mut bufs = vec![[0u8; 2048]; BATCH];
    let mut headers = MultiHeaders::<SockaddrStorage>::preallocate(BATCH, None);
    while !stop.load(Ordering::Relaxed) {
        let mut iovs: Vec<[IoSliceMut<'_>; 1]> =
            bufs.iter_mut().map(|b| [IoSliceMut::new(b)]).collect();
        let got = match recvmmsg(
            fd,
            &mut headers,
            iovs.iter_mut().map(|i| &*i),
            MsgFlags::MSG_DONTWAIT,
            None,
        ) {
            Ok(results) => results.count() as u64,
            Err(_) => 0,
        };
        drop(iovs);
        if got > 0 {
            received.fetch_add(got, Ordering::Relaxed);
        } else if socket.recv(&mut bufs[0]).is_ok() {
            received.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// The fixed AES-128-GCM key the ceilings seal with.
pub fn key() -> anyhow::Result<LessSafeKey> {
    let key = UnboundKey::new(&AES_128_GCM, &[0x5a; 16])
        .map_err(|_| anyhow::anyhow!("AES-128-GCM key"))?;
    Ok(LessSafeKey::new(key))
}

/// Writes an RTP-like header with `counter` and seals the payload in place, tag at the end.
pub fn seal(key: &LessSafeKey, buf: &mut [u8; DATAGRAM], counter: u64) -> anyhow::Result<()> {
    buf[0] = 0x80;
    buf[1] = 96;
    buf[2..4].copy_from_slice(&(counter as u16).to_be_bytes());
    buf[4..8].copy_from_slice(&(counter as u32).to_be_bytes());
    buf[8..12].copy_from_slice(&0x1234_5678u32.to_be_bytes());
    let mut nonce = [0u8; 12];
    nonce[4..].copy_from_slice(&counter.to_be_bytes());
    let (header, rest) = buf.split_at_mut(HEADER);
    let (payload, tag_out) = rest.split_at_mut(DATAGRAM - HEADER - TAG);
    let tag = key
        .seal_in_place_separate_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(&*header),
            payload,
        )
        .map_err(|_| anyhow::anyhow!("AES-GCM seal failed"))?;
    tag_out.copy_from_slice(tag.as_ref());
    Ok(())
}

fn seal_only(key: &LessSafeKey, run_for: Duration) -> anyhow::Result<f64> {
    let mut buf = [0u8; DATAGRAM];
    let mut counter = 0u64;
    let cpu0 = procfs::this_thread_cpu_seconds();
    let start = Instant::now();
    while start.elapsed() < run_for {
        for _ in 0..256 {
            counter += 1;
            seal(key, &mut buf, counter)?;
        }
    }
    let cpu_s = procfs::this_thread_cpu_seconds() - cpu0;
    Ok(counter as f64 / cpu_s.max(1e-9))
}
