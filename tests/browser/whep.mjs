// WHEP playback in Chromium: an RTCPeerConnection (recvonly video + audio) posts its offer to
// /whep/{id}, plays the answer's media in a <video>, and reports getStats() once enough frames
// are decoded (or its time is up); then DELETEs the session twice (the second must be 404).
// Then the watch page plays the same stream: over WebRTC, its time advancing.
// Env: VSHARE_HTTP, VIDEO, MIN_FRAMES (video frames to decode), WAIT_MS (how long it may take).
// Prints `RESULT {json}`.

import { launch, phone, playWhep, until } from './lib.mjs';

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
  const result = await playWhep(page, id, minFrames, waitMs);
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
