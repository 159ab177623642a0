// Rewind while live and who is watching, in headless Chromium against a running `vshare serve`
// (started by crates/cli/tests/browser.rs with a short live window, a DVR window and small
// [watching] windows): the studio publishes from the fake camera; a watch page plays live,
// rewinds over the recording so far, plays from an earlier point and goes back to the live
// edge; the studio counts the watch page while it is open and stops counting it once closed.
// Env: VSHARE_HTTP. Prints `RESULT {json}`; the Rust test judges it against the configuration.

import { check, getJson, launch, phone, signUp, sleep, until, watchErrors } from './lib.mjs';

const base = process.env.VSHARE_HTTP;
if (!base) {
  console.error('set VSHARE_HTTP');
  process.exit(2);
}
const errors = [];
const result = {};
const step = (s) => console.log(`dvr: ${s}`);

const player = (page) => page.evaluate(() => {
  const v = document.querySelector('#player');
  const w = window.vshareWatch;
  const s = v.seekable;
  return {
    t: v.currentTime, paused: v.paused, mode: w.mode, engine: w.engine, errors: w.errors,
    seekable: s.length ? [s.start(0), s.end(s.length - 1)] : null,
    latency: w.hls ? w.hls.latency : null,
  };
});

/**
 * The burnt-in wall clock (ms) of the frame the player shows (the studio's `source=clock`),
 * and the page's clock now; null until a frame reads.
 */
const frameClock = (page) => until('a frame with a readable clock', 10000, () => page.evaluate(async () => {
  const { readClock } = await import('/app/clock.js');
  const v = document.querySelector('#player');
  const c = new OffscreenCanvas(448, 252);
  const ctx = c.getContext('2d', { willReadFrequently: true });
  ctx.drawImage(v, 0, 0, c.width, c.height);
  const ms = readClock(ctx.getImageData(0, 0, c.width, c.height));
  return ms === null ? null : { ms, now: Date.now(), t: v.currentTime };
}));

async function main() {
  const browser = await launch();
  const a = await (await phone(browser)).newPage();
  watchErrors(a, 'studio', errors);
  step('sign up and go live from the studio');
  await signUp(a, base, 'dana', 'correct horse battery staple', '/studio?source=clock');
  await a.waitForFunction(() => document.body.dataset.state === 'ready', null, { timeout: 20000 });
  await a.click('#start');
  await a.waitForFunction(() => document.body.dataset.state === 'live', null, { timeout: 20000 });
  const id = await a.evaluate(() => window.vshareStudio.videoId);
  await a.waitForFunction(() => (document.body.dataset.attributes || '').includes('live'), null, { timeout: 20000 });
  const live = await getJson(`${base}/api/v1/videos/${id}`);
  result.dvr = live.attributes.find((r) => r.kind === 'live').dvr;
  result.studio_before = await a.evaluate(() => document.body.dataset.watching);

  // The watch page opens late: its live playlist no longer reaches the start.
  step('record enough to rewind over');
  const dvrUrl = `${base}/vod/${id}/dvr.m3u8`;
  const segments = async () => ((await (await fetch(dvrUrl)).text()).match(/#EXTINF/g) || []).length;
  await until('12 recorded segments', 60000, async () => (await segments()) >= 12);
  result.recorded_at_open = await segments();

  step('watch page: live');
  const ctxB = await phone(browser);
  const b = await ctxB.newPage();
  watchErrors(b, 'watch', errors);
  await b.goto(`${base}/watch/${id}`);
  await b.waitForSelector('table.attrs[data-kind="live"]');
  result.rewind_row = await b.evaluate(() => [...document.querySelectorAll('table.attrs[data-kind="live"] tr')]
    .map((tr) => tr.textContent).find((t) => t.startsWith('Rewind')) || null);
  check(await b.isVisible('#rewind'), 'the Rewind button shows before anything plays');
  await b.click('#play');
  await until('live playback', 20000, async () => {
    const s = await player(b);
    return s.t > 0 && !s.paused ? s : null;
  });
  const opened = Date.now();
  step('the studio counts the watch page');
  await a.waitForFunction(() => Number(document.body.dataset.watching) >= 1, null, { timeout: 20000 });
  result.studio_open = Number(await a.evaluate(() => document.body.dataset.watching));
  result.count_after_ms = Date.now() - opened;

  result.live = await player(b);
  result.live_clock = await frameClock(b);
  result.live_playlist_segments = ((await (await fetch(`${base}/live/${id}/index.m3u8`)).text()).match(/#EXTINF/g) || []).length;

  step('rewind');
  check(await b.isVisible('#rewind'), 'the Rewind button shows while live');
  // Recorded before the DVR playlist is loaded: what it lists at least.
  result.recorded_segments = await segments();
  await b.click('#rewind');
  const rewound = await until('DVR playback', 20000, async () => {
    const s = await player(b);
    return s.mode === 'dvr' && s.t > 0 && !s.paused && s.seekable ? s : null;
  });
  result.rewound = rewound;
  check(await b.isVisible('#live-edge'), 'the LIVE button shows while rewound');

  step('seek to the start of the recording');
  const target = rewound.seekable[0] + 0.5;
  await b.evaluate((t) => { document.querySelector('#player').currentTime = t; }, target);
  const back = await until('playback from the start', 20000, async () => {
    const s = await player(b);
    return s.t >= target + 1 && s.t < target + 5 && !s.paused ? s : null;
  });
  result.seek = { target, played_to: back.t, seekable: back.seekable, clock: await frameClock(b) };

  step('back to the live edge');
  await b.click('#live-edge');
  const edge = await until('live playback again', 20000, async () => {
    const s = await player(b);
    return s.mode === 'live' && s.t > 0 && !s.paused && s.seekable ? s : null;
  });
  await sleep(1000);
  const atEdge = await player(b);
  result.edge = { ...atEdge, distance: atEdge.seekable[1] - atEdge.t, first: edge.t, clock: await frameClock(b) };

  step('close the watch page: the count falls');
  await ctxB.close();
  const closed = Date.now();
  await a.waitForFunction(() => document.body.dataset.watching === '0', null, { timeout: 30000 });
  result.count_fell_ms = Date.now() - closed;

  await a.click('#stop');
  await a.waitForFunction(() => document.body.dataset.state === 'ended', null, { timeout: 30000 });
  result.errors = errors;
  await browser.close();
  console.log(`RESULT ${JSON.stringify(result)}`);
}

main().catch((e) => {
  console.error(`dvr: FAILED: ${e.stack || e.message}`);
  if (errors.length) console.error(`page errors:\n${errors.join('\n')}`);
  process.exit(1);
});
