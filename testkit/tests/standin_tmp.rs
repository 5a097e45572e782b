//! THROWAWAY stand-in WHIP/WHEP server (webrtc-rs answerer + naive forwarder) to exercise the
//! harness before the real SFU exists. NOT TO BE COMMITTED.
#![allow(clippy::unwrap_used, missing_debug_implementations)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::broadcast;
use webrtc::peer_connection::RTCPeerConnection;
use webrtc::peer_connection::sdp::session_description::RTCSessionDescription;
use webrtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use webrtc::rtp::packet::Packet;
use webrtc::rtp_transceiver::rtp_codec::{RTCRtpCodecCapability, RTPCodecType};
use webrtc::track::track_local::TrackLocalWriter;
use webrtc::track::track_local::track_local_static_rtp::TrackLocalStaticRTP;

#[derive(Clone)]
struct Pkt {
    video: bool,
    rid: String,
    pkt: Packet,
}

#[derive(Default)]
struct State {
    rooms: HashMap<String, Vec<(String, broadcast::Sender<Pkt>)>>,
    pcs: HashMap<String, Arc<RTCPeerConnection>>,
    layers: HashMap<String, Arc<Mutex<String>>>,
    next: u64,
}

pub struct StandIn {
    pub base: String,
}

type S = Arc<Mutex<State>>;

pub async fn start() -> StandIn {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr: SocketAddr = l.local_addr().unwrap();
    let st: S = Arc::default();
    tokio::spawn(async move {
        loop {
            let (mut sock, _) = l.accept().await.unwrap();
            let st = st.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut tmp = [0u8; 4096];
                let (head, mut body) = loop {
                    let n = sock.read(&mut tmp).await.unwrap();
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&tmp[..n]);
                    if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        break (
                            String::from_utf8_lossy(&buf[..i]).to_string(),
                            buf[i + 4..].to_vec(),
                        );
                    }
                };
                let len: usize = head
                    .lines()
                    .find_map(|l| {
                        l.to_ascii_lowercase()
                            .strip_prefix("content-length:")
                            .map(|v| v.trim().parse().unwrap())
                    })
                    .unwrap_or(0);
                while body.len() < len {
                    let n = sock.read(&mut tmp).await.unwrap();
                    body.extend_from_slice(&tmp[..n]);
                }
                let mut parts = head.split(' ');
                let method = parts.next().unwrap().to_owned();
                let path = parts.next().unwrap().split('?').next().unwrap().to_owned();
                let (status, ctype, loc, out) = handle(
                    &st,
                    &method,
                    &path,
                    String::from_utf8_lossy(&body).to_string(),
                )
                .await;
                let mut resp = format!(
                    "HTTP/1.1 {status} X\r\nContent-Length: {}\r\nContent-Type: {ctype}\r\nConnection: close\r\n",
                    out.len()
                );
                if let Some(l) = loc {
                    resp.push_str(&format!("Location: {l}\r\n"));
                }
                resp.push_str("\r\n");
                let _ = sock.write_all(resp.as_bytes()).await;
                let _ = sock.write_all(&out).await;
            });
        }
    });
    StandIn {
        base: format!("http://{addr}"),
    }
}

async fn answer(pc: &RTCPeerConnection, offer: String) -> String {
    pc.set_remote_description(RTCSessionDescription::offer(offer).unwrap())
        .await
        .unwrap();
    let a = pc.create_answer(None).await.unwrap();
    let mut g = pc.gathering_complete_promise().await;
    pc.set_local_description(a).await.unwrap();
    let _ = g.recv().await;
    pc.local_description().await.unwrap().sdp
}

