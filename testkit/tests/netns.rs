//! `ensure_isolated` re-runs a test in a namespace where only `lo` exists, and `lo` works.

use testkit::netns::{ENV_IN_NETNS, in_netns, interfaces};

#[test]
fn only_loopback_inside_and_it_is_up() {
    testkit::isolated!();
    assert!(in_netns(), "{ENV_IN_NETNS} must be set inside");
    assert_eq!(interfaces(), ["lo"]);
    let a = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
    let b = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
    a.send_to(b"ping", b.local_addr().expect("addr"))
        .expect("send on lo");
    let mut buf = [0u8; 8];
    let (n, _) = b.recv_from(&mut buf).expect("recv on lo");
    assert_eq!(&buf[..n], b"ping");
    // No route anywhere else: connecting a UDP socket to a non-loopback address fails.
    let c = std::net::UdpSocket::bind("0.0.0.0:0").expect("bind any");
    assert!(
        c.connect("192.0.2.1:9").is_err(),
        "a non-loopback route exists"
    );
}
