#!/usr/bin/env python3
"""Publish synthetic video (VP8, or H.264) and audio (Opus) to a WHIP endpoint with aiortc,
an independent WebRTC stack, for hubcast's interop test.

Usage: whip_publish.py URL TOKEN SECONDS [vp8|h264]
Prints "connected <location>" once ICE+DTLS are up, then "done" after SECONDS; exits non-zero
on any failure. Loopback only: aiortc is told to use 127.0.0.1 and no ICE servers
(../shared/TESTING.md: it otherwise never offers 127.0.0.1 and asks a public STUN server).
"""

import asyncio
import fractions
import sys
import time
import urllib.request

import aioice.ice
from aiortc import RTCConfiguration, RTCPeerConnection, RTCRtpSender, RTCSessionDescription
from aiortc.mediastreams import AudioStreamTrack, VideoStreamTrack
import av

aioice.ice.get_host_addresses = lambda use_ipv4=True, use_ipv6=True: ["127.0.0.1"]


class MovingBars(VideoStreamTrack):
    """640x360 frames whose content changes every frame, so the encoder sends real deltas."""

    def __init__(self):
        super().__init__()
        self.n = 0

    async def recv(self):
        pts, time_base = await self.next_timestamp()
        frame = av.VideoFrame(640, 360, "yuv420p")
        y = frame.planes[0]
        row = bytes(((x + self.n * 4) % 256) for x in range(y.line_size))
        y.update(row * 360)
        for plane in frame.planes[1:]:
            plane.update(bytes([128]) * (plane.line_size * plane.height))
        frame.pts = pts
        frame.time_base = time_base
        self.n += 1
        return frame


def post(url, token, body):
    req = urllib.request.Request(url, data=body.encode(), method="POST")
    req.add_header("Content-Type", "application/sdp")
    req.add_header("Authorization", "Bearer " + token)
    with urllib.request.urlopen(req, timeout=10) as resp:
        if resp.status != 201:
            raise RuntimeError("WHIP answered %s" % resp.status)
        return resp.read().decode(), resp.headers["Location"]


def delete(url, token):
    req = urllib.request.Request(url, method="DELETE")
    req.add_header("Authorization", "Bearer " + token)
    urllib.request.urlopen(req, timeout=10).close()


async def main(url, token, seconds, codec):
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    connected = asyncio.Event()

    @pc.on("connectionstatechange")
    def on_state():
        if pc.connectionState == "connected":
            connected.set()

    video = pc.addTransceiver(MovingBars(), direction="sendonly")
    # Offer only the chosen video codec (and its RTX), so the SFU must forward that one.
    wanted = "video/" + {"vp8": "VP8", "h264": "H264"}[codec]
    codecs = RTCRtpSender.getCapabilities("video").codecs
    video.setCodecPreferences(
        [c for c in codecs if c.mimeType == wanted] + [c for c in codecs if c.mimeType == "video/rtx"]
    )
    pc.addTransceiver(AudioStreamTrack(), direction="sendonly")
    await pc.setLocalDescription(await pc.createOffer())  # returns after gathering
    answer, location = post(url, token, pc.localDescription.sdp)
    await pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
    await asyncio.wait_for(connected.wait(), timeout=20)
    print("connected", location, flush=True)
    await asyncio.sleep(seconds)
    base = url.split("/whip/")[0]
    delete(base + location, token)
    await pc.close()
    print("done", flush=True)


if __name__ == "__main__":
    codec = sys.argv[4] if len(sys.argv) > 4 else "vp8"
    asyncio.run(main(sys.argv[1], sys.argv[2], float(sys.argv[3]), codec))