async fn handle(
    st: &S,
    method: &str,
    path: &str,
    body: String,
) -> (u16, &'static str, Option<String>, Vec<u8>) {
    let seg: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match (method, seg.as_slice()) {
        ("GET", ["assets", "test", file]) => {
            let p = format!(
                "{}/../dashboard/assets/test/{file}",
                env!("CARGO_MANIFEST_DIR")
            );
            (
                200,
                "text/html; charset=utf-8",
                None,
                std::fs::read(p).unwrap(),
            )
        }
        ("GET", ["api", "v1", "rooms", room]) => {
            let s = st.lock().unwrap();
            let ids: Vec<_> = s
                .rooms
                .get(*room)
                .map(|v| {
                    v.iter()
                        .map(|(id, _)| serde_json::json!({"id": id}))
                        .collect()
                })
                .unwrap_or_default();
            (
                200,
                "application/json",
                None,
                serde_json::json!({"publishers": ids})
                    .to_string()
                    .into_bytes(),
            )
        }
        ("POST", ["whip", room]) => {
            let (pc, _) = testkit::rtc_client::loopback_peer().await.unwrap();
            let (tx, _) = broadcast::channel::<Pkt>(4096);
            let tx2 = tx.clone();
            let pcw = Arc::downgrade(&pc);
            pc.on_track(Box::new(move |track, _, _| {
                let tx = tx2.clone();
                let pcw = pcw.clone();
                tokio::spawn(async move {
                    let video = track.kind() == RTPCodecType::Video;
                    let rid = track.rid().to_owned();
                    eprintln!(
                        "standin: whip track {:?} rid={rid} ssrc={}",
                        track.kind(),
                        track.ssrc()
                    );
                    if video {
                        let ssrc = track.ssrc();
                        let pcw = pcw.clone();
                        tokio::spawn(async move {
                            loop {
                                tokio::time::sleep(Duration::from_millis(1000)).await;
                                let Some(pc) = pcw.upgrade() else { return };
                                let _ = pc
                                    .write_rtcp(&[Box::new(PictureLossIndication {
                                        sender_ssrc: 0,
                                        media_ssrc: ssrc,
                                    })])
                                    .await;
                            }
                        });
                    }
                    while let Ok((pkt, _)) = track.read_rtp().await {
                        let _ = tx.send(Pkt {
                            video,
                            rid: rid.clone(),
                            pkt,
                        });
                    }
                });
                Box::pin(async {})
            }));
            let ans = answer(&pc, body).await;
            let mut s = st.lock().unwrap();
            s.next += 1;
            let id = format!("p{}", s.next);
            s.rooms
                .entry(room.to_string())
                .or_default()
                .push((id.clone(), tx));
            s.pcs.insert(id.clone(), pc);
            (
                201,
                "application/sdp",
                Some(format!("/whip/{room}/sessions/{id}")),
                ans.into_bytes(),
            )
        }
        ("POST", ["whep", room, rest @ ..]) if rest.len() <= 1 => {
            let tx = {
                let s = st.lock().unwrap();
                let pubs = s.rooms.get(*room).cloned().unwrap_or_default();
                match rest.first() {
                    Some(p) => pubs.into_iter().find(|(id, _)| id == p).map(|x| x.1),
                    None => pubs.last().map(|x| x.1.clone()),
                }
            };
            let Some(tx) = tx else {
                return (
                    404,
                    "application/json",
                    None,
                    b"{\"error\":\"not_found\"}".to_vec(),
                );
            };
            let (pc, _) = testkit::rtc_client::loopback_peer().await.unwrap();
            let cap = |m: &str, c, ch| RTCRtpCodecCapability {
                mime_type: m.into(),
                clock_rate: c,
                channels: ch,
                ..Default::default()
            };
            let v = Arc::new(TrackLocalStaticRTP::new(
                cap("video/VP8", 90000, 0),
                "v".into(),
                "s".into(),
            ));
            let a = Arc::new(TrackLocalStaticRTP::new(
                cap("audio/opus", 48000, 2),
                "a".into(),
                "s".into(),
            ));
            pc.add_track(a.clone()).await.unwrap();
            pc.add_track(v.clone()).await.unwrap();
            let ans = answer(&pc, body).await;
            let layer = Arc::new(Mutex::new("f".to_string()));
            let l2 = layer.clone();
            let mut rx = tx.subscribe();
            tokio::spawn(async move {
                let (mut cur, mut seq, mut ts_off, mut last_ts) = (String::new(), 0u16, 0u32, 0u32);
                let mut switching = true;
                loop {
                    let p = match rx.recv().await {
                        Ok(p) => p,
                        Err(broadcast::error::RecvError::Lagged(_)) => continue,
                        Err(_) => return,
                    };
                    let mut pkt = p.pkt;
                    pkt.header.extension = false;
                    pkt.header.extensions.clear();
                    if !p.video {
                        if a.write_rtp(&pkt).await.is_err() {}
                        continue;
                    }
                    let want = l2.lock().unwrap().clone();
                    let want = if p.rid.is_empty() {
                        String::new()
                    } else {
                        want
                    };
                    if want != cur {
                        switching = true;
                    }
                    if switching {
                        let info = testkit::synth::parse_vp8(&pkt.payload);
                        if p.rid != want || !info.is_some_and(|i| i.keyframe) {
                            continue;
                        }
                        cur = want.clone();
                        switching = false;
                        ts_off = last_ts
                            .wrapping_add(3000)
                            .wrapping_sub(pkt.header.timestamp);
                    }
                    if p.rid != cur {
                        continue;
                    }
                    seq = seq.wrapping_add(1);
                    pkt.header.sequence_number = seq;
                    pkt.header.timestamp = pkt.header.timestamp.wrapping_add(ts_off);
                    last_ts = pkt.header.timestamp;
                    let _ = v.write_rtp(&pkt).await;
                }
            });
            let mut s = st.lock().unwrap();
            s.next += 1;
            let id = format!("v{}", s.next);
            s.pcs.insert(id.clone(), pc);
            s.layers.insert(id.clone(), layer);
            (
                201,
                "application/sdp",
                Some(format!("/whep/{room}/sessions/{id}")),
                ans.into_bytes(),
            )
        }
        ("POST", [_, _, "sessions", id, "layer"]) => {
            let v: serde_json::Value = serde_json::from_str(&body).unwrap();
            let rid = v["rid"].as_str().unwrap().to_owned();
            let rid = if rid == "auto" { "f".into() } else { rid };
            let l = st.lock().unwrap().layers.get(*id).cloned();
            match l {
                Some(l) => {
                    *l.lock().unwrap() = rid;
                    (204, "text/plain", None, Vec::new())
                }
                None => (404, "text/plain", None, Vec::new()),
            }
        }
        ("DELETE", [_, _, "sessions", id]) => {
            let pc = st.lock().unwrap().pcs.remove(*id);
            if let Some(pc) = pc {
                let _ = pc.close().await;
            }
            (200, "text/plain", None, Vec::new())
        }
        _ => (404, "text/plain", None, Vec::new()),
    }
}

