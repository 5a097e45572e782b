//! Two webrtc-rs peers connect directly over loopback (offer/answer exchanged in-process) with
//! the client configuration the WHIP/WHEP clients use — no ICE servers, `lo` only — and the
//! synthetic simulcast video and Opus audio arrive. Runs inside a loopback-only namespace, which
//! proves that nothing beyond `lo` is needed.

use std::time::Duration;

use testkit::lossy_relay::{LossyRelay, RelayConfig, rewrite_candidates};
use testkit::rtc_client::{
    MediaCounter, PublishOptions, SyntheticMedia, complete_offer, loopback_peer, wait_connected,
};
use webrtc::peer_connection::RTCPeerConnection;
use webrtc::peer_connection::sdp::session_description::RTCSessionDescription;

const CONNECT: Duration = Duration::from_secs(15);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simulcast_and_audio_flow_between_two_loopback_peers() {
    testkit::isolated!();
    let (sender_pc, mut sender_state) = loopback_peer().await.expect("sender peer");
    let (receiver_pc, mut receiver_state) = loopback_peer().await.expect("receiver peer");
    let media = SyntheticMedia::add_to(&sender_pc, PublishOptions::simulcast())
        .await
        .expect("add tracks");
    let counter = MediaCounter::add_to(&receiver_pc, false)
        .await
        .expect("counter");

    let offer = complete_offer(&sender_pc).await.expect("offer");
    let candidates: Vec<&str> = offer
        .lines()
        .filter(|l| l.starts_with("a=candidate:"))
        .collect();
    assert!(!candidates.is_empty(), "no candidates gathered:\n{offer}");
    for c in &candidates {
        assert!(
            c.contains(" 127.0.0.1 ") && c.contains(" udp "),
            "non-loopback candidate: {c}"
        );
    }
    assert!(
        offer.contains("a=simulcast:send q;h;f"),
        "offer lacks simulcast:\n{offer}"
    );
    assert!(
        offer.contains("ssrc-audio-level"),
        "offer lacks the audio-level extension"
    );

    let answer = answer_after_gathering(&receiver_pc, offer).await;
    sender_pc
        .set_remote_description(RTCSessionDescription::answer(answer).expect("answer sdp"))
        .await
        .expect("sender applies answer");

    wait_connected(&mut sender_state, CONNECT)
        .await
        .expect("sender connected");
    wait_connected(&mut receiver_state, CONNECT)
        .await
        .expect("receiver connected");
    let sending = media.start();

    let stats = counter
        .wait_for(
            "three video layers and audio",
            Duration::from_secs(15),
            |s| s.video.ssrcs.len() == 3 && s.video.sizes_seen.len() == 3 && s.audio.packets >= 25,
        )
        .await
        .unwrap_or_else(|e| panic!("{e}: {:?} / {:?}", counter.stats(), sending.stats()));
    let mut sizes = stats.video.sizes_seen.clone();
    sizes.sort_unstable();
    assert_eq!(sizes, [(320, 180), (640, 360), (1280, 720)]);
    assert_eq!(stats.audio.ssrcs.len(), 1);
    assert!(stats.video.keyframes >= 3 && stats.video.frames > stats.video.keyframes);
    assert_eq!(
        stats.video.lost, 0,
        "loopback without impairment lost packets: {stats:?}"
    );
    let sent = sending.stats();
    assert!(
        sent.video_packets >= stats.video.packets && sent.audio_packets > 0,
        "{sent:?}"
    );

    sender_pc.close().await.expect("close sender");
    receiver_pc.close().await.expect("close receiver");
}

/// 10 % loss and 40 ms delay on the media path: the receiver's NACKs reach the sender, whose
/// NACK responder resends, so video losses are repaired (Opus is not NACKed, as in browsers).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nack_repairs_most_losses_through_the_lossy_relay() {
    testkit::isolated!();
    let (sender_pc, mut sender_state) = loopback_peer().await.expect("sender peer");
    let (receiver_pc, mut receiver_state) = loopback_peer().await.expect("receiver peer");
    let media = SyntheticMedia::add_to(&sender_pc, PublishOptions::default())
        .await
        .expect("tracks");
    let counter = MediaCounter::add_to(&receiver_pc, false)
        .await
        .expect("counter");

    // The receiver gets no candidates (it learns the relay's address from incoming checks, as
    // an ICE-lite SFU would); the sender sees the receiver only through the relay.
    let offer = complete_offer(&sender_pc).await.expect("offer");
    let offer: String = offer
        .split_inclusive("\r\n")
        .filter(|l| !l.starts_with("a=candidate:"))
        .collect();
    let answer = answer_after_gathering(&receiver_pc, offer).await;
    let receiver_addr = answer
        .lines()
        .find_map(|l| {
            let f: Vec<&str> = l.strip_prefix("a=candidate:")?.split(' ').collect();
            format!("{}:{}", f.get(4)?, f.get(5)?).parse().ok()
        })
        .expect("receiver candidate");
    let relay = LossyRelay::start(receiver_addr, RelayConfig::default())
        .await
        .expect("relay");
    let answer = rewrite_candidates(&answer, relay.local_addr());
    sender_pc
        .set_remote_description(RTCSessionDescription::answer(answer).expect("answer sdp"))
        .await
        .expect("sender applies answer");
    wait_connected(&mut sender_state, CONNECT)
        .await
        .expect("sender connected");
    wait_connected(&mut receiver_state, CONNECT)
        .await
        .expect("receiver connected");
    let sending = media.start();

    let stats = counter
        .wait_for("400 video packets", Duration::from_secs(20), |s| {
            s.video.packets >= 400
        })
        .await
        .unwrap_or_else(|e| panic!("{e}: {:?} / {:?}", counter.stats(), relay.stats()));
    // Let NACKs for the last holes come back (≥ 2 × 40 ms + the generator's interval).
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after = counter.stats();
    let relayed = relay.stats();
    let sent = sending.stats();
    println!("receiver {after:?}\nrelay {relayed:?}\nsender {sent:?}");
    let dropped = relayed.to_server.dropped;
    assert!(
        dropped >= 30,
        "the relay should have dropped ~10 %: {relayed:?}"
    );
    assert!(sent.nacks > 0, "the sender got no NACKs: {sent:?}");
    assert!(
        after.audio.lost > 0,
        "audio (not NACKed) shows the loss: {after:?}"
    );
    // A repair can be lost too (10 %) and the newest holes may be pending: allow a few.
    assert!(
        after.video.lost * 10 <= dropped,
        "video not repaired: {after:?} / {relayed:?}"
    );
    assert!(stats.video.keyframes >= 1);

    sender_pc.close().await.expect("close sender");
    receiver_pc.close().await.expect("close receiver");
}

/// Applies `offer` to `pc` and returns its answer with every candidate gathered.
async fn answer_after_gathering(pc: &RTCPeerConnection, offer: String) -> String {
    pc.set_remote_description(RTCSessionDescription::offer(offer).expect("offer sdp"))
        .await
        .expect("receiver applies offer");
    let answer = pc.create_answer(None).await.expect("answer");
    let mut gathered = pc.gathering_complete_promise().await;
    pc.set_local_description(answer)
        .await
        .expect("receiver local");
    let _ = gathered.recv().await;
    pc.local_description().await.expect("answer sdp").sdp
}
