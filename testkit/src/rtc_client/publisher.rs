//! [`WhipPublisher`]: a webrtc-rs WHIP publisher of synthetic VP8 (simulcast q/h/f) and Opus.
//!
//! Video is sent through `TrackLocalStaticRTP` (one track per rid, added as encodings of one
//! sender, so the offer carries `a=rid:… send` and `a=simulcast:send q;h;f`). Each layer emits a
//! keyframe at start, every `keyframe_interval`, and promptly after a PLI/FIR for that layer.
//! Audio is Opus silence every 20 ms carrying the RFC 6464 audio level set by
//! [`WhipPublisher::set_audio_level`] (0 = loudest … 127 = silence), for speaker detection.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::time::Duration;

use tokio::task::JoinSet;
use webrtc::peer_connection::RTCPeerConnection;
use webrtc::peer_connection::peer_connection_state::RTCPeerConnectionState;
use webrtc::rtcp::payload_feedbacks::full_intra_request::FullIntraRequest;
use webrtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use webrtc::rtcp::transport_feedbacks::transport_layer_nack::TransportLayerNack;
use webrtc::rtp::extension::HeaderExtension;
use webrtc::rtp::extension::audio_level_extension::AudioLevelExtension;
use webrtc::rtp_transceiver::rtp_codec::RTCRtpCodecCapability;
use webrtc::rtp_transceiver::rtp_sender::RTCRtpSender;
use webrtc::track::track_local::TrackLocalWriter;
use webrtc::track::track_local::track_local_static_rtp::TrackLocalStaticRTP;

use super::{ClientOptions, Session, loopback_peer_with};
use crate::Result;
use crate::synth::{OpusSource, Vp8Source};

/// One simulcast layer of the synthetic video.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layer {
    /// RTP stream id (`q`, `h`, `f`).
    pub rid: String,
    /// Width written into keyframes.
    pub width: u16,
    /// Height written into keyframes.
    pub height: u16,
    /// Target payload bitrate.
    pub kbps: u32,
}

impl Layer {
    /// A layer `rid` of `width`×`height` at about `kbps` kbit/s.
    pub fn new(rid: &str, width: u16, height: u16, kbps: u32) -> Self {
        Self {
            rid: rid.to_owned(),
            width,
            height,
            kbps,
        }
    }
}

/// What to publish.
#[derive(Debug, Clone)]
pub struct PublishOptions {
    /// Video layers; more than one means simulcast (each needs a rid).
    pub layers: Vec<Layer>,
    /// Send Opus audio.
    pub audio: bool,
    /// Video frame rate.
    pub fps: u32,
    /// Periodic keyframes (PLI/FIR trigger extra ones).
    pub keyframe_interval: Duration,
    /// Initial RFC 6464 level (−dBov, 0 = loudest, 127 = silence).
    pub audio_level: u8,
}

impl PublishOptions {
    /// Simulcast like the browser page: q/h/f = 320x180 / 640x360 / 1280x720.
    pub fn simulcast() -> Self {
        Self {
            layers: vec![
                Layer::new("q", 320, 180, 150),
                Layer::new("h", 640, 360, 500),
                Layer::new("f", 1280, 720, 1500),
            ],
            ..Self::default()
        }
    }

    /// Audio only (speaker-detection tests).
    pub fn audio_only(level: u8) -> Self {
        Self {
            layers: Vec::new(),
            audio_level: level,
            ..Self::default()
        }
    }
}

impl Default for PublishOptions {
    /// One 640x360 VP8 stream at 30 fps, 500 kbit/s, keyframe every 2 s, plus audio at −30 dBov.
    fn default() -> Self {
        Self {
            layers: vec![Layer::new("", 640, 360, 500)],
            audio: true,
            fps: 30,
            keyframe_interval: Duration::from_secs(2),
            audio_level: 30,
        }
    }
}

/// Counters of a publisher.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PublisherStats {
    /// RTP packets written, all video layers.
    pub video_packets: u64,
    /// RTP packets written, audio.
    pub audio_packets: u64,
    /// Keyframes sent, all layers.
    pub keyframes: u64,
    /// PLI + FIR received, all layers.
    pub keyframe_requests: u64,
    /// Generic NACK packets received.
    pub nacks: u64,
}

