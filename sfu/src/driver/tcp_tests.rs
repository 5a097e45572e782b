//! Tests of ICE-TCP's bounds: the writer queue, the connection cap, strangers closed after
//! the connect timeout, and a peer that stops reading.

use super::*;
use std::io::Read as _;
use str0m::net::{Protocol, Transmit};

fn transmit(from: SocketAddr, to: SocketAddr, body: &[u8]) -> Transmit {
    super::super::net::test_transmit(Protocol::Tcp, from, to, body)
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
    let writers = std::collections::HashMap::from([(remote, (0, tx))]);
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

/// A client reconnecting over ICE-TCP from the same address: the old connection's detach,
/// arriving after the new one attached, leaves the new writer in place.
#[test]
fn a_late_detach_leaves_a_newer_connection_from_the_same_address() {
    let remote: SocketAddr = "127.0.0.1:40000".parse().expect("addr");
    let mut writers = std::collections::HashMap::new();
    let (old, _old_rx) = std::sync::mpsc::sync_channel::<Vec<u8>>(1);
    let (new, _new_rx) = std::sync::mpsc::sync_channel::<Vec<u8>>(1);
    writers.insert(remote, (1, old));
    writers.insert(remote, (2, new));
    super::super::worker::tcp_detach(&mut writers, remote, 1);
    assert_eq!(writers.get(&remote).map(|(conn, _)| *conn), Some(2));
    super::super::worker::tcp_detach(&mut writers, remote, 2);
    assert!(writers.is_empty());
}

/// Reads until the server closes `stream`; how long that took (`None`: still open after
/// `limit`).
fn closed_within(stream: &mut TcpStream, limit: Duration) -> Option<Duration> {
    let started = Instant::now();
    stream.set_read_timeout(Some(limit)).expect("timeout");
    let mut buf = [0u8; 64];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return Some(started.elapsed()),
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {
                return Some(started.elapsed());
            }
            Err(_) => return None,
        }
    }
}

