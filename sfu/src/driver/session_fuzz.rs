//! Property tests of the SDP entry points, in process and at volume: a browser-shaped WHIP
//! offer (audio, and video with three simulcast encodings) mutated line by line and byte by
//! byte into `session::accept`, for both session kinds, and arbitrary trickle-ICE fragments
//! into `parse_frag`. Every input ends in an answer or an `SfuError`, never a panic; the
//! offers that still get an answer are a fair share, so the mutations reach str0m's parser
//! and negotiation rather than dying in the first check.

use std::time::Instant;

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use str0m::IceCreds;

use super::*;
use crate::driver::api::PlaySource;

/// A publish offer shaped like Chromium's: BUNDLE, ICE and DTLS attributes, header
/// extensions, Opus, VP8/VP9/H.264 with RTX, and simulcast `q;h;f`.
const OFFER: &str = "v=0\r
o=- 4611731400430051336 2 IN IP4 127.0.0.1\r
s=-\r
t=0 0\r
a=group:BUNDLE 0 1\r
a=extmap-allow-mixed\r
a=msid-semantic: WMS stream\r
m=audio 9 UDP/TLS/RTP/SAVPF 111 63\r
c=IN IP4 0.0.0.0\r
a=rtcp:9 IN IP4 0.0.0.0\r
a=ice-ufrag:Fz8u\r
a=ice-pwd:J3kQvPzqM0nH4sQ9Lr7tYw2a\r
a=ice-options:trickle\r
a=fingerprint:sha-256 4F:1D:7B:2E:83:5A:90:C1:6D:0E:AA:34:51:F7:9B:22:C8:3E:10:66:7F:DB:45:09:8E:B2:3C:71:E4:58:A1:0F\r
a=setup:actpass\r
a=mid:0\r
a=extmap:1 urn:ietf:params:rtp-hdrext:ssrc-audio-level\r
a=extmap:2 http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time\r
a=extmap:3 http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01\r
a=extmap:4 urn:ietf:params:rtp-hdrext:sdes:mid\r
a=sendonly\r
a=msid:stream audio0\r
a=rtcp-mux\r
a=rtpmap:111 opus/48000/2\r
a=rtcp-fb:111 transport-cc\r
a=fmtp:111 minptime=10;useinbandfec=1\r
a=rtpmap:63 red/48000/2\r
a=fmtp:63 111/111\r
a=ssrc:1111111111 cname:hubcastfuzz\r
m=video 9 UDP/TLS/RTP/SAVPF 96 97 98 99 102 103\r
c=IN IP4 0.0.0.0\r
a=rtcp:9 IN IP4 0.0.0.0\r
a=ice-ufrag:Fz8u\r
a=ice-pwd:J3kQvPzqM0nH4sQ9Lr7tYw2a\r
a=ice-options:trickle\r
a=fingerprint:sha-256 4F:1D:7B:2E:83:5A:90:C1:6D:0E:AA:34:51:F7:9B:22:C8:3E:10:66:7F:DB:45:09:8E:B2:3C:71:E4:58:A1:0F\r
a=setup:actpass\r
a=mid:1\r
a=extmap:3 http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01\r
a=extmap:4 urn:ietf:params:rtp-hdrext:sdes:mid\r
a=extmap:10 urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id\r
a=extmap:11 urn:ietf:params:rtp-hdrext:sdes:repaired-rtp-stream-id\r
a=sendonly\r
a=msid:stream video0\r
a=rtcp-mux\r
a=rtcp-rsize\r
a=rtpmap:96 VP8/90000\r
a=rtcp-fb:96 goog-remb\r
a=rtcp-fb:96 transport-cc\r
a=rtcp-fb:96 ccm fir\r
a=rtcp-fb:96 nack\r
a=rtcp-fb:96 nack pli\r
a=rtpmap:97 rtx/90000\r
a=fmtp:97 apt=96\r
a=rtpmap:98 VP9/90000\r
a=rtcp-fb:98 nack\r
a=rtcp-fb:98 nack pli\r
a=fmtp:98 profile-id=0\r
a=rtpmap:99 rtx/90000\r
a=fmtp:99 apt=98\r
a=rtpmap:102 H264/90000\r
a=rtcp-fb:102 nack\r
a=rtcp-fb:102 nack pli\r
a=fmtp:102 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f\r
a=rtpmap:103 rtx/90000\r
a=fmtp:103 apt=102\r
a=rid:q send\r
a=rid:h send\r
a=rid:f send\r
a=simulcast:send q;h;f\r
";

fn creds() -> IceCreds {
    IceCreds {
        ufrag: "hcfuzz".to_owned(),
        pass: "hcfuzzpasswordhcfuzzpassword".to_owned(),
    }
}

fn try_accept(kind: &SessionKind, offer: &str) -> Result<String, SfuError> {
    let config = SfuConfig::default();
    let udp = "127.0.0.1:7882".parse().expect("addr");
    accept(&config, kind, offer, creds(), udp, None, Instant::now()).map(|(_, answer)| answer)
}

