//! Tests of the command API between the HTTP side and the workers: what a full worker inbox
//! does to a create.

use super::*;
use crate::driver::command::Command;

/// `workers` workers, no ICE-TCP, everything on loopback ports the kernel picks.
fn start_with(workers: usize, max_peers: usize) -> Sfu {
    let config = SfuConfig {
        udp_listen: "127.0.0.1:0".parse().expect("addr"),
        tcp_listen: None,
        workers,
        worker_queue: 16,
        max_peers,
        ..SfuConfig::default()
    };
    Sfu::start(&config, &prometheus::Registry::new()).expect("start")
}

fn start() -> Sfu {
    start_with(1, SfuConfig::default().max_peers)
}

/// Blocks worker `index` until the returned sender is used (or dropped).
fn hold(sfu: &Sfu, index: usize) -> std::sync::mpsc::Sender<()> {
    let (holding_tx, holding) = std::sync::mpsc::channel();
    let (release, release_rx) = std::sync::mpsc::channel();
    let hold = Command::Hold {
        holding: holding_tx,
        release: release_rx,
    };
    let worker = &sfu.inner.workers[index];
    worker.send(WorkerMsg::Command(hold)).expect("hold");
    holding
        .recv_timeout(Duration::from_secs(10))
        .expect("the worker holds");
    release
}

/// Queues a hold on worker `index` behind what its inbox has: the first receiver tells when
/// the worker reaches it, the sender lets it go on.
fn queue_hold(
    sfu: &Sfu,
    index: usize,
) -> (std::sync::mpsc::Receiver<()>, std::sync::mpsc::Sender<()>) {
    let (holding_tx, holding) = std::sync::mpsc::channel();
    let (release, release_rx) = std::sync::mpsc::channel();
    let hold = Command::Hold {
        holding: holding_tx,
        release: release_rx,
    };
    sfu.inner.workers[index]
        .send(WorkerMsg::Command(hold))
        .expect("hold");
    (holding, release)
}

/// Blocks the only worker, then fills its inbox.
fn hold_and_fill(sfu: &Sfu) -> std::sync::mpsc::Sender<()> {
    let release = hold(sfu, 0);
    let worker = &sfu.inner.workers[0];
    let mut queued = 0;
    loop {
        let (reply, _) = tokio::sync::oneshot::channel();
        let filler = Command::Room {
            room: "filler".to_owned(),
            reply,
        };
        if worker.try_send(WorkerMsg::Command(filler)).is_err() {
            break;
        }
        queued += 1;
    }
    assert_eq!(queued, 16, "the inbox holds worker_queue commands");
    release
}

/// A publish whose offer no worker accepts (it is never meant to get that far).
fn publish(room: &str) -> SessionRequest {
    SessionRequest {
        room: room.to_owned(),
        kind: SessionKind::Publish,
        label: "test".to_owned(),
        offer: "v=0".to_owned(),
    }
}

#[tokio::test]
async fn a_create_refused_by_a_full_inbox_leaves_no_room_placed() {
    let sfu = start();
    let release = hold_and_fill(&sfu);
    let refused = sfu.create_session(publish("r1")).await;
    assert!(matches!(refused, Err(SfuError::Busy)), "{refused:?}");
    // The room was placed for this create only, which the worker never saw: forgotten.
    assert!(!sfu.has_room("r1"));
    // A lookup of it answers at once, and never places it either.
    assert!(matches!(sfu.room("r1").await, Err(SfuError::NoSuchRoom)));
    drop(release);
    // The worker works through its inbox and answers a create again: this offer is refused
    // by the worker (not `Busy`), which forgets the room placed for it in turn.
    // `Busy` until it has made room (retrying is what `Busy` asks for).
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let refused = loop {
        match sfu.create_session(publish("r2")).await {
            Err(SfuError::Busy) if std::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            other => break other,
        }
    };
    assert!(matches!(refused, Err(SfuError::BadOffer(_))), "{refused:?}");
    assert!(!sfu.has_room("r1"));
    assert!(!sfu.has_room("r2"));
    sfu.shutdown();
}

