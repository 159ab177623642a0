// WHIP publish from Chromium: the fake camera and microphone (Chromium's test pattern and beep)
// sent over an RTCPeerConnection (sendonly) to POST /whip with the stream key as bearer token.
// While it publishes, a second RTCPeerConnection plays the same video back over WHEP. After
// PUBLISH_MS the video track is taken off, and a second later (what was in flight has arrived)
// the sender's stats are read and the WHIP session is DELETEd (204, then 404 for it again).
// Env: VSHARE_HTTP, KEY, PUBLISH_MS (how long to publish), MIN_FRAMES (frames the WHEP player
// must decode). Prints `RESULT {json}`.

import { launch } from './lib.mjs';

const base = process.env.VSHARE_HTTP;
const key = process.env.KEY;
const publishMs = Number(process.env.PUBLISH_MS || 10000);
const minFrames = Number(process.env.MIN_FRAMES || 30);
if (!base || !key) {
  console.error('set VSHARE_HTTP and KEY');
  process.exit(2);
}

// lib.mjs's flags bring the fake camera (30 fps) and microphone.
const browser = await launch([
  '--disable-features=WebRtcHideLocalIpsWithMdns', '--allow-loopback-in-peer-connection',
]);
try {
  const page = await browser.newPage();
  await page.goto(`${base}/api/v1/videos`);
  const result = await page.evaluate(async ({ key, publishMs, minFrames }) => {
    const gathered = (pc) => new Promise((resolve) => {
      if (pc.iceGatheringState === 'complete') return resolve();
      pc.onicegatheringstatechange = () => pc.iceGatheringState === 'complete' && resolve();
      setTimeout(resolve, 2000);
    });
    const media = await navigator.mediaDevices.getUserMedia({
      video: { width: 640, height: 360, frameRate: 30 }, audio: true,
    });
    const pub = new RTCPeerConnection();
    const sending = pub.addTransceiver(media.getVideoTracks()[0], { direction: 'sendonly' });
    pub.addTransceiver(media.getAudioTracks()[0], { direction: 'sendonly' });
    await pub.setLocalDescription(await pub.createOffer());
    await gathered(pub);
    const t0 = performance.now();
    const resp = await fetch('/whip', {
      method: 'POST',
      headers: { 'Content-Type': 'application/sdp', Authorization: `Bearer ${key}` },
      body: pub.localDescription.sdp,
    });
    const answer = await resp.text();
    if (resp.status !== 201) return { error: `POST /whip: ${resp.status} ${answer}` };
    const location = resp.headers.get('Location');
    const video = location.split('/')[2];
    await pub.setRemoteDescription({ type: 'answer', sdp: answer });
    const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

    // Play it back over WHEP once the stream is live (its first segment made).
    let play = null;
    for (;;) {
      const v = await (await fetch(`/api/v1/videos/${video}`)).json().catch(() => ({}));
      if (v.state === 'live') break;
      if (performance.now() - t0 > publishMs) return { error: 'the stream never went live', location };
      await sleep(200);
    }
    const viewer = new RTCPeerConnection();
    viewer.addTransceiver('video', { direction: 'recvonly' });
    viewer.addTransceiver('audio', { direction: 'recvonly' });
    await viewer.setLocalDescription(await viewer.createOffer());
    await gathered(viewer);
    const w = await fetch(`/whep/${video}`, {
      method: 'POST', headers: { 'Content-Type': 'application/sdp' }, body: viewer.localDescription.sdp,
    });
    const wAnswer = await w.text();
    if (w.status !== 201) {
      play = { error: `POST /whep: ${w.status} ${wAnswer}` };
    } else {
      await viewer.setRemoteDescription({ type: 'answer', sdp: wAnswer });
    }

    const stats = async (pc, type) => {
      const out = {};
      (await pc.getStats()).forEach((s) => {
        if (s.type === type) {
          out[s.kind] = {
            packets: s.packetsSent ?? s.packetsReceived, framesEncoded: s.framesEncoded,
            framesDecoded: s.framesDecoded, keyFrames: s.keyFramesEncoded ?? s.keyFramesDecoded,
            frameWidth: s.frameWidth, frameHeight: s.frameHeight, pliCount: s.pliCount,
            encoder: s.encoderImplementation, codecId: s.codecId,
          };
        }
        if (s.type === 'codec') out.codecs = [...(out.codecs || []), s.mimeType];
      });
      return out;
    };
    let played = {};
    while (performance.now() - t0 < publishMs) {
      await sleep(250);
      if (!play) played = await stats(viewer, 'inbound-rtp');
    }
    // Stop sending video and let what is in flight arrive, so that the count read next is
    // all the server will get.
    await sending.sender.replaceTrack(null);
    await sleep(1000);
    const sent = await stats(pub, 'outbound-rtp');
    const decoded = played.video?.framesDecoded || 0;
    if (!play && decoded <= minFrames) play = { error: `WHEP decoded ${decoded} frames` };
    viewer.close();
    const del = await fetch(location, { method: 'DELETE' });
    const again = await fetch(location, { method: 'DELETE' });
    pub.close();
    media.getTracks().forEach((t) => t.stop());
    return {
      location, video, sent, played, play, publishedMs: performance.now() - t0,
      deleteStatus: del.status, deleteAgainStatus: again.status,
    };
  }, { key, publishMs, minFrames });
  console.log(`RESULT ${JSON.stringify(result)}`);
} finally {
  await browser.close();
}