/// One way to damage an offer.
#[derive(Debug, Clone)]
enum Mutation {
    /// Drop line `i` (modulo the line count).
    Remove(usize),
    /// Repeat line `i`.
    Duplicate(usize),
    /// Replace line `i`'s value (after the first `:` or `=`) with arbitrary text.
    Value(usize, String),
    /// Insert an arbitrary line before line `i`.
    Insert(usize, String),
    /// Cut the offer at byte `i` (on a character boundary).
    Truncate(usize),
    /// Overwrite byte `i` with `b`.
    Byte(usize, u8),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let text = prop_oneof![
        "[ -~]{0,40}",
        "[0-9]{1,12}",
        Just(String::new()),
        Just("-1".to_owned()),
        Just("4294967296".to_owned()),
        Just("中文".to_owned()),
    ];
    let line = prop_oneof![
        "[a-z]=[ -~]{0,60}",
        "a=(rid|simulcast|rtpmap|fmtp|extmap|ssrc|ssrc-group|mid|msid|setup|fingerprint|candidate):[ -~]{0,60}",
        "m=(audio|video|application) [0-9]{1,5} [A-Z/]{3,20}( [0-9]{1,3}){0,6}",
    ];
    prop_oneof![
        any::<usize>().prop_map(Mutation::Remove),
        any::<usize>().prop_map(Mutation::Duplicate),
        (any::<usize>(), text).prop_map(|(i, t)| Mutation::Value(i, t)),
        (any::<usize>(), line).prop_map(|(i, l)| Mutation::Insert(i, l)),
        any::<usize>().prop_map(Mutation::Truncate),
        (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Mutation::Byte(i, b)),
    ]
}

fn apply(offer: &str, mutations: &[Mutation]) -> String {
    let mut lines: Vec<String> = offer.split("\r\n").map(str::to_owned).collect();
    let mut tail: Option<usize> = None;
    let mut bytes: Vec<(usize, u8)> = Vec::new();
    for m in mutations {
        let n = lines.len().max(1);
        match m {
            Mutation::Remove(i) if !lines.is_empty() => {
                lines.remove(i % n);
            }
            Mutation::Duplicate(i) if !lines.is_empty() => {
                let line = lines[i % n].clone();
                lines.insert(i % n, line);
            }
            Mutation::Value(i, value) if !lines.is_empty() => {
                let line = &mut lines[i % n];
                let cut = line.find([':', '=']).map_or(0, |c| c + 1);
                line.truncate(cut);
                line.push_str(value);
            }
            Mutation::Insert(i, new) => lines.insert(i % (lines.len() + 1), new.clone()),
            Mutation::Truncate(i) => tail = Some(*i),
            Mutation::Byte(i, b) => bytes.push((*i, *b)),
            _ => {}
        }
    }
    let mut out = lines.join("\r\n").into_bytes();
    for (i, b) in bytes {
        if !out.is_empty() {
            let at = i % out.len();
            out[at] = b;
        }
    }
    if let Some(i) = tail
        && !out.is_empty()
    {
        out.truncate(i % out.len());
    }
    // The HTTP layer only passes UTF-8 on (a body that is not is 400 before it gets here).
    String::from_utf8_lossy(&out).into_owned()
}

#[test]
fn the_fixture_is_a_valid_offer() {
    let answer = try_accept(&SessionKind::Publish, OFFER).expect("accepted");
    assert!(answer.contains("a=simulcast:recv q;h;f"), "{answer}");
    let play = SessionKind::Play(PlaySource::Floor);
    assert!(matches!(
        try_accept(&play, OFFER),
        Err(SfuError::BadOffer(_))
    ));
}

#[test]
fn mutated_offers_never_panic() {
    let kinds = [SessionKind::Publish, SessionKind::Play(PlaySource::Floor)];
    let mut runner = TestRunner::new(Config {
        cases: 3000,
        failure_persistence: None,
        ..Config::default()
    });
    let accepted = std::cell::Cell::new(0u32);
    let strategy = (proptest::collection::vec(mutation(), 1..4), any::<bool>());
    // A play offer is the publish offer turned around: the same damage reaches the viewer's
    // negotiation. Both built once, not per case.
    let bases = [
        OFFER.to_owned(),
        OFFER
            .replace("a=sendonly", "a=recvonly")
            .replace(" send\r", " recv\r"),
    ];
    runner
        .run(&strategy, |(mutations, play)| {
            let offer = apply(&bases[usize::from(play)], &mutations);
            if try_accept(&kinds[usize::from(play)], &offer).is_ok() {
                accepted.set(accepted.get() + 1);
            }
            Ok(())
        })
        .expect("no panic");
    // Most mutations leave an acceptable offer (an unknown attribute, a duplicated extmap):
    // the damage reached the parser and negotiation, not just the first check.
    println!("{} of 3000 mutated offers accepted", accepted.get());
    assert!(accepted.get() > 300, "{} of 3000 accepted", accepted.get());
}

#[test]
fn arbitrary_fragments_never_panic() {
    let mut runner = TestRunner::new(Config {
        cases: 3000,
        failure_persistence: None,
        ..Config::default()
    });
    let line = prop_oneof![
        "a=ice-ufrag:[ -~]{0,300}",
        "a=ice-pwd:[ -~]{0,300}",
        "a=candidate:[0-9]{1,10} [0-9] (udp|tcp|UDP) [0-9]{1,10} [0-9.:a-f]{0,40} [0-9]{1,6} typ (host|srflx|relay|prflx)[ -~]{0,40}",
        "a=candidate:[ -~]{0,80}",
        "a=end-of-candidates",
        "[ -~]{0,80}",
    ];
    let frag = proptest::collection::vec(line, 0..12).prop_map(|l| l.join("\r\n"));
    let parsed = std::cell::Cell::new(0u32);
    runner
        .run(&frag, |frag| {
            if parse_frag(&frag).is_ok() {
                parsed.set(parsed.get() + 1);
            }
            Ok(())
        })
        .expect("no panic");
    println!("{} of 3000 fragments parsed", parsed.get());
    assert!(parsed.get() > 100, "{} of 3000 parsed", parsed.get());
}
