//! A second ceiling, shaped like the hub's egress: the same AES-128-GCM seal and `sendmmsg`
//! as `ceiling`, but each datagram goes to the next of as many loopback sockets as the run
//! had subscribers (one room's sockets after another, a `sendmmsg` per room's copies), read
//! by as many threads as the run had client threads, each sleeping in epoll, at the rate the
//! hub forwarded. It answers "what would a hub that did nothing but seal and send cost per
//! copy here": the kernel's delivery into many sockets, including waking their readers, is
//! dearer per datagram than into one socket that never sleeps.

use std::io::IoSlice;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use mio::{Events, Interest, Poll, Token};
use nix::sys::socket::{MsgFlags, MultiHeaders, SockaddrIn, sendmmsg};

use crate::ceiling::{BATCH, DATAGRAM, key, seal};
use crate::procfs;

/// The shape of the egress to imitate.
#[derive(Debug, Clone, Copy)]
pub struct Shape {
    /// Receiving sockets per room (a `sendmmsg` carries one room's copies, at most `BATCH`).
    pub per_room: usize,
    /// Rooms.
    pub rooms: usize,
    /// Reader threads (sockets are spread over them round-robin).
    pub threads: usize,
    /// Datagrams per second to send (the hub's forwarding rate in the run).
    pub rate: f64,
}

/// What the fan-out loop achieved.
#[derive(Debug, Clone, Copy)]
pub struct Fanout {
    pub shape: Shape,
    /// CPU seconds of the sending thread (includes loopback delivery and wake-ups).
    pub cpu_s: f64,
    /// Wall seconds of the send loop.
    pub wall_s: f64,
    /// Datagrams the kernel accepted.
    pub sent: u64,
    /// Datagrams the readers received.
    pub received: u64,
}

impl Fanout {
    /// Microseconds of the sender's CPU per datagram.
    pub fn us_per_datagram(&self) -> f64 {
        self.cpu_s * 1e6 / (self.sent.max(1) as f64)
    }
}

/// Runs the paced fan-out for `seconds`.
pub fn run(shape: Shape, seconds: f64) -> anyhow::Result<Fanout> {
    let sockets = shape.per_room.max(1) * shape.rooms.max(1);
    let threads = shape.threads.clamp(1, sockets);
    let key = key()?;
    let stop = Arc::new(AtomicBool::new(false));
    let received = Arc::new(AtomicU64::new(0));
    let mut groups: Vec<Vec<UdpSocket>> = (0..threads).map(|_| Vec::new()).collect();
    let mut targets = Vec::with_capacity(sockets);
    for i in 0..sockets {
        let socket = UdpSocket::bind("127.0.0.1:0")?;
        socket.set_nonblocking(true)?;
        let SocketAddr::V4(v4) = socket.local_addr()? else {
            anyhow::bail!("loopback receiver is not IPv4");
        };
        targets.push(SockaddrIn::from(v4));
        groups[i % threads].push(socket);
    }
    let readers: Vec<_> = groups
        .into_iter()
        .enumerate()
        .map(|(i, group)| {
            let (stop, received) = (stop.clone(), received.clone());
            std::thread::Builder::new()
                .name(format!("fanout-rx-{i}"))
                .spawn(move || read_loop(group, &stop, &received))
        })
        .collect::<Result<_, _>>()?;

    let sender = UdpSocket::bind("127.0.0.1:0")?;
    let fd = sender.as_raw_fd();
    let per_call = shape.per_room.clamp(1, BATCH);
    let mut headers = MultiHeaders::<SockaddrIn>::preallocate(per_call, None);
    let mut bufs = vec![[0u8; DATAGRAM]; per_call];
    let (mut counter, mut sent, mut next) = (0u64, 0u64, 0usize);
    let rate = shape.rate.max(1.0);

    let cpu0 = procfs::this_thread_cpu_seconds();
    let start = Instant::now();
    let run_for = Duration::from_secs_f64(seconds);
    while start.elapsed() < run_for {
        // The next room's sockets, `per_call` of them at a time.
        let mut addrs = [None; BATCH];
        for (slot, buf) in addrs.iter_mut().zip(bufs.iter_mut()) {
            counter += 1;
            seal(&key, buf, counter)?;
            *slot = Some(targets[next % sockets]);
            next += 1;
        }
        let iovs: [[IoSlice<'_>; 1]; BATCH] =
            std::array::from_fn(|i| [IoSlice::new(bufs.get(i).map_or(&[][..], |b| &b[..]))]);
        match sendmmsg(
            fd,
            &mut headers,
            &iovs[..per_call],
            &addrs[..per_call],
            [],
            MsgFlags::empty(),
        ) {
            Ok(results) => sent += results.count() as u64,
            Err(nix::errno::Errno::EAGAIN | nix::errno::Errno::ENOBUFS) => {}
            Err(e) => return Err(e).context("sendmmsg"),
        }
        // Paced like the hub: sleep while ahead of the rate.
        let due = Duration::from_secs_f64(counter as f64 / rate);
        if let Some(ahead) = due.checked_sub(start.elapsed()) {
            std::thread::sleep(ahead);
        }
    }
    let wall_s = start.elapsed().as_secs_f64();
    let cpu_s = procfs::this_thread_cpu_seconds() - cpu0;
    std::thread::sleep(Duration::from_millis(200));
    stop.store(true, Ordering::Relaxed);
    for reader in readers {
        let _ = reader.join();
    }
    Ok(Fanout {
        shape,
        cpu_s,
        wall_s,
        sent,
        received: received.load(Ordering::Relaxed),
    })
}

/// Waits in epoll for any of `sockets` and reads each ready one until it would block.
fn read_loop(sockets: Vec<UdpSocket>, stop: &AtomicBool, received: &AtomicU64) {
    let Ok(mut poll) = Poll::new() else {
        return;
    };
    let mut sockets: Vec<mio::net::UdpSocket> = sockets
        .into_iter()
        .map(mio::net::UdpSocket::from_std)
        .collect();
    for (i, socket) in sockets.iter_mut().enumerate() {
        if poll
            .registry()
            .register(socket, Token(i), Interest::READABLE)
            .is_err()
        {
            return;
        }
    }
    let mut events = Events::with_capacity(256);
    let mut buf = [0u8; 2048];
    while !stop.load(Ordering::Relaxed) {
        if poll
            .poll(&mut events, Some(Duration::from_millis(50)))
            .is_err()
        {
            continue;
        }
        for event in &events {
            let Some(socket) = sockets.get(event.token().0) else {
                continue;
            };
            let mut got = 0;
            while socket.recv(&mut buf).is_ok() {
                got += 1;
            }
            received.fetch_add(got, Ordering::Relaxed);
        }
    }
}
