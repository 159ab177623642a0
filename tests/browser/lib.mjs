// Shared by the browser tests and the glass-to-glass benchmark: Chromium through playwright-core
// (installed in web/node_modules by `npm ci`), with a fake camera and microphone.
import { createRequire } from 'node:module';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';

const require = createRequire(new URL('../../web/package.json', import.meta.url));
let playwright;
try {
  playwright = require('playwright-core');
} catch {
  console.error('playwright-core is not installed: run `npm ci` in web/ (scripts/setup.sh --test does)');
  process.exit(2);
}

export const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';

/** Flags that work headless on the CI machines, plus a 30 fps fake camera and microphone. */
export const CHROMIUM_ARGS = [
  '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
  '--use-fake-device-for-media-stream=fps=30', '--use-fake-ui-for-media-stream',
  '--autoplay-policy=no-user-gesture-required',
];

export async function launch(extraArgs = []) {
  return playwright.chromium.launch({ executablePath: CHROMIUM, headless: true, args: [...CHROMIUM_ARGS, ...extraArgs] });
}

/** A phone-sized browser context (the pages are mobile first). */
export async function phone(browser, opts = {}) {
  return browser.newContext({ viewport: { width: 390, height: 844 }, deviceScaleFactor: 1, ...opts });
}

/** Logs a page's errors under a name, and keeps them for the final check. */
export function watchErrors(page, name, sink) {
  page.on('pageerror', (e) => {
    sink.push(`${name}: ${e.message}`);
    console.log(`[${name}] page error: ${e.message}`);
  });
  page.on('console', (m) => {
    if (m.type() === 'error' && !/status of (401|403|404)/.test(m.text())) {
      sink.push(`${name}: console: ${m.text()}`);
    }
    if (process.env.VERBOSE) console.log(`[${name}] ${m.type()}: ${m.text()}`);
  });
}

export function screenshotDir() {
  const dir = process.env.SCREENSHOTS || join(process.cwd(), 'target', 'browser-screenshots');
  mkdirSync(dir, { recursive: true });
  return dir;
}

/** Throws with `message` (and what was seen) unless `cond`. */
export function check(cond, message) {
  if (!cond) throw new Error(`check failed: ${message}`);
}

export async function getJson(url) {
  const r = await fetch(url);
  const text = await r.text();
  if (!r.ok) throw new Error(`GET ${url}: ${r.status} ${text}`);
  return JSON.parse(text);
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Polls `f` until it returns a truthy value. */
export async function until(what, timeoutMs, f) {
  const end = Date.now() + timeoutMs;
  let last;
  for (;;) {
    try {
      last = await f();
      if (last) return last;
    } catch (e) {
      last = e.message;
    }
    if (Date.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what} (last: ${JSON.stringify(last)})`);
    await sleep(200);
  }
}

/** Signs up through the page (sign-in page, "Create account" tab); lands on `next`. */
export async function signUp(page, base, username, password, next = '/studio') {
  await page.goto(`${base}/signin?mode=signup&next=${encodeURIComponent(next)}`);
  await page.fill('#username', username);
  await page.fill('#password', password);
  await page.click('#submit');
  await page.waitForURL((u) => u.pathname === next.split('?')[0], { timeout: 15000 });
}

/**
 * WHEP playback on `page` (any page of the server, so the requests are same-origin): an
 * RTCPeerConnection (recvonly video + audio) posts its offer to /whep/{id}, plays the answer's
 * media in a <video>, and reports getStats() once more than `minFrames` frames are decoded (or
 * `waitMs` is up); then DELETEs the session twice (the second must be 404).
 */
export async function playWhep(page, id, minFrames, waitMs) {
  return page.evaluate(async ({ id, minFrames, waitMs }) => {
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
}
