//! webrtc-rs (`webrtc` crate) clients of the SFU: an independent WebRTC stack for interop tests
//! and load generation.
//!
//! Every peer is built by [`loopback_api`]: default codecs plus VP8 RTX; NACK, RTCP reports and
//! TWCC interceptors; the mid/rid/repaired-rid and RFC 6464 audio-level header extensions; ICE on
//! UDP4 host candidates of `lo` (127.0.0.1) only, no mDNS, and no ICE servers — so nothing is
//! sent beyond loopback. Offers are complete (gathering finished) before the WHIP/WHEP POST.
//!
//! - [`publisher`]: [`WhipPublisher`] sends synthetic VP8 (optionally simulcast q/h/f) + Opus.
//! - [`viewer`]: [`WhepViewer`] receives and counts what arrives.
//! - [`rtx`]: RTX negotiation and the tap that lets a viewer count repairs.

pub mod publisher;
pub mod rtx;
pub mod viewer;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use webrtc::api::interceptor_registry::{configure_nack, configure_rtcp_reports, configure_twcc};
use webrtc::api::media_engine::MediaEngine;
use webrtc::api::setting_engine::SettingEngine;
use webrtc::api::{API, APIBuilder};
use webrtc::ice::mdns::MulticastDnsMode;
use webrtc::ice::network_type::NetworkType;
use webrtc::interceptor::registry::Registry;
use webrtc::peer_connection::RTCPeerConnection;
use webrtc::peer_connection::configuration::RTCConfiguration;
use webrtc::peer_connection::peer_connection_state::RTCPeerConnectionState;
use webrtc::peer_connection::sdp::session_description::RTCSessionDescription;
use webrtc::rtp_transceiver::rtp_codec::{RTCRtpHeaderExtensionCapability, RTPCodecType};

pub use publisher::{
    Layer, PublishOptions, PublisherStats, SendingMedia, SyntheticMedia, WhipPublisher,
};
pub use viewer::{KindStats, MediaCounter, ViewerStats, WhepViewer};

use crate::whip::{WhipClient, WhipSession};
use crate::{Error, Result};

/// RFC 6464 client-to-mixer audio level.
pub const AUDIO_LEVEL_URI: &str = "urn:ietf:params:rtp-hdrext:ssrc-audio-level";

/// How a client reaches the hub.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// JWT sent as `Authorization: Bearer`.
    pub token: Option<String>,
    /// Send media to this address instead of the answer's candidates (a [`crate::lossy_relay`]).
    pub media_via: Option<SocketAddr>,
    /// Bound on ICE + DTLS after the answer is applied.
    pub connect_timeout: Duration,
    /// WHEP: the simulcast layer asked for right after the answer, before connecting (as a
    /// wall page asks for thumbnails).
    pub layer: Option<String>,
    /// Gather `::1` (UDP over IPv6) instead of `127.0.0.1`.
    pub ipv6: bool,
}

impl ClientOptions {
    /// Options with a bearer token and the defaults otherwise.
    pub fn with_token(token: &str) -> Self {
        Self {
            token: Some(token.to_owned()),
            ..Self::default()
        }
    }
}

impl Default for ClientOptions {
    fn default() -> Self {
        // ICE-lite server on loopback: connects in well under a second; 15 s covers a loaded CI.
        Self {
            token: None,
            media_via: None,
            connect_timeout: Duration::from_secs(15),
            layer: None,
            ipv6: false,
        }
    }
}

/// A webrtc-rs API whose peers only use 127.0.0.1 (UDP host candidates, no STUN, no mDNS).
pub fn loopback_api() -> Result<API> {
    loopback_api_with(None, false)
}

/// [`loopback_api`] whose peers also report incoming RTX repairs to `tap` (see [`rtx`]), and
/// gather `::1` instead of `127.0.0.1` when `ipv6`.
pub fn loopback_api_with(tap: Option<rtx::RepairTap>, ipv6: bool) -> Result<API> {
    let mut media = MediaEngine::default();
    media.register_default_codecs()?;
    let ext = |uri: &str| RTCRtpHeaderExtensionCapability {
        uri: uri.to_owned(),
    };
    for uri in [
        webrtc::sdp::extmap::SDES_MID_URI,
        webrtc::sdp::extmap::SDES_RTP_STREAM_ID_URI,
        webrtc::sdp::extmap::SDES_REPAIR_RTP_STREAM_ID_URI,
    ] {
        media.register_header_extension(ext(uri), RTPCodecType::Video, None)?;
    }
    media.register_header_extension(
        ext(webrtc::sdp::extmap::SDES_MID_URI),
        RTPCodecType::Audio,
        None,
    )?;
    media.register_header_extension(ext(AUDIO_LEVEL_URI), RTPCodecType::Audio, None)?;

    let mut registry = Registry::new();
    registry = configure_nack(registry, &mut media);
    registry = configure_rtcp_reports(registry);
    registry = configure_twcc(registry, &mut media)?;
    if let Some(tap) = tap {
        registry.add(Box::new(rtx::RepairTapBuilder(tap)));
    }
    // After the interceptors so that RTX gets no NACK/TWCC feedback lines of its own.
    rtx::register_rtx(&mut media)?;

    let mut settings = SettingEngine::default();
    settings.set_network_types(vec![if ipv6 {
        NetworkType::Udp6
    } else {
        NetworkType::Udp4
    }]);
    settings.set_include_loopback_candidate(true);
    settings.set_interface_filter(Box::new(|name: &str| name == "lo"));
    settings.set_ip_filter(Box::new(|ip: std::net::IpAddr| ip.is_loopback()));
    settings.set_ice_multicast_dns_mode(MulticastDnsMode::Disabled);
    settings.enable_sender_rtx(true);

    Ok(APIBuilder::new()
        .with_media_engine(media)
        .with_interceptor_registry(registry)
        .with_setting_engine(settings)
        .build())
}

