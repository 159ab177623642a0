#!/usr/bin/env python3
"""An independent WebRTC client for vshare's tests: aiortc (PyPI), not our str0m code.

  publish URL KEY FILE SECONDS  WHIP: sends FILE (decoded by PyAV, encoded again by aiortc as
                                H.264 and Opus) to URL with KEY as bearer token for SECONDS,
                                then DELETEs the session.
  play URL SECONDS              WHEP: plays URL for SECONDS, decoding what arrives.

Prints one line `RESULT {json}`: the HTTP status, the session's location, and the frames
sent or decoded.
"""

import asyncio
import json
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc.contrib.media import MediaPlayer


def http(method, url, body=None, headers=None):
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, dict(r.headers), r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read().decode()


async def offer(pc, url, headers):
    # aiortc gathers every candidate before the offer is made (no trickle): WHIP and WHEP's way.
    await pc.setLocalDescription(await pc.createOffer())
    headers = {"Content-Type": "application/sdp", **headers}
    status, head, answer = await asyncio.to_thread(
        http, "POST", url, pc.localDescription.sdp.encode(), headers
    )
    if status != 201:
        return status, None, answer
    await pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
    found = {k.lower(): v for k, v in head.items()}.get("location", "")
    location = urllib.parse.urljoin(url, found)
    return status, location, None


async def publish(url, key, path, seconds):
    player = MediaPlayer(path)
    pc = RTCPeerConnection()
    pc.addTransceiver(player.video, direction="sendonly")
    pc.addTransceiver(player.audio, direction="sendonly")
    status, location, error = await offer(pc, url, {"Authorization": f"Bearer {key}"})
    result = {"status": status, "location": location, "error": error}
    if location:
        await asyncio.sleep(seconds)
        stats = await pc.getStats()
        for s in stats.values():
            if s.type == "outbound-rtp":
                result[f"{s.kind}_packets"] = s.packetsSent
        result["delete"] = (await asyncio.to_thread(http, "DELETE", location))[0]
    await pc.close()
    return result


async def play(url, seconds):
    pc = RTCPeerConnection()
    pc.addTransceiver("video", direction="recvonly")
    pc.addTransceiver("audio", direction="recvonly")
    counts = {"video_frames": 0, "audio_frames": 0, "width": 0, "height": 0, "first_frame_s": None}
    started = time.monotonic()

    async def consume(track):
        while True:
            try:
                frame = await track.recv()
            except Exception:
                return
            if track.kind == "video":
                counts["video_frames"] += 1
                counts["width"], counts["height"] = frame.width, frame.height
                if counts["first_frame_s"] is None:
                    counts["first_frame_s"] = round(time.monotonic() - started, 3)
            else:
                counts["audio_frames"] += 1

    tasks = []
    pc.on("track", lambda track: tasks.append(asyncio.ensure_future(consume(track))))
    status, location, error = await offer(pc, url, {})
    if location:
        await asyncio.sleep(seconds)
        counts["delete"] = (await asyncio.to_thread(http, "DELETE", location))[0]
    await pc.close()
    for t in tasks:
        t.cancel()
    return {"status": status, "location": location, "error": error, **counts}


def main():
    mode, args = sys.argv[1], sys.argv[2:]
    if mode == "publish":
        result = asyncio.run(publish(args[0], args[1], args[2], float(args[3])))
    elif mode == "play":
        result = asyncio.run(play(args[0], float(args[1])))
    else:
        sys.exit(f"unknown mode {mode!r}")
    print("RESULT " + json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