/// Waits until `room` has `n` creates on their way to its worker.
async fn creates_on_their_way(sfu: &Sfu, room: &str, n: usize) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while sfu.inner.placement.lock().map_or(0, |p| p.creating(room)) < n {
        assert!(std::time::Instant::now() < deadline, "{n} creates queued");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// The race a review found: a new room's first create fails while a second is queued behind
/// it on the same worker. Between the two, the room must still be placed (its caller keeps
/// the convening region only if it is: `RoomRegistry`'s pending mark), and the second then
/// makes the room on that worker.
#[tokio::test]
async fn a_failed_first_create_leaves_the_room_to_the_create_queued_behind_it() {
    let sfu = start();
    let release = hold(&sfu, 0);
    let first = tokio::spawn({
        let sfu = sfu.clone();
        async move { sfu.create_session(publish("r")).await }
    });
    creates_on_their_way(&sfu, "r", 1).await;
    let (between, go_on) = queue_hold(&sfu, 0);
    let second = tokio::spawn({
        let sfu = sfu.clone();
        let req = SessionRequest {
            offer: valid_offer(),
            ..publish("r")
        };
        async move { sfu.create_session(req).await }
    });
    creates_on_their_way(&sfu, "r", 2).await;
    drop(release);
    between
        .recv_timeout(Duration::from_secs(10))
        .expect("the worker handled the first create");
    let failed = first.await.expect("task");
    assert!(matches!(failed, Err(SfuError::BadOffer(_))), "{failed:?}");
    assert!(
        sfu.has_room("r"),
        "the failed create's caller sees the room: the second create is on its way"
    );
    drop(go_on);
    let created = second.await.expect("task");
    assert!(created.is_ok(), "{created:?}");
    assert!(sfu.has_room("r"));
    let info = sfu.room("r").await.expect("the room exists");
    assert_eq!(info.publishers.len(), 1, "{info:?}");
    sfu.shutdown();
}

#[test]
fn binding_all_interfaces_needs_public_ips() {
    let registry = prometheus::Registry::new();
    let all = SfuConfig {
        udp_listen: "0.0.0.0:0".parse().expect("addr"),
        tcp_listen: None,
        workers: 1,
        ..SfuConfig::default()
    };
    let refused = Sfu::start(&all, &registry).err();
    assert!(
        matches!(refused, Some(StartError::NothingToAdvertise(addr)) if addr.ip().is_unspecified()),
        "{refused:?}"
    );
    // With the address peers reach named, it starts and its answers carry that address.
    let named = SfuConfig {
        public_ips: vec!["127.0.0.1".parse().expect("ip")],
        ..all
    };
    let sfu = Sfu::start(&named, &prometheus::Registry::new()).expect("start");
    assert!(sfu.udp_addr().ip().is_unspecified());
    sfu.shutdown();
}

/// An offer from a str0m peer for audio and video in `direction`.
fn str0m_offer(direction: str0m::media::Direction) -> String {
    use str0m::media::MediaKind;
    let mut rtc = str0m::Rtc::builder().build(std::time::Instant::now());
    let candidate =
        str0m::Candidate::host("127.0.0.1:40000".parse().expect("addr"), "udp").expect("candidate");
    rtc.add_local_candidate(candidate);
    let mut sdp = rtc.sdp_api();
    sdp.add_media(MediaKind::Audio, direction, None, None, None);
    sdp.add_media(MediaKind::Video, direction, None, None, None);
    let (offer, _) = sdp.apply().expect("an offer");
    offer.to_sdp_string()
}

/// A publisher's offer (send only).
fn valid_offer() -> String {
    str0m_offer(str0m::media::Direction::SendOnly)
}

/// A viewer's offer (receive only).
fn viewer_offer() -> String {
    str0m_offer(str0m::media::Direction::RecvOnly)
}

/// `max_peers` holds for the node, not per worker: creates held on two workers and released
/// together make one session for the one slot; failed creates and ended sessions give their
/// slot back.
#[tokio::test]
async fn the_node_peer_cap_holds_across_workers() {
    let sfu = start_with(2, 1);
    let releases = [hold(&sfu, 0), hold(&sfu, 1)];
    let creates: Vec<_> = (0..6)
        .map(|i| {
            let sfu = sfu.clone();
            let request = SessionRequest {
                offer: valid_offer(),
                ..publish(&format!("room-{i}"))
            };
            tokio::spawn(async move { sfu.create_session(request).await })
        })
        .collect();
    // Let every create reach its worker's inbox, then let the workers race.
    tokio::time::sleep(Duration::from_millis(100)).await;
    drop(releases);
    let mut created = Vec::new();
    for (i, create) in creates.into_iter().enumerate() {
        match create.await.expect("join") {
            Ok(session) => created.push((format!("room-{i}"), session.session)),
            Err(SfuError::Full("peers on this node")) => {}
            Err(other) => panic!("room-{i}: {other:?}"),
        }
    }
    assert_eq!(created.len(), 1, "one slot, one session: {created:?}");
    // A refused offer takes no slot for good.
    let bad = sfu.create_session(publish("room-bad")).await;
    assert!(matches!(bad, Err(SfuError::Full(_))), "{bad:?}");
    let (room, id) = created.pop().expect("one");
    let target = SessionRef {
        room,
        id,
        publish: true,
        subject: "test".to_owned(),
        moderator: true,
    };
    sfu.end_session(target).await.expect("ended");
    let bad = sfu.create_session(publish("room-bad")).await;
    assert!(matches!(bad, Err(SfuError::BadOffer(_))), "{bad:?}");
    let again = SessionRequest {
        offer: valid_offer(),
        ..publish("room-again")
    };
    sfu.create_session(again)
        .await
        .expect("the slot is free again");
    sfu.shutdown();
}

/// A hub behind a wall display runs for weeks while meetings come and go: rooms on both
/// workers filled with a publisher and two viewers, then emptied, twenty times over, leave
/// nothing behind. The node's cap is exactly one round's sessions, so a slot not given back
/// fails the next round; after each, no room is placed or known to a worker and no peer is
/// counted.
#[tokio::test]
async fn rooms_and_sessions_that_come_and_go_leave_nothing_behind() {
    let registry = prometheus::Registry::new();
    let config = SfuConfig {
        udp_listen: "127.0.0.1:0".parse().expect("addr"),
        tcp_listen: None,
        workers: 2,
        max_peers: 12,
        ..SfuConfig::default()
    };
    let sfu = Sfu::start(&config, &registry).expect("start");
    let peers = || {
        let text = prometheus::TextEncoder::new()
            .encode_to_string(&registry.gather())
            .expect("encode");
        text.lines()
            .find_map(|l| l.strip_prefix("hubcast_sfu_peers "))
            .and_then(|v| v.parse::<f64>().ok())
    };
    let rooms: Vec<String> = (0..4).map(|r| format!("meeting-{r}")).collect();
    for round in 0..20 {
        let mut sessions = Vec::new();
        for room in &rooms {
            let publisher = SessionRequest {
                offer: valid_offer(),
                ..publish(room)
            };
            let created = sfu.create_session(publisher).await;
            let publisher = created.unwrap_or_else(|e| panic!("round {round}, {room}: {e:?}"));
            sessions.push((room.clone(), publisher.session, true));
            for source in [PlaySource::Floor, PlaySource::Publisher(publisher.session)] {
                let viewer = SessionRequest {
                    room: room.clone(),
                    kind: SessionKind::Play(source),
                    label: "wall".to_owned(),
                    offer: viewer_offer(),
                };
                let created = sfu.create_session(viewer).await;
                let viewer = created.unwrap_or_else(|e| panic!("round {round}, {room}: {e:?}"));
                sessions.push((room.clone(), viewer.session, false));
            }
        }
        assert_eq!(peers(), Some(12.0), "round {round}");
        for (room, id, publish) in sessions {
            let target = SessionRef {
                room,
                id,
                publish,
                subject: "test".to_owned(),
                moderator: true,
            };
            sfu.end_session(target).await.expect("ended");
        }
        for room in &rooms {
            assert!(!sfu.has_room(room), "round {round}: {room} still placed");
            let info = sfu.room(room).await;
            assert!(matches!(info, Err(SfuError::NoSuchRoom)), "{info:?}");
        }
        assert_eq!(peers(), Some(0.0), "round {round}");
    }
    sfu.shutdown();
}

/// `shutdown` ends every session on every worker before it returns (it used to leave the
/// workers running until the last `Sfu` handle was dropped): each counted `shutdown`, and
/// room watchers are told the publishers left and the rooms closed.
#[tokio::test]
async fn shutdown_ends_every_session_before_it_returns() {
    let registry = prometheus::Registry::new();
    let config = SfuConfig {
        udp_listen: "127.0.0.1:0".parse().expect("addr"),
        tcp_listen: None,
        workers: 2,
        ..SfuConfig::default()
    };
    let sfu = Sfu::start(&config, &registry).expect("start");
    let mut notices = sfu.watch();
    for room in ["a", "b"] {
        let req = SessionRequest {
            offer: valid_offer(),
            ..publish(room)
        };
        sfu.create_session(req).await.expect("a publisher");
    }
    let held = sfu.clone();
    tokio::task::spawn_blocking(move || held.shutdown())
        .await
        .expect("shutdown");
    let text = prometheus::TextEncoder::new()
        .encode_to_string(&registry.gather())
        .expect("encode");
    assert!(
        text.lines()
            .any(|l| l == r#"hubcast_sfu_sessions_ended_total{reason="shutdown"} 2"#),
        "{text}"
    );
    let mut closed = Vec::new();
    while let Ok(notice) = notices.try_recv() {
        if notice.event == RoomEvent::RoomClosed {
            closed.push(notice.room.to_string());
        }
    }
    closed.sort();
    assert_eq!(closed, ["a", "b"]);
    // Nothing is served after it.
    let late = sfu.create_session(publish("c")).await;
    assert!(late.is_err(), "{late:?}");
}
