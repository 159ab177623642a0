// Glass-to-glass latency on loopback: page A's studio encodes a canvas with the wall clock
// burnt in as blocks (`/studio?source=clock`), page B plays the live stream with hls.js in
// low-latency mode (`/watch/{id}?glass=1`) and, on every displayed frame
// (requestVideoFrameCallback), reads the clock back from the pixels: latency = display time −
// burnt-in time. Same browser, same clock. Prints p50/p95 over DURATION seconds (default 40)
// after WARMUP seconds (default 6).
// Env: VSHARE_HTTP (server base URL); QUALITY=fixed|adaptive (default fixed: the picture stays
// 640×360 at 30 fps, so the figure is the transport's, not the adaptation's); ENGINES=hls,webrtc
// plays the stream in one page per engine at once (WebRTC: WHEP, when the server has it on;
// hls: `?engine=hls`), side by side on the same source (default: one page, the watch page's
// own choice).
import { launch, phone, signUp, sleep } from './lib.mjs';

const base = process.env.VSHARE_HTTP;
if (!base) {
  console.error('set VSHARE_HTTP to the server (bench/glass.sh does)');
  process.exit(2);
}
const duration = Number(process.env.DURATION || 40);
const warmup = Number(process.env.WARMUP || 6);
const quality = process.env.QUALITY === 'adaptive' ? '' : '&quality=fixed';
const engines = (process.env.ENGINES || 'auto').split(',');

const q = (xs, p) => xs[Math.min(xs.length - 1, Math.floor(p * xs.length))];

async function main() {
  // Loopback ICE candidates as plain addresses, for WHEP on this machine.
  const browser = await launch(['--disable-features=WebRtcHideLocalIpsWithMdns', '--allow-loopback-in-peer-connection']);
  const a = await (await phone(browser)).newPage();
  const user = `glass${Date.now() % 1_000_000}`;
  await signUp(a, base, user, 'correct horse battery staple', `/studio?source=clock${quality}`);
  await a.waitForFunction(() => document.body.dataset.state === 'ready', null, { timeout: 20000 });
  await a.click('#start');
  await a.waitForFunction(() => document.body.dataset.state === 'live', null, { timeout: 20000 });
  const id = await a.evaluate(() => window.vshareStudio.videoId);
  await a.waitForFunction(() => (document.body.dataset.attributes || '').includes('live'), null, { timeout: 20000 });

  const players = [];
  for (const engine of engines) {
    const b = await (await phone(browser)).newPage();
    await b.goto(`${base}/watch/${id}?glass=1${engine === 'hls' ? '&engine=hls' : ''}`);
    await b.click('#play');
    players.push(b);
  }
  await sleep(warmup * 1000);
  for (const b of players) {
    await b.evaluate(() => { window.vshareWatch.glass = []; window.vshareWatch.glassMisses = 0; });
  }
  const t0 = Date.now();
  await sleep(duration * 1000);
  const seconds = (Date.now() - t0) / 1000;
  const read = (b) => b.evaluate(() => ({
    samples: window.vshareWatch.glass.map((s) => s.latency),
    at: window.vshareWatch.glass.map((s) => s.at),
    misses: window.vshareWatch.glassMisses || 0,
    engine: window.vshareWatch.engine,
    hlsLatency: window.vshareWatch.hls ? window.vshareWatch.hls.latency : null,
    w: document.querySelector('#player').videoWidth,
    h: document.querySelector('#player').videoHeight,
  }));
  const all = [];
  for (const b of players) all.push(await read(b));
  const studio = await a.evaluate(() => {
    const c = window.vshareStudio.client;
    return { step: window.vshareStudio.broadcast.step, target_kbps: c.rate.targetKbps(), dropped: c.droppedFrames };
  });
  await a.click('#stop');
  await a.waitForFunction(() => ['ended', 'failed'].includes(document.body.dataset.state), null, { timeout: 30000 });
  await browser.close();

  const results = all.map((got) => summary(got, seconds, studio));
  for (const r of results) {
    console.log(`glass-to-glass over ${r.seconds} s, ${r.frames} frames (${r.unreadable} unreadable), ${r.engine} ${r.picture}: p50 ${r.p50_ms} ms, p95 ${r.p95_ms} ms (min ${r.min_ms}, max ${r.max_ms})`);
  }
  const out = results.length === 1 ? results[0] : { by_engine: Object.fromEntries(results.map((r) => [r.engine, r])) };
  console.log(`RESULT ${JSON.stringify(out)}`);
}

/** One page's figures. */
function summary(got, seconds, studio) {
  const xs = got.samples.filter(Number.isFinite).sort((x, y) => x - y);
  // Median latency per 5 s, and display gaps over 250 ms (stalls), to see when things happen.
  const timeline = [];
  for (let i = 0; i < got.at.length;) {
    const end = got.at[i] + 5000;
    const bucket = [];
    for (; i < got.at.length && got.at[i] < end; i++) bucket.push(got.samples[i]);
    timeline.push(Math.round(bucket.sort((x, y) => x - y)[bucket.length >> 1]));
  }
  const stalls = got.at.slice(1).map((t, i) => t - got.at[i]).filter((d) => d > 250).map(Math.round);
  if (xs.length < 30 * 10) {
    throw new Error(`${got.engine}: only ${xs.length} frames read back in ${seconds.toFixed(0)} s (${got.misses} unreadable)`);
  }
  return {
    frames: xs.length, unreadable: got.misses, seconds: Math.round(seconds), engine: got.engine,
    picture: `${got.w}x${got.h}`, p50_ms: Math.round(q(xs, 0.5)), p95_ms: Math.round(q(xs, 0.95)),
    min_ms: Math.round(xs[0]), max_ms: Math.round(xs[xs.length - 1]),
    hls_js_latency_s: got.hlsLatency && Number(got.hlsLatency.toFixed(2)), studio,
    median_per_5s_ms: timeline, stalls_ms: stalls,
  };
}

main().catch((e) => {
  console.error(`glass failed: ${e.stack || e.message}`);
  process.exit(1);
});
