// WHEP playback in Chromium: an RTCPeerConnection (recvonly video + audio) posts its offer to
// /whep/{id}, plays the answer's media in a <video>, and reports getStats() once enough frames
// are decoded (or its time is up); then DELETEs the session twice (the second must be 404).
// Then the watch page plays the same stream: over WebRTC, its time advancing.
// Env: VSHARE_HTTP, VIDEO, MIN_FRAMES (video frames to decode), WAIT_MS (how long it may take).
// Prints `RESULT {json}`.

import { launch, phone, until } from './lib.mjs';

const base = process.env.VSHARE_HTTP;
const id = process.env.VIDEO;
const minFrames = Number(process.env.MIN_FRAMES || 30);
const waitMs = Number(process.env.WAIT_MS || 20000);
if (!base || !id) {
  console.error('set VSHARE_HTTP and VIDEO');
  process.exit(2);
}

// Host candidates as plain addresses, not mDNS names, and loopback ones (the server is on
// loopback; Chromium leaves the loopback interface out of ICE by default).
const browser = await launch(['--disable-features=WebRtcHideLocalIpsWithMdns', '--allow-loopback-in-peer-connection']);
try {
  const page = await (await phone(browser)).newPage();
  // Any page of the server: the WHEP requests are then same-origin.
  await page.goto(`${base}/api/v1/videos/${id}`);
  const result = await page.evaluate(async ({ id, minFrames, waitMs }) => {
    const pc = new RTCPeerConnection();
    pc.addTransceiver('video', { direction: 'recvonly' });
    pc.addTransceiver('audio', { direction: 'recvonly' });
    const v = document.createElement('video');
    v.autoplay = true;
    v.playsInline = true;
    document.body.appendChild(v);
    const stream = new MediaStream();
    pc.ontrack = (e) => {
      stream.addTrack(e.track);
      v.srcObject = stream;
      v.play().catch(() => {});
    };
    await pc.setLocalDescription(await pc.createOffer());
    // Gathering is quick on loopback; the offer goes with what was gathered after at most 2 s.
    await new Promise((resolve) => {
      if (pc.iceGatheringState === 'complete') return resolve();
      pc.onicegatheringstatechange = () => pc.iceGatheringState === 'complete' && resolve();
      setTimeout(resolve, 2000);
    });
    const t0 = performance.now();
    const resp = await fetch(`/whep/${id}`, {
      method: 'POST', headers: { 'Content-Type': 'application/sdp' }, body: pc.localDescription.sdp,
    });
    const answer = await resp.text();
    if (resp.status !== 201) return { error: `POST /whep/${id}: ${resp.status} ${answer}` };
    const location = resp.headers.get('Location');
    await pc.setRemoteDescription({ type: 'answer', sdp: answer });
    const collect = async () => {
      const out = { video: {}, audio: {}, codecs: [] };
      const all = await pc.getStats();
      all.forEach((s) => {
        if (s.type === 'inbound-rtp') {
          out[s.kind] = {
            packetsReceived: s.packetsReceived, packetsLost: s.packetsLost, nackCount: s.nackCount,
            pliCount: s.pliCount, framesDecoded: s.framesDecoded, keyFramesDecoded: s.keyFramesDecoded,
            frameWidth: s.frameWidth, frameHeight: s.frameHeight,
            totalSamplesReceived: s.totalSamplesReceived, concealedSamples: s.concealedSamples,
            totalAudioEnergy: s.totalAudioEnergy, jitterBufferDelay: s.jitterBufferDelay,
            jitterBufferEmittedCount: s.jitterBufferEmittedCount, codecId: s.codecId,
          };
        }
        if (s.type === 'codec') out.codecs.push({ id: s.id, mimeType: s.mimeType, sdpFmtpLine: s.sdpFmtpLine });
      });
      return out;
    };
    let stats;
    let firstFrameMs = null;
    for (;;) {
      stats = await collect();
      const frames = stats.video.framesDecoded || 0;
      if (frames > 0 && firstFrameMs === null) firstFrameMs = performance.now() - t0;
      if (frames > minFrames && (stats.audio.packetsReceived || 0) > 50 && v.currentTime > 0) break;
      if (performance.now() - t0 > waitMs) break;
      await new Promise((r) => setTimeout(r, 200));
    }
    const ice = pc.iceConnectionState;
    const del = await fetch(location, { method: 'DELETE' });
    const again = await fetch(location, { method: 'DELETE' });
    pc.close();
    return {
      location, ice, stats, firstFrameMs, elapsedMs: performance.now() - t0,
      width: v.videoWidth, height: v.videoHeight, currentTime: v.currentTime,
      deleteStatus: del.status, deleteAgainStatus: again.status,
    };
  }, { id, minFrames, waitMs });
  // The watch page: WebRTC first.
  const t0 = Date.now();
  await page.goto(`${base}/watch/${id}`);
  await page.waitForFunction(() => document.body.dataset.state === 'live', null, { timeout: 20000 });
  await page.click('#play');
  const state = () => page.evaluate(() => {
    const v = document.querySelector('#player');
    return { engine: window.vshareWatch.engine, t: v.currentTime, width: v.videoWidth,
      note: document.querySelector('#player-note').textContent, errors: window.vshareWatch.errors };
  });
  let first = null;
  let last = null;
  try {
    await until('the watch page to play 2 s', Math.max(1000, waitMs - result.elapsedMs), async () => {
      last = await state();
      if (last.t > 0 && !first) first = { ...last, atMs: Date.now() - t0 };
      return first && last.t - first.t >= 2 ? last : null;
    });
  } catch (e) {
    result.watchError = e.message;
  }
  result.watch = { first, last };
  console.log(`RESULT ${JSON.stringify(result)}`);
} finally {
  await browser.close();
}