#[derive(Debug, Default)]
struct Counters {
    video: AtomicU64,
    audio: AtomicU64,
    keyframes: AtomicU64,
    requests: AtomicU64,
    nacks: AtomicU64,
}

/// Synthetic tracks added to a peer connection, not sending yet.
#[derive(Debug)]
pub struct SyntheticMedia {
    opts: PublishOptions,
    video: Vec<(Layer, Arc<TrackLocalStaticRTP>)>,
    video_sender: Option<Arc<RTCRtpSender>>,
    audio: Option<(Arc<TrackLocalStaticRTP>, Arc<RTCRtpSender>)>,
}

impl SyntheticMedia {
    /// Adds the video track (one encoding per layer) and the audio track to `pc`; call before
    /// creating the offer.
    pub async fn add_to(pc: &RTCPeerConnection, opts: PublishOptions) -> Result<Self> {
        let stream_id = format!("hubcast-testkit-{}", rand::random::<u32>());
        let simulcast = opts.layers.len() > 1;
        let mut video = Vec::new();
        let mut video_sender: Option<Arc<RTCRtpSender>> = None;
        for layer in &opts.layers {
            let cap = codec("video/VP8", 90_000, 0);
            let track = Arc::new(if simulcast {
                TrackLocalStaticRTP::new_with_rid(
                    cap,
                    "video".into(),
                    layer.rid.clone(),
                    stream_id.clone(),
                )
            } else {
                TrackLocalStaticRTP::new(cap, "video".into(), stream_id.clone())
            });
            match &video_sender {
                None => video_sender = Some(pc.add_track(track.clone()).await?),
                Some(s) => s.add_encoding(track.clone()).await?,
            }
            video.push((layer.clone(), track));
        }
        let audio = if opts.audio {
            let cap = codec("audio/opus", 48_000, 2);
            let track = Arc::new(TrackLocalStaticRTP::new(cap, "audio".into(), stream_id));
            Some((track.clone(), pc.add_track(track).await?))
        } else {
            None
        };
        Ok(Self {
            opts,
            video,
            video_sender,
            audio,
        })
    }

    /// Starts the send loops (call once the peer connection is connected).
    pub fn start(self) -> SendingMedia {
        let counters = Arc::new(Counters::default());
        let level = Arc::new(AtomicU8::new(self.opts.audio_level.min(127)));
        let mut tasks = JoinSet::new();
        let simulcast = self.video.len() > 1;
        let every = Duration::from_secs(1) / self.opts.fps.max(1);
        for (layer, track) in self.video {
            let want_key = Arc::new(AtomicBool::new(true));
            if let Some(sender) = &self.video_sender {
                let rid = simulcast.then(|| layer.rid.clone());
                tasks.spawn(read_feedback(
                    sender.clone(),
                    rid,
                    want_key.clone(),
                    counters.clone(),
                ));
            }
            let src = Vp8Source::new(layer.width, layer.height, self.opts.fps, layer.kbps);
            let key_every = self.opts.keyframe_interval;
            tasks.spawn(send_video(
                track,
                src,
                every,
                key_every,
                want_key,
                counters.clone(),
            ));
        }
        if let Some((track, sender)) = self.audio {
            let never = Arc::new(AtomicBool::new(false));
            tasks.spawn(read_feedback(sender, None, never, counters.clone()));
            tasks.spawn(send_audio(track, level.clone(), counters.clone()));
        }
        SendingMedia {
            level,
            counters,
            _tasks: tasks,
        }
    }
}

/// Running send loops; they stop when this is dropped.
#[derive(Debug)]
pub struct SendingMedia {
    level: Arc<AtomicU8>,
    counters: Arc<Counters>,
    _tasks: JoinSet<()>,
}

impl SendingMedia {
    /// Sets the RFC 6464 level of the following audio packets (0 = loudest, 127 = silence).
    pub fn set_audio_level(&self, level: u8) {
        self.level.store(level.min(127), Ordering::Relaxed);
    }

    /// Counters so far.
    pub fn stats(&self) -> PublisherStats {
        let c = &self.counters;
        PublisherStats {
            video_packets: c.video.load(Ordering::Relaxed),
            audio_packets: c.audio.load(Ordering::Relaxed),
            keyframes: c.keyframes.load(Ordering::Relaxed),
            keyframe_requests: c.requests.load(Ordering::Relaxed),
            nacks: c.nacks.load(Ordering::Relaxed),
        }
    }
}

