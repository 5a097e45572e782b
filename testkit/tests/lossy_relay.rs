//! The lossy relay drops about the configured fraction of datagrams, delays the rest, and
//! carries replies back to the right client.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use testkit::lossy_relay::{Direction, LossyRelay, RelayConfig, rewrite_candidates};
use tokio::net::UdpSocket;

/// An echo server on loopback; returns its address.
async fn echo_server() -> SocketAddr {
    let sock = UdpSocket::bind("127.0.0.1:0").await.expect("bind echo");
    let addr = sock.local_addr().expect("addr");
    tokio::spawn(async move {
        let mut buf = [0u8; 2048];
        while let Ok((n, from)) = sock.recv_from(&mut buf).await {
            let _ = sock.send_to(&buf[..n], from).await;
        }
    });
    addr
}

#[tokio::test]
async fn drops_about_ten_percent_of_2000_datagrams_toward_the_server() {
    let server = echo_server().await;
    let cfg = RelayConfig {
        loss: 0.10,
        delay: Duration::ZERO,
        direction: Direction::ToServer,
        seed: 7,
        duplicate: 0.0,
        tamper: 0.0,
    };
    let relay = LossyRelay::start(server, cfg).await.expect("relay");
    let client = UdpSocket::bind("127.0.0.1:0").await.expect("bind client");
    client.connect(relay.local_addr()).await.expect("connect");

    let recv = async {
        let mut buf = [0u8; 64];
        let mut got = 0u32;
        while let Ok(Ok(_)) =
            tokio::time::timeout(Duration::from_millis(500), client.recv(&mut buf)).await
        {
            got += 1;
        }
        got
    };
    let send = async {
        for i in 0u32..2000 {
            client.send(&i.to_be_bytes()).await.expect("send");
            if i % 100 == 0 {
                tokio::task::yield_now().await;
            }
        }
    };
    let ((), echoed) = tokio::join!(send, recv);

    let s = relay.stats();
    assert_eq!(s.to_server.forwarded + s.to_server.dropped, 2000, "{s:?}");
    // Binomial(2000, 0.1): mean 200, sd ≈ 13.4; ±60 is beyond 4 sd.
    assert!(
        (140..=260).contains(&s.to_server.dropped),
        "dropped {} of 2000",
        s.to_server.dropped
    );
    assert_eq!(
        s.to_client.dropped, 0,
        "the reverse direction is not impaired"
    );
    assert_eq!(u64::from(echoed), s.to_client.forwarded, "{s:?}");
    assert_eq!(
        u64::from(echoed),
        s.to_server.forwarded,
        "every forwarded datagram echoed back"
    );
}

#[tokio::test]
async fn delays_each_direction_and_keeps_clients_apart() {
    let server = echo_server().await;
    let cfg = RelayConfig {
        loss: 0.0,
        delay: Duration::from_millis(40),
        direction: Direction::Both,
        seed: 1,
        duplicate: 0.0,
        tamper: 0.0,
    };
    let relay = LossyRelay::start(server, cfg).await.expect("relay");
    let a = UdpSocket::bind("127.0.0.1:0").await.expect("bind a");
    let b = UdpSocket::bind("127.0.0.1:0").await.expect("bind b");
    let start = Instant::now();
    a.send_to(b"from-a", relay.local_addr())
        .await
        .expect("send a");
    b.send_to(b"from-b", relay.local_addr())
        .await
        .expect("send b");
    let mut buf = [0u8; 16];
    let n = tokio::time::timeout(Duration::from_secs(2), a.recv(&mut buf))
        .await
        .expect("a timely")
        .expect("a recv");
    assert_eq!(&buf[..n], b"from-a");
    let n = tokio::time::timeout(Duration::from_secs(2), b.recv(&mut buf))
        .await
        .expect("b timely")
        .expect("b recv");
    assert_eq!(&buf[..n], b"from-b");
    let rtt = start.elapsed();
    assert!(
        rtt >= Duration::from_millis(80),
        "40 ms each way, got a round trip of {rtt:?}"
    );
    assert!(rtt < Duration::from_millis(500), "round trip {rtt:?}");
}

#[test]
fn rewrites_udp_candidates_and_drops_tcp() {
    let sdp = "v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\n\
               a=candidate:1 1 udp 2130706431 127.0.0.1 3478 typ host\r\n\
               a=candidate:2 1 tcp 1518280447 127.0.0.1 3479 typ host tcptype passive\r\n";
    let via: SocketAddr = "127.0.0.1:40000".parse().expect("addr");
    let out = rewrite_candidates(sdp, via);
    assert!(
        out.contains("a=candidate:1 1 udp 2130706431 127.0.0.1 40000 typ host\r\n"),
        "{out}"
    );
    assert!(!out.contains("tcp "), "{out}");
    assert!(out.starts_with("v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\n"));
}