/// A peer connection and a watch of its state.
pub type Peer = (
    Arc<RTCPeerConnection>,
    watch::Receiver<RTCPeerConnectionState>,
);

/// A new peer connection from [`loopback_api`] with no ICE servers, plus a watch of its state.
pub async fn loopback_peer() -> Result<Peer> {
    loopback_peer_with(None, false).await
}

/// [`loopback_peer`] reporting incoming RTX repairs to `tap`, on `::1` when `ipv6`.
pub async fn loopback_peer_with(tap: Option<rtx::RepairTap>, ipv6: bool) -> Result<Peer> {
    let pc = Arc::new(
        loopback_api_with(tap, ipv6)?
            .new_peer_connection(RTCConfiguration::default())
            .await?,
    );
    let (tx, rx) = watch::channel(RTCPeerConnectionState::New);
    pc.on_peer_connection_state_change(Box::new(move |s| {
        let _ = tx.send(s);
        Box::pin(async {})
    }));
    Ok((pc, rx))
}

/// Creates an offer and returns it once ICE gathering is complete (candidates inline).
pub async fn complete_offer(pc: &RTCPeerConnection) -> Result<String> {
    let offer = pc.create_offer(None).await?;
    let mut gathered = pc.gathering_complete_promise().await;
    pc.set_local_description(offer).await?;
    let _ = gathered.recv().await;
    Ok(pc
        .local_description()
        .await
        .ok_or_else(|| Error::Protocol("no local description after gathering".into()))?
        .sdp)
}

/// Waits until `state` reaches `Connected`; fails on `Failed`/`Closed` or after `timeout`.
pub async fn wait_connected(
    state: &mut watch::Receiver<RTCPeerConnectionState>,
    timeout: Duration,
) -> Result<()> {
    let fut = state.wait_for(|s| {
        matches!(
            s,
            RTCPeerConnectionState::Connected
                | RTCPeerConnectionState::Failed
                | RTCPeerConnectionState::Closed
        )
    });
    let s = *tokio::time::timeout(timeout, fut)
        .await
        .map_err(|_| Error::Timeout(timeout, "peer connection state Connected".into()))?
        .map_err(|_| Error::Protocol("peer connection dropped".into()))?;
    match s {
        RTCPeerConnectionState::Connected => Ok(()),
        other => Err(Error::Protocol(format!("peer connection {other}"))),
    }
}

/// The signalling + transport state shared by publishers and viewers.
#[derive(Debug)]
struct Session {
    pc: Arc<RTCPeerConnection>,
    state: watch::Receiver<RTCPeerConnectionState>,
    signal: WhipClient,
    whip: WhipSession,
}

impl Session {
    /// Offer → POST `path` → answer (rewritten toward `media_via`) → wait for Connected.
    async fn establish(
        pc: Arc<RTCPeerConnection>,
        mut state: watch::Receiver<RTCPeerConnectionState>,
        base_url: &str,
        path: &str,
        opts: &ClientOptions,
    ) -> Result<Self> {
        let signal = WhipClient::new(base_url, opts.token.as_deref())?;
        let offer = complete_offer(&pc).await?;
        let whip = signal.offer(path, &offer).await?;
        let answer = match opts.media_via {
            Some(via) => crate::lossy_relay::rewrite_candidates(&whip.answer, via),
            None => whip.answer.clone(),
        };
        let connected = async {
            if let Some(rid) = &opts.layer {
                signal.set_layer(&whip.location, rid).await?;
            }
            pc.set_remote_description(RTCSessionDescription::answer(answer)?)
                .await?;
            wait_connected(&mut state, opts.connect_timeout).await
        };
        if let Err(e) = connected.await {
            let _ = signal.delete(&whip.location).await;
            let _ = pc.close().await;
            return Err(e);
        }
        Ok(Self {
            pc,
            state,
            signal,
            whip,
        })
    }

    fn state(&self) -> RTCPeerConnectionState {
        *self.state.borrow()
    }

    /// DELETE the resource, then close the peer connection (both attempted).
    async fn close(&self) -> Result<()> {
        let deleted = self.signal.delete(&self.whip.location).await;
        self.pc.close().await?;
        deleted
    }
}
