//! RTX (RFC 4588) for the webrtc-rs clients, which an SFU on str0m needs in both directions.
//!
//! str0m only NACKs a publisher whose video has a negotiated repair stream, and only resends to
//! a subscriber over RTX. webrtc-rs 0.17 negotiates RTX when a `video/rtx` codec is registered
//! (plus `enable_sender_rtx` for its own repair SSRC; its NACK responder still resends on the
//! primary SSRC, which receivers accept). On receipt it reads the repair stream internally but
//! never surfaces it on the track, so a viewer could not tell repaired holes from lost ones.
//! [`RepairTapInterceptor`] sits in the interceptor chain, sees every packet of each incoming
//! repair stream (its `StreamInfo` names the primary SSRC) and hands `(primary SSRC, original
//! sequence number, payload length)` to a [`RepairTap`].

use std::sync::Arc;

use webrtc::api::media_engine::MediaEngine;
use webrtc::interceptor::stream_info::StreamInfo;
use webrtc::interceptor::{
    Attributes, Interceptor, InterceptorBuilder, RTCPReader, RTCPWriter, RTPReader, RTPWriter,
};
use webrtc::rtp_transceiver::rtp_codec::{
    RTCRtpCodecCapability, RTCRtpCodecParameters, RTPCodecType,
};

use crate::Result;

/// Payload type of VP8 in webrtc-rs' default codecs, and the one we give its RTX.
const VP8_PT: u8 = 96;
const VP8_RTX_PT: u8 = 97;

/// Registers `video/rtx` for VP8 (`apt=96`), so RTX is offered and accepted.
pub fn register_rtx(media: &mut MediaEngine) -> Result<()> {
    media.register_codec(
        RTCRtpCodecParameters {
            capability: RTCRtpCodecCapability {
                mime_type: "video/rtx".to_owned(),
                clock_rate: 90_000,
                channels: 0,
                sdp_fmtp_line: format!("apt={VP8_PT}"),
                rtcp_feedback: Vec::new(),
            },
            payload_type: VP8_RTX_PT,
            ..Default::default()
        },
        RTPCodecType::Video,
    )?;
    Ok(())
}

/// Called for each repair packet: `(primary SSRC, original sequence number, payload bytes)`.
pub type RepairTap = Arc<dyn Fn(u32, u16, usize) + Send + Sync>;

/// Builds [`RepairTapInterceptor`]s feeding one tap.
pub struct RepairTapBuilder(pub RepairTap);

impl std::fmt::Debug for RepairTapBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RepairTapBuilder")
    }
}

impl InterceptorBuilder for RepairTapBuilder {
    fn build(
        &self,
        _id: &str,
    ) -> std::result::Result<Arc<dyn Interceptor + Send + Sync>, webrtc::interceptor::Error> {
        Ok(Arc::new(RepairTapInterceptor(self.0.clone())))
    }
}

/// Passes everything through; taps incoming repair streams.
pub struct RepairTapInterceptor(RepairTap);

impl std::fmt::Debug for RepairTapInterceptor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RepairTapInterceptor")
    }
}

struct TapReader {
    primary: u32,
    tap: RepairTap,
    inner: Arc<dyn RTPReader + Send + Sync>,
}

#[async_trait::async_trait]
impl RTPReader for TapReader {
    async fn read(
        &self,
        buf: &mut [u8],
        attributes: &Attributes,
    ) -> std::result::Result<(webrtc::rtp::packet::Packet, Attributes), webrtc::interceptor::Error>
    {
        let (pkt, attrs) = self.inner.read(buf, attributes).await?;
        // Padding-only packets (bandwidth probes) carry no original sequence number.
        if let [hi, lo, rest @ ..] = &pkt.payload[..] {
            (self.tap)(self.primary, u16::from_be_bytes([*hi, *lo]), rest.len());
        }
        Ok((pkt, attrs))
    }
}

#[async_trait::async_trait]
impl Interceptor for RepairTapInterceptor {
    async fn bind_rtcp_reader(
        &self,
        reader: Arc<dyn RTCPReader + Send + Sync>,
    ) -> Arc<dyn RTCPReader + Send + Sync> {
        reader
    }

    async fn bind_rtcp_writer(
        &self,
        writer: Arc<dyn RTCPWriter + Send + Sync>,
    ) -> Arc<dyn RTCPWriter + Send + Sync> {
        writer
    }

    async fn bind_local_stream(
        &self,
        _info: &StreamInfo,
        writer: Arc<dyn RTPWriter + Send + Sync>,
    ) -> Arc<dyn RTPWriter + Send + Sync> {
        writer
    }

    async fn unbind_local_stream(&self, _info: &StreamInfo) {}

    async fn bind_remote_stream(
        &self,
        info: &StreamInfo,
        reader: Arc<dyn RTPReader + Send + Sync>,
    ) -> Arc<dyn RTPReader + Send + Sync> {
        match &info.associated_stream {
            Some(primary) if info.mime_type.to_ascii_lowercase().ends_with("/rtx") => {
                Arc::new(TapReader {
                    primary: primary.ssrc,
                    tap: self.0.clone(),
                    inner: reader,
                })
            }
            _ => reader,
        }
    }

    async fn unbind_remote_stream(&self, _info: &StreamInfo) {}

    async fn close(&self) -> std::result::Result<(), webrtc::interceptor::Error> {
        Ok(())
    }
}