/// A connected WHIP publisher; media flows until [`WhipPublisher::close`] or drop.
#[derive(Debug)]
pub struct WhipPublisher {
    session: Session,
    media: SendingMedia,
}

impl WhipPublisher {
    /// Publishes to `POST {base_url}/whip/{room}` and starts sending once connected.
    pub async fn connect(
        base_url: &str,
        room: &str,
        client: &ClientOptions,
        opts: PublishOptions,
    ) -> Result<Self> {
        let (pc, state) = loopback_peer_with(None, client.ipv6).await?;
        let media = SyntheticMedia::add_to(&pc, opts).await?;
        let path = format!("/whip/{room}");
        let session = Session::establish(pc, state, base_url, &path, client).await?;
        Ok(Self {
            session,
            media: media.start(),
        })
    }

    /// Absolute URL of the WHIP session resource.
    pub fn location(&self) -> &str {
        &self.session.whip.location
    }

    /// The session id (last segment of the `Location`), as used by `/whep/{room}/{id}`.
    pub fn session_id(&self) -> &str {
        crate::whip::session_id(&self.session.whip.location)
    }

    /// The SDP answer the hub returned.
    pub fn answer(&self) -> &str {
        &self.session.whip.answer
    }

    /// Current peer connection state.
    pub fn state(&self) -> RTCPeerConnectionState {
        self.session.state()
    }

    /// The running media (audio level, counters).
    pub fn media(&self) -> &SendingMedia {
        &self.media
    }

    /// Sets the RFC 6464 level of the following audio packets (0 = loudest, 127 = silence).
    pub fn set_audio_level(&self, level: u8) {
        self.media.set_audio_level(level);
    }

    /// Counters so far.
    pub fn stats(&self) -> PublisherStats {
        self.media.stats()
    }

    /// Stops sending, `DELETE`s the session and closes the peer connection.
    pub async fn close(self) -> Result<()> {
        drop(self.media);
        self.session.close().await
    }
}

fn codec(mime: &str, clock_rate: u32, channels: u16) -> RTCRtpCodecCapability {
    RTCRtpCodecCapability {
        mime_type: mime.to_owned(),
        clock_rate,
        channels,
        ..Default::default()
    }
}

/// Reads RTCP (needed for the NACK responder interceptor to work) and flags keyframe requests.
async fn read_feedback(
    sender: Arc<RTCRtpSender>,
    rid: Option<String>,
    want_key: Arc<AtomicBool>,
    counters: Arc<Counters>,
) {
    loop {
        let read = match &rid {
            Some(rid) => sender.read_rtcp_simulcast(rid).await,
            None => sender.read_rtcp().await,
        };
        let Ok((pkts, _)) = read else { return };
        for p in pkts {
            let any = p.as_any();
            if any.is::<PictureLossIndication>() || any.is::<FullIntraRequest>() {
                want_key.store(true, Ordering::Relaxed);
                counters.requests.fetch_add(1, Ordering::Relaxed);
            } else if any.is::<TransportLayerNack>() {
                counters.nacks.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

async fn send_video(
    track: Arc<TrackLocalStaticRTP>,
    mut src: Vp8Source,
    every: Duration,
    keyframe_interval: Duration,
    want_key: Arc<AtomicBool>,
    counters: Arc<Counters>,
) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut last_key = tokio::time::Instant::now();
    loop {
        tick.tick().await;
        let key =
            want_key.swap(false, Ordering::Relaxed) || last_key.elapsed() >= keyframe_interval;
        if key {
            last_key = tokio::time::Instant::now();
            counters.keyframes.fetch_add(1, Ordering::Relaxed);
        }
        for pkt in src.next_frame(key) {
            if track.write_rtp(&pkt).await.is_ok() {
                counters.video.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

async fn send_audio(
    track: Arc<TrackLocalStaticRTP>,
    level: Arc<AtomicU8>,
    counters: Arc<Counters>,
) {
    let mut src = OpusSource::default();
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tick.tick().await;
        let level = level.load(Ordering::Relaxed);
        let ext = HeaderExtension::AudioLevel(AudioLevelExtension {
            level,
            voice: level < 127,
        });
        if track
            .write_rtp_with_extensions(&src.next_packet(), &[ext])
            .await
            .is_ok()
        {
            counters.audio.fetch_add(1, Ordering::Relaxed);
        }
    }
}
