//! A client that comes back from the same address while its old session still lingers: an
//! encoder bound to a fixed port restarting after a crash, or a NAT reusing a mapping. Its old
//! session hears nothing more and would only be ended by ICE (measured here: ~16 s after the
//! crash); until then every check of the new session from that address used to be refused.
//! The SFU now hands the address over once the old session has heard nothing from it for 8 s
//! (`demux::QUIET_TAKEOVER`) and ends the old session, left with no address (`address_taken`),
//! so it sends nothing more to the new client; a live peer's address is still never taken.
//! Measured: the restarted client connected 8.2 s after the crash (its third attempt); with
//! the takeover disabled, 16.3 s (its fifth, once ICE had ended the old session).
//!
//! The clients are webrtc-rs publishers behind a one-mapping NAT in this file: every client
//! reaches the SFU from the NAT's one upstream port, and the NAT forwards only its newest
//! client (the old one is cut off, as a crashed process would be, without a DELETE). Like an
//! encoder, the restarted client retries its WHIP session when ICE gives up (webrtc-rs stops
//! checking a pair after a few unanswered requests).

mod common;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use testkit::rtc_client::{ClientOptions, PublishOptions, WhepViewer, WhipPublisher};
use tokio::net::UdpSocket;

/// Front socket for clients, one upstream socket toward the SFU; forwards only the current
/// client: each client address never heard before becomes it, and one heard before that is
/// not it is cut off for good.
struct Nat {
    front: SocketAddr,
    current: Arc<Mutex<Option<SocketAddr>>>,
    tasks: tokio::task::JoinSet<()>,
}

impl Nat {
    async fn start(server: SocketAddr) -> Nat {
        let front = Arc::new(UdpSocket::bind("127.0.0.1:0").await.expect("front"));
        let up = Arc::new(UdpSocket::bind("127.0.0.1:0").await.expect("upstream"));
        up.connect(server).await.expect("connect upstream");
        let current: Arc<Mutex<Option<SocketAddr>>> = Arc::default();
        let mut tasks = tokio::task::JoinSet::new();
        let (f, u, c) = (front.clone(), up.clone(), current.clone());
        tasks.spawn(async move {
            let mut buf = vec![0u8; 65_536];
            let mut seen = Vec::new();
            while let Ok((n, from)) = f.recv_from(&mut buf).await {
                let forward = {
                    let mut current = c.lock().expect("lock");
                    if !seen.contains(&from) {
                        seen.push(from);
                        *current = Some(from);
                    }
                    *current == Some(from)
                };
                if forward {
                    let _ = u.send(&buf[..n]).await;
                }
            }
        });
        let (f, u, c) = (front.clone(), up.clone(), current.clone());
        tasks.spawn(async move {
            let mut buf = vec![0u8; 65_536];
            loop {
                let Ok(n) = u.recv(&mut buf).await else {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                    continue;
                };
                let to = *c.lock().expect("lock");
                if let Some(to) = to {
                    let _ = f.send_to(&buf[..n], to).await;
                }
            }
        });
        Nat {
            front: front.local_addr().expect("front address"),
            current,
            tasks,
        }
    }

    /// Stops forwarding the current client, for good (a crash: nothing more from it).
    fn cut_current(&self) {
        self.current.lock().expect("lock").take();
    }
}

#[tokio::test]
async fn a_client_back_on_the_same_address_connects_and_its_silent_old_session_is_ended() {
    testkit::isolated!();
    let (hub, sfu) = common::hub_on_udp();
    let nat = Nat::start(sfu).await;
    let token = hub.token("city-admin", "330100", &[]);
    let via = ClientOptions {
        media_via: Some(nat.front),
        ..ClientOptions::with_token(&token)
    };
    let first = WhipPublisher::connect(&hub.url, "reuse", &via, PublishOptions::simulcast())
        .await
        .expect("the first session connects through the NAT");
    assert_eq!(common::metric(&hub, "hubcast_sfu_peers").await, 1.0);

    // The first client dies (no DELETE, nothing more from it); the restarted one comes from
    // the same address, retrying its session every time ICE gives up.
    nat.cut_current();
    let restarted = Instant::now();
    let retry = ClientOptions {
        connect_timeout: Duration::from_secs(4),
        ..via.clone()
    };
    let mut attempts = 0;
    let second = loop {
        attempts += 1;
        match WhipPublisher::connect(&hub.url, "reuse", &retry, PublishOptions::simulcast()).await {
            Ok(publisher) => break publisher,
            Err(err) => {
                println!("port-reuse test: attempt {attempts} failed: {err}");
                assert!(
                    restarted.elapsed() < Duration::from_secs(20),
                    "the restarted client could not connect before ICE ended the old session"
                );
            }
        }
    };
    let took = restarted.elapsed();
    let in_use = r#"hubcast_sfu_dropped_packets_total{reason="address_in_use"}"#;
    let refused = common::metric(&hub, in_use).await;
    let ended = |reason: &str| format!("hubcast_sfu_sessions_ended_total{{reason=\"{reason}\"}}");
    let by_ice = common::metric(&hub, &ended("ice_disconnected")).await;
    let taken = common::metric(&hub, &ended("address_taken")).await;
    println!(
        "port-reuse test: connected after {took:?} (attempt {attempts}); {refused} STUN requests \
         refused while the old session was heard from lately; old session ended by ICE: \
         {by_ice}, for its address: {taken}"
    );
    assert!(
        took >= Duration::from_secs(7),
        "not before the old session has been quiet for 8 s: {took:?}"
    );
    assert!(refused >= 1.0, "its first checks were refused ({refused})");
    assert_eq!(
        by_ice, 0.0,
        "connected before ICE ended the old session (~16 s on)"
    );
    assert_eq!(
        taken, 1.0,
        "the old session, left with no address, was ended"
    );

    // The new session's media reaches a viewer.
    let opts = ClientOptions::with_token(&token);
    let viewer = WhepViewer::connect(&hub.url, "reuse", Some(second.session_id()), &opts)
        .await
        .expect("a viewer of the restarted publisher");
    viewer
        .wait_for("video", Duration::from_secs(20), |s| s.video.frames > 30)
        .await
        .expect("the restarted publisher's video flows");
    viewer.close().await.ok();
    second.close().await.ok();
    first.close().await.ok();
    drop(nat.tasks);
}