/// `tamper` flips the last byte of RTP/RTCP datagrams (first byte 128–191) toward the
/// server, about the configured fraction of them, and leaves other datagrams (STUN, DTLS)
/// and the other direction untouched.
#[tokio::test]
async fn tampers_with_the_last_byte_of_rtp_toward_the_server_only() {
    let server = echo_server().await;
    let cfg = RelayConfig {
        loss: 0.0,
        delay: Duration::ZERO,
        tamper: 0.5,
        seed: 9,
        ..RelayConfig::default()
    };
    let relay = LossyRelay::start(server, cfg).await.expect("relay");
    let client = UdpSocket::bind("127.0.0.1:0").await.expect("bind client");
    client.connect(relay.local_addr()).await.expect("connect");
    // 200 RTP-looking datagrams, then 50 DTLS-looking ones, each unique by its middle bytes.
    let datagram = |i: u16, first: u8| {
        let mut d = vec![first, 0x60, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        d.extend_from_slice(&i.to_be_bytes());
        d.extend_from_slice(&[0xAA; 8]);
        d
    };
    let mut sent = Vec::new();
    for i in 0..250u16 {
        let d = datagram(i, if i < 200 { 0x80 } else { 22 });
        client.send(&d).await.expect("send");
        sent.push(d);
        if i % 50 == 0 {
            tokio::task::yield_now().await;
        }
    }
    let mut buf = [0u8; 64];
    let (mut changed_rtp, mut changed_other) = (0, 0);
    for _ in 0..250 {
        let n = tokio::time::timeout(Duration::from_secs(2), client.recv(&mut buf))
            .await
            .expect("every datagram comes back")
            .expect("recv");
        let back = &buf[..n];
        let i = usize::from(u16::from_be_bytes([back[12], back[13]]));
        let original = &sent[i];
        if back != original.as_slice() {
            let mut expected = original.clone();
            if let Some(last) = expected.last_mut() {
                *last ^= 1;
            }
            assert_eq!(back, expected.as_slice(), "only the last byte flipped");
            if i < 200 {
                changed_rtp += 1;
            } else {
                changed_other += 1;
            }
        }
    }
    let s = relay.stats();
    assert_eq!(changed_other, 0, "DTLS and STUN pass untouched");
    assert_eq!(changed_rtp, s.to_server.tampered, "{s:?}");
    // Binomial(200, 0.5): mean 100, sd ≈ 7; ±40 is beyond 5 sd.
    assert!((60..=140).contains(&changed_rtp), "{changed_rtp} of 200");
    assert_eq!(
        s.to_client.tampered, 0,
        "the reverse direction is not impaired"
    );
}

#[tokio::test]
async fn a_rate_limited_direction_paces_queues_and_drops_what_its_buffer_cannot_hold() {
    let server = echo_server().await;
    let relay = LossyRelay::start(server, RelayConfig::passthrough())
        .await
        .expect("relay");
    let client = UdpSocket::bind("127.0.0.1:0").await.expect("bind client");
    client.connect(relay.local_addr()).await.expect("connect");
    // 800 kbit/s toward the client: a 1000-byte datagram takes 10 ms, and the buffer holds
    // `MAX_QUEUE` (250 ms) of them, about 26 (one more per 10 ms the burst takes to arrive).
    // A burst of 100 comes back paced, the rest lost.
    relay.set_rate(Direction::ToClient, Some(800_000));
    let start = Instant::now();
    for i in 0u32..100 {
        let mut datagram = vec![0u8; 1000];
        datagram[..4].copy_from_slice(&i.to_be_bytes());
        client.send(&datagram).await.expect("send");
    }
    let mut arrivals = Vec::new();
    let mut buf = [0u8; 2048];
    while let Ok(Ok(_)) =
        tokio::time::timeout(Duration::from_millis(500), client.recv(&mut buf)).await
    {
        arrivals.push(start.elapsed());
    }
    let s = relay.stats();
    assert_eq!(s.to_server.dropped, 0, "{s:?}");
    assert!(
        (24..=45).contains(&arrivals.len()),
        "about 250 ms of 10 ms datagrams got through: {} ({s:?})",
        arrivals.len()
    );
    assert_eq!(s.to_client.forwarded, arrivals.len() as u64, "{s:?}");
    let spread = arrivals[arrivals.len() - 1] - arrivals[0];
    assert!(
        spread >= Duration::from_millis(200),
        "paced at the rate, not sent at once: {spread:?}"
    );
    // Lifted: a second burst comes back whole.
    relay.set_rate(Direction::ToClient, None);
    for i in 0u32..100 {
        client.send(&i.to_be_bytes()).await.expect("send");
    }
    let mut got = 0;
    while let Ok(Ok(_)) =
        tokio::time::timeout(Duration::from_millis(500), client.recv(&mut buf)).await
    {
        got += 1;
    }
    assert_eq!(got, 100, "{:?}", relay.stats());
}