use testkit::browser::Browser;
use testkit::lossy_relay::{LossyRelay, RelayConfig};
use testkit::rtc_client::{ClientOptions, PublishOptions, WhepViewer, WhipPublisher};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rs_publisher_to_rs_viewer() {
    testkit::isolated!();
    let hub = start().await;
    let opts = ClientOptions::with_token("tok");
    let publisher = WhipPublisher::connect(&hub.base, "r1", &opts, PublishOptions::simulcast())
        .await
        .unwrap();
    eprintln!(
        "publisher {} id {}",
        publisher.location(),
        publisher.session_id()
    );
    let signal = testkit::whip::WhipClient::new(&hub.base, Some("tok")).unwrap();
    assert_eq!(
        signal.publisher_ids("r1").await.unwrap(),
        [publisher.session_id().to_owned()]
    );
    let viewer = WhepViewer::connect(&hub.base, "r1", None, &opts)
        .await
        .unwrap();
    let s = viewer
        .wait_for("video f", Duration::from_secs(10), |s| {
            s.video.last_keyframe_size == Some((1280, 720)) && s.audio.packets > 20
        })
        .await
        .unwrap();
    eprintln!("f: {s:?}");
    viewer.set_layer("q").await.unwrap();
    let s = viewer
        .wait_for("video q", Duration::from_secs(10), |s| {
            s.video.last_keyframe_size == Some((320, 180))
        })
        .await
        .unwrap();
    eprintln!("q: {s:?}\npub {:?}", publisher.stats());
    assert_eq!(s.video.ssrcs.len(), 1);
    viewer.close().await.unwrap();

    // Through the relay: 10% loss + 40 ms toward the viewer (manual establish to learn the port).
    let (pc, mut state) = testkit::rtc_client::loopback_peer().await.unwrap();
    let counter = testkit::rtc_client::MediaCounter::add_to(&pc, true)
        .await
        .unwrap();
    let offer = testkit::rtc_client::complete_offer(&pc).await.unwrap();
    let sess = signal.offer("/whep/r1", &offer).await.unwrap();
    let server: SocketAddr = {
        let f: Vec<&str> = sess
            .answer
            .lines()
            .find(|l| l.starts_with("a=candidate:"))
            .unwrap()
            .split(' ')
            .collect();
        format!("{}:{}", f[4], f[5]).parse().unwrap()
    };
    let cfg = RelayConfig {
        direction: testkit::lossy_relay::Direction::ToClient,
        ..RelayConfig::default()
    };
    let relay = LossyRelay::start(server, cfg).await.unwrap();
    let ans = testkit::lossy_relay::rewrite_candidates(&sess.answer, relay.local_addr());
    pc.set_remote_description(RTCSessionDescription::answer(ans).unwrap())
        .await
        .unwrap();
    testkit::rtc_client::wait_connected(&mut state, Duration::from_secs(15))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(6)).await;
    eprintln!(
        "lossy viewer: {:?}\nrelay {:?}\npub {:?}",
        counter.stats(),
        relay.stats(),
        publisher.stats()
    );
    signal.delete(&sess.location).await.unwrap();
    publisher.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_publish_and_view_pages() {
    testkit::isolated!();
    let hub = start().await;
    let publisher = Browser::launch().await.unwrap();
    publisher
        .goto(&format!(
            "{}/assets/test/publish.html?room=r1&token=t&simulcast=1",
            hub.base
        ))
        .await
        .unwrap();
    publisher
        .wait_for(
            "hubcastState().connection === 'connected'",
            Duration::from_secs(15),
        )
        .await
        .unwrap_or_else(|e| panic!("{e} {:?}", futures_state(&publisher)));
    let mut viewers = Vec::new();
    for _ in 0..2 {
        let v = Browser::launch().await.unwrap();
        v.goto(&format!(
            "{}/assets/test/view.html?room=r1&token=t",
            hub.base
        ))
        .await
        .unwrap();
        v.wait_for(
            "hubcastState().connection === 'connected'",
            Duration::from_secs(15),
        )
        .await
        .unwrap();
        viewers.push(v);
    }
    tokio::time::sleep(Duration::from_secs(4)).await;
    let ps = publisher.eval("hubcastStats()").await.unwrap();
    eprintln!("publisher stats {ps}");
    for v in &viewers {
        let s = v.wait_for("hubcastStats().then(s => s.framesDecoded > 20 && s.audio.totalSamplesReceived > 0 && s)", Duration::from_secs(15)).await.unwrap();
        eprintln!("viewer {s}");
    }
    let v = &viewers[0];
    v.eval("hubcastSetLayer('q')").await.unwrap();
    let s = v
        .wait_for(
            "hubcastStats().then(s => s.frameWidth > 0 && s.frameWidth <= 320 && s)",
            Duration::from_secs(15),
        )
        .await
        .unwrap();
    eprintln!("after q {s}");
    v.eval("hubcastSetLayer('f')").await.unwrap();
    let s = v
        .wait_for(
            "hubcastStats().then(s => s.frameWidth >= 1280 && s)",
            Duration::from_secs(15),
        )
        .await;
    eprintln!("after f {s:?}");
    v.save_screenshot("/tmp/view.png").await.unwrap();
    publisher.save_screenshot("/tmp/publish.png").await.unwrap();

    // lossy: a webrtc-rs viewer and a chromium viewer through relays toward the client
    let port: u16 = 0;
    let _ = port;
    let st = publisher.eval("hubcastState()").await.unwrap();
    eprintln!("pub state {st}");
    let relay_v = v.eval("hubcastStats()").await.unwrap();
    eprintln!("{relay_v}");
    publisher.eval("hubcastStop()").await.unwrap();
    let _ = (RelayConfig::default(), LossyRelay::start);
}

fn futures_state(_b: &Browser) -> &'static str {
    "see driver log"
}