/// Over the limit a connection is closed at once; connections that never route a STUN
/// to a session are closed after the connect timeout, also one that keeps sending (its
/// frames are dropped, and never reset the clock); all are counted, and the slots come back.
#[test]
fn connections_are_capped_and_strangers_are_closed() {
    let registry = prometheus::Registry::new();
    let metrics = SfuMetrics::new(&registry).expect("metrics");
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (tx, _rx) = std::sync::mpsc::sync_channel(16);
    let workers = Arc::new(vec![tx]);
    let stop = Arc::new(AtomicBool::new(false));
    let limits = TcpLimits {
        max_connections: 2,
        connect_timeout: Duration::from_secs(3),
    };
    let acceptor = {
        let (metrics, stop) = (metrics.clone(), stop.clone());
        std::thread::spawn(move || {
            let ufrags = UfragTable::default();
            accept_loop(&listener, &workers, &ufrags, &metrics, limits, &stop);
        })
    };
    let mut first = TcpStream::connect(addr).expect("connect");
    let mut second = TcpStream::connect(addr).expect("connect");
    // Garbage that is no STUN: dropped, and it does not count as finding a session.
    first.write_all(&[0, 4, 1, 2, 3, 4]).expect("write");
    // A chatty stranger: an empty frame every 50 ms, until the SFU closes it.
    let mut chatty = second.try_clone().expect("clone");
    let chatter = std::thread::spawn(move || {
        let mut sent = 0u32;
        while chatty.write_all(&[0, 0]).is_ok() && sent < 400 {
            sent += 1;
            std::thread::sleep(Duration::from_millis(50));
        }
        sent
    });
    let wait = Instant::now() + Duration::from_secs(5);
    while metrics.tcp_connections.get() < 2 && Instant::now() < wait {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(metrics.tcp_connections.get(), 2);
    let mut third = TcpStream::connect(addr).expect("connect");
    let refused = closed_within(&mut third, Duration::from_secs(2));
    assert!(
        refused.is_some_and(|t| t < Duration::from_millis(1500)),
        "{refused:?}"
    );
    assert_eq!(metrics.tcp_closed.with_label_values(&["full"]).get(), 1);
    for stream in [&mut first, &mut second] {
        let took = closed_within(stream, Duration::from_secs(8));
        assert!(took.is_some(), "a stranger stays connected");
    }
    let sent = chatter.join().expect("chatter");
    assert!(sent < 400, "the chatty stranger was never closed");
    assert_eq!(
        metrics.tcp_closed.with_label_values(&["no_session"]).get(),
        2
    );
    // The garbage frame and every chatty one were dropped as from no known sender.
    let unknown = metrics
        .dropped_packets
        .with_label_values(&["unknown_sender"])
        .get();
    assert!(unknown > 10, "{unknown}");
    let wait = Instant::now() + Duration::from_secs(5);
    while metrics.tcp_connections.get() > 0 && Instant::now() < wait {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(metrics.tcp_connections.get(), 0, "slots are given back");
    stop.store(true, Ordering::Relaxed);
    acceptor.join().expect("acceptor");
}

/// A peer that stops reading is disconnected after the write timeout instead of holding
/// its writer thread forever.
#[test]
fn a_peer_that_stops_reading_is_disconnected() {
    let registry = prometheus::Registry::new();
    let metrics = SfuMetrics::new(&registry).expect("metrics");
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let peer = TcpStream::connect(listener.local_addr().expect("addr")).expect("connect");
    peer.set_read_timeout(Some(Duration::from_secs(1)))
        .expect("timeout");
    let (server, _) = listener.accept().expect("accept");
    server
        .set_write_timeout(Some(Duration::from_millis(300)))
        .expect("timeout");
    let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<u8>>(TCP_WRITE_QUEUE);
    let writer = {
        let metrics = metrics.clone();
        std::thread::spawn(move || write_frames(server, &rx, &metrics))
    };
    // The peer never reads: the socket buffers fill, then the writer's write times out.
    let started = Instant::now();
    while !writer.is_finished() && started.elapsed() < Duration::from_secs(20) {
        let _ = tx.try_send(vec![0u8; 1200]);
        std::thread::sleep(Duration::from_micros(200));
    }
    assert!(writer.is_finished(), "the writer still waits on the peer");
    assert_eq!(
        metrics
            .tcp_closed
            .with_label_values(&["write_stalled"])
            .get(),
        1
    );
    drop(peer);
}

/// A connection whose session ended is closed within the connect timeout, although its peer
/// keeps sending (each frame would reset the idle clock).
#[test]
fn a_connection_whose_session_ended_is_closed() {
    let metrics = SfuMetrics::new(&prometheus::Registry::new()).expect("metrics");
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (tx, _rx) = std::sync::mpsc::sync_channel(1024);
    let workers = Arc::new(vec![tx]);
    let stop = Arc::new(AtomicBool::new(false));
    let limits = TcpLimits {
        max_connections: 4,
        connect_timeout: Duration::from_secs(1),
    };
    let ufrags = UfragTable::default();
    ufrags.insert(
        "srvT",
        super::super::demux::Route {
            worker: 0,
            session: 7,
        },
    );
    let acceptor = {
        let (metrics, stop, ufrags) = (metrics.clone(), stop.clone(), ufrags.clone());
        std::thread::spawn(move || {
            accept_loop(&listener, &workers, &ufrags, &metrics, limits, &stop);
        })
    };
    let mut client = TcpStream::connect(addr).expect("connect");
    let stun = super::super::ingress::tests::binding_request("srvT:cli");
    let mut frame = u16::try_from(stun.len())
        .expect("short")
        .to_be_bytes()
        .to_vec();
    frame.extend_from_slice(&stun);
    let mut sender = client.try_clone().expect("clone");
    let chatter = std::thread::spawn(move || {
        let mut sent = 0u32;
        while sender.write_all(&frame).is_ok() && sent < 200 {
            sent += 1;
            std::thread::sleep(Duration::from_millis(50));
        }
        sent
    });
    // Alive: frames route to session 7 and the connection stays past the connect timeout.
    assert!(closed_within(&mut client, Duration::from_millis(2500)).is_none());
    ufrags.remove("srvT");
    let took = closed_within(&mut client, Duration::from_secs(5));
    assert!(took.is_some(), "still open after its session ended");
    assert!(chatter.join().expect("chatter") < 200);
    assert_eq!(
        metrics.tcp_closed.with_label_values(&["no_session"]).get(),
        1
    );
    stop.store(true, Ordering::Relaxed);
    acceptor.join().expect("acceptor");
}
