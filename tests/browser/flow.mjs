// The phone-in-a-browser flow, end to end in headless Chromium against a running `vshare serve`
// (started by crates/cli/tests/browser.rs with a `vshare smsc` as its SMSC):
//   sign up → page A publishes from the fake camera → page B plays it live (hls.js LL-HLS) →
//   the upload connection drops and resumes → stop → page B plays the recording to the end →
//   the share dialog sends it by SMS (text, then WAP Push) to `vshare smsc`, where
//   `vshare open` receives, decodes and downloads it → library: private, signed link, delete →
//   a browser without VideoEncoder gets the clear message and the RTMP instructions.
// Screenshots of every page go to $SCREENSHOTS (default target/browser-screenshots).
// Env: VSHARE_HTTP (server base URL), VSHARE (binary), VSHARE_SMSC (host:port), SHARE_NUMBER.
// Prints `RESULT {json}` at the end; exits non-zero with the reason on any failure.

import { spawn } from 'node:child_process';
import { statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { check, getJson, launch, phone, screenshotDir, signUp, sleep, until, watchErrors } from './lib.mjs';

const base = process.env.VSHARE_HTTP;
const bin = process.env.VSHARE;
const smsc = process.env.VSHARE_SMSC;
const number = process.env.SHARE_NUMBER || '+8613900139000';
if (!base || !bin || !smsc) {
  console.error('set VSHARE_HTTP, VSHARE and VSHARE_SMSC');
  process.exit(2);
}
const shots = screenshotDir();
const work = process.env.WORK_DIR || tmpdir();
const errors = [];
const result = { screenshots: [] };
const step = (s) => console.log(`flow: ${s}`);

async function shot(page, name, fullPage = true) {
  await page.screenshot({ path: join(shots, `${name}.png`), fullPage });
  result.screenshots.push(`${name}.png`);
}

/** `vshare open` bound to the SMSC as `number`; resolves with its decoded JSON and exit code. */
function openReceiver(output) {
  const child = spawn(bin, ['open', '--smsc', smsc, '--number', number, '--timeout', '60',
    '--download', '--output', output, '--player', 'none', '--json'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout.on('data', (d) => { out += d; });
  child.stderr.on('data', (d) => { err += d; });
  const done = new Promise((resolve) => child.on('exit', (code) => resolve({ code, out, err })));
  return { child, done };
}

/** Samples the player: currentTime, size, whether it is playing. */
const playerState = (page) => page.evaluate(() => {
  const v = document.querySelector('#player');
  return { t: v.currentTime, w: v.videoWidth, h: v.videoHeight, paused: v.paused, ended: v.ended,
    duration: v.duration, engine: window.vshareWatch.engine, errors: window.vshareWatch.errors,
    mediaError: v.error ? `${v.error.code}: ${v.error.message}` : null };
});

async function main() {
  const browser = await launch();
  const ctxA = await phone(browser, { permissions: ['clipboard-read', 'clipboard-write'] });
  const a = await ctxA.newPage();
  watchErrors(a, 'studio', errors);

  step('sign up through the page');
  await a.goto(`${base}/signin?mode=signup`);
  await shot(a, 'signin');
  await signUp(a, base, 'alice', 'correct horse battery staple', '/studio?width=640&height=360&backfill_memory=1024');

  step('studio: camera preview');
  await a.waitForFunction(() => document.body.dataset.state === 'ready', null, { timeout: 20000 });
  await a.fill('#title', 'Beach at dawn');
  await shot(a, 'studio-ready');

  step('go live');
  await a.click('#start');
  await a.waitForFunction(() => document.body.dataset.state === 'live', null, { timeout: 20000 });
  const id = await a.evaluate(() => window.vshareStudio.videoId);
  check(/^[\w-]+$/.test(id || ''), `a video id from welcome, got ${id}`);
  result.video = id;
  await a.waitForFunction(() => (document.body.dataset.attributes || '').includes('live'), null, { timeout: 20000 });
  const live = await getJson(`${base}/api/v1/videos/${id}`);
  check(live.state === 'live', `the server says the video is live (state ${live.state})`);
  const liveRec = live.attributes.find((r) => r.kind === 'live');
  check(liveRec && /ll-hls/.test(liveRec.format), `a live LL-HLS record: ${JSON.stringify(live.attributes)}`);

  step('page B: attributes before playback, then live playback');
  const ctxB = await phone(browser);
  const b = await ctxB.newPage();
  watchErrors(b, 'watch', errors);
  await b.goto(`${base}/watch/${id}`);
  await b.waitForSelector('table.attrs[data-kind="live"]');
  const before = await playerState(b);
  check(before.t === 0 && before.w === 0, 'nothing plays before the viewer presses play');
  await shot(b, 'watch-before-play');
  await b.click('#play');
  const t0 = await until('live playback to start', 20000, async () => {
    const s = await playerState(b);
    return s.w > 0 && s.t > 0 ? s : null;
  });
  await sleep(5000);
  const t1 = await playerState(b);
  result.live = { engine: t1.engine, width: t1.w, height: t1.h, advanced_s: t1.t - t0.t };
  check(t1.engine === 'hls.js', `hls.js plays live in Chromium (engine ${t1.engine})`);
  check(t1.t - t0.t > 2.5, `live currentTime advanced ${t1.t - t0.t} s in 5 s`);
  check(t1.w > 0 && t1.h > 0, `live video has a size (${t1.w}x${t1.h})`);
  check((await getJson(`${base}/api/v1/videos/${id}`)).state === 'live', 'still live while page B plays');
  await shot(b, 'watch-live');
  await shot(a, 'studio-live');

  // An outage that lasts until the sender has dropped a second of video (past the 1.5 s of
  // backlog it allows), more than the 1 KiB the page keeps in memory (?backfill_memory): the
  // rest of what it keeps goes to IndexedDB. Then the connection is cut and resumed.
  step('an outage until the sender drops video; the connection is cut and resumes');
  const seqBefore = await a.evaluate(() => window.vshareStudio.client.sender.nextSeq);
  await a.evaluate(() => { window.vshareStudio.client.holding = true; });
  await a.waitForFunction(() => window.vshareStudio.client.droppedFrames >= 30, null, { timeout: 60000 });
  await a.evaluate(() => {
    const c = window.vshareStudio.client;
    c.holding = false;
    if (c.ws) c.ws.close(3001, 'dropped on purpose');
  });
  await a.waitForFunction(() => window.vshareStudio.client.resumes >= 1 && document.body.dataset.state === 'live',
    null, { timeout: 15000 });
  await sleep(3000);
  const stats = await a.evaluate(() => {
    const c = window.vshareStudio.client;
    return { resumes: c.resumes, nextSeq: c.sender.nextSeq, media: c.sender.stats.mediaBytes,
      wire: c.sender.stats.wireBytes, resent: c.sender.stats.resentFrames, dropped: c.droppedFrames,
      late_kept: c.sender.stats.lateKept, late_refused: c.sender.stats.lateRefused,
      late_spilled: c.sender.late.stats.spilled, late_lost: c.sender.late.stats.lost,
      idb_writes: window.vshareStudio.backfillSpill ? window.vshareStudio.backfillSpill.writes : null,
      target: c.rate.targetKbps(), step: c.rate.step() };
  });
  result.upload = stats;
  check(stats.nextSeq > seqBefore, 'frames kept flowing after the resume');
  // The sender drops what is past 1.5 s of backlog, and a busy machine may take longer than
  // that to reconnect: whatever it dropped must be kept for the late send (the protocol's
  // backfill), so the recording still gets every frame (checked against the MP4 below).
  check(stats.dropped > 0 && stats.late_refused === 0 && stats.late_kept === stats.dropped,
    `every frame dropped through the outage was kept to be sent late (${JSON.stringify(stats)})`);
  check(stats.late_spilled > 0 && stats.idb_writes === stats.late_spilled && stats.late_lost === 0,
    `past the memory bound the kept frames went through IndexedDB (${JSON.stringify(stats)})`);
  const s2 = await playerState(b);
  check(s2.t > t1.t, `page B kept playing across the drop (${t1.t} → ${s2.t})`);

  step('stop: the recording');
  const liveSeconds = await a.evaluate(() => performance.now() / 1000);
  await a.click('#stop');
  await a.waitForFunction(() => document.body.dataset.state === 'ended', null, { timeout: 30000 });
  const liveEnd = await a.evaluate(() => performance.now() / 1000);
  // What the page sent, for the test to compare the recording with (not a rate this machine
  // happens to reach): video frames handed to the upload client, and the capture clock's steps.
  result.capture = await a.evaluate(() => {
    const s = window.vshareStudio;
    return { video_frames_sent: s.videoFramesSent, encoder_drops: s.encoderDrops,
      step_min_us: s.captureStepMinUs, step_max_us: s.captureStepMaxUs,
      dropped: s.client.droppedFrames };
  });
  const attrs = await a.evaluate(() => document.body.dataset.attributes);
  check(/vod/.test(attrs), `VOD attributes came over the upload connection (${attrs})`);
  await shot(a, 'studio-ended');
  // Ready, and with the late frames in (the VOD is rebuilt with them after the stop).
  const ready = await until('the video to be ready with its late frames', 20000, async () => {
    const v = await getJson(`${base}/api/v1/videos/${id}`);
    return v.state === 'ready' && v.backfill && v.backfill.state !== 'pending' ? v : null;
  });
  check(ready.backfill.state === 'complete', `the backfill completed: ${JSON.stringify(ready.backfill)}`);
  const mp4 = ready.attributes.find((r) => r.kind === 'vod' && r.format === 'mp4');
  check(mp4 && mp4.size > 0 && mp4.duration_ms > 5000, `an MP4 record: ${JSON.stringify(mp4)}`);
  result.vod = { duration_ms: mp4.duration_ms, size: mp4.size, width: mp4.width, height: mp4.height,
    codecs: mp4.codecs, stop_to_end_s: liveEnd - liveSeconds };

  step('page B plays the recording to the end');
  await b.waitForFunction(() => document.body.dataset.state === 'ready', null, { timeout: 20000 });
  await b.click('#play');
  await until('VOD playback', 15000, async () => (await playerState(b)).t > 0);
  await b.evaluate(() => { document.querySelector('#player').playbackRate = 2; });
  await shot(b, 'watch-vod');
  let lastVod = null;
  const ended = await until('the recording to play to its end', mp4.duration_ms + 30000, async () => {
    lastVod = await playerState(b);
    return lastVod.ended ? lastVod : null;
  }).catch((e) => {
    throw new Error(`${e.message}; player: ${JSON.stringify(lastVod)}`);
  });
  result.vod.played = { engine: ended.engine, end_s: ended.t, duration_s: ended.duration };
  check(ended.engine === 'hls.js', `the recording plays as HLS VOD with hls.js (${ended.engine})`);
  check(Math.abs(ended.t - mp4.duration_ms / 1000) < 1.0,
    `played to the end: ${ended.t} s of ${mp4.duration_ms / 1000} s`);

  step('share by SMS: text, then WAP Push, to vshare open');
  result.share = [];
  for (const form of ['text', 'wap-si']) {
    const file = join(work, `shared-${form}.mp4`);
    const rx = openReceiver(file);
    await sleep(700); // let it bind as receiver
    await a.click('#share');
    await a.waitForSelector('#share-dialog[open]');
    await a.fill('#share-numbers', number);
    await a.selectOption('#share-as', form);
    await a.click('#share-send');
    await a.waitForFunction(() => {
      const r = document.querySelector('#share-result');
      return r.dataset.sent === 'true' || /Not sent/.test(r.textContent);
    }, null, { timeout: 40000 });
    const answer = await a.textContent('#share-result');
    const smsHref = await a.getAttribute('#share-sms', 'href');
    if (form === 'text') await shot(a, 'studio-share', false);
    await a.click('#share-close');
    await a.evaluate(() => { delete document.querySelector('#share-result').dataset.sent; });
    check(!/Not sent/.test(answer), `the server sent the ${form} SMS: ${answer}`);
    const got = await Promise.race([rx.done, sleep(60000).then(() => null)]);
    if (!got) {
      rx.child.kill();
      throw new Error(`vshare open received nothing for the ${form} share`);
    }
    check(got.code === 0, `vshare open exited ${got.code}: ${got.err}`);
    const recs = JSON.parse(got.out);
    check(recs.some((r) => r.video_id === id), `vshare open decoded a record of ${id}: ${got.out}`);
    const size = statSync(file).size;
    check(size === mp4.size, `vshare open downloaded ${size} bytes, the record says ${mp4.size}`);
    check(smsHref.startsWith('sms:'), `an sms: link for the messaging app (${smsHref})`);
    result.share.push({ form, answer: answer.trim(), open_records: recs.length, downloaded: size, sms_link: smsHref.slice(0, 40) });
  }

  step('library: private, signed link, delete');
  await a.goto(`${base}/library`);
  await a.waitForSelector(`li[data-id="${id}"]`);
  await a.click(`li[data-id="${id}"] details summary`);
  await shot(a, 'library');
  await a.click(`li[data-id="${id}"] button.visibility`);
  await a.waitForSelector(`li[data-id="${id}"] .badge.private`);
  const anon = await ctxB.request.get(`${base}/api/v1/videos/${id}`);
  check(anon.status() === 403, `a private video is refused without a link (${anon.status()})`);
  await a.click(`li[data-id="${id}"] button.copy-link`);
  const link = await until('the link on the clipboard', 10000,
    () => a.evaluate(() => navigator.clipboard.readText()));
  check(/\/watch\/.+\?exp=\d+&sig=[0-9a-f]+/.test(link), `a signed watch link was copied: ${link}`);
  const c = await ctxB.newPage();
  watchErrors(c, 'watch-private', errors);
  await c.goto(link);
  await c.waitForSelector('table.attrs[data-format="mp4"]', { timeout: 10000 });
  const privUrl = await c.getAttribute('#download', 'href');
  check(/sig=/.test(privUrl), `the private video's download carries the signature: ${privUrl}`);
  result.private_link = link.replace(/sig=[0-9a-f]+/, 'sig=…');
  await c.close();
  // The landing page lists public videos only: make it public again for its screenshot.
  await a.click(`li[data-id="${id}"] button.visibility`);
  await a.waitForFunction((vid) => !document.querySelector(`li[data-id="${vid}"] .badge.private`), id);
  const home = await ctxB.newPage();
  await home.goto(`${base}/`);
  await home.waitForSelector(`li[data-id="${id}"]`);
  await shot(home, 'home');
  await home.close();
  a.once('dialog', (d) => d.accept());
  await a.click(`li[data-id="${id}"] button.delete`);
  await a.waitForFunction((vid) => !document.querySelector(`li[data-id="${vid}"]`), id, { timeout: 15000 });
  const gone = await fetch(`${base}/api/v1/videos/${id}`);
  check(gone.status === 404, `a deleted video is gone (${gone.status})`);

  step('a browser without VideoEncoder');
  const ctxC = await phone(browser);
  await ctxC.addInitScript(() => { delete window.VideoEncoder; });
  const signin = await ctxC.request.post(`${base}/api/v1/session`,
    { data: { username: 'alice', password: 'correct horse battery staple' } });
  check(signin.ok(), `sign in over the API: ${signin.status()}`);
  const u = await ctxC.newPage();
  watchErrors(u, 'unsupported', errors);
  await u.goto(`${base}/studio`);
  await u.waitForSelector('#unsupported:not([hidden])', { timeout: 15000 });
  const why = await u.textContent('#unsupported-why');
  check(/VideoEncoder/.test(why), `the message names what is missing: ${why}`);
  const rtmp = await u.textContent('#rtmp-url');
  check(/^rtmp:\/\//.test(rtmp), `RTMP instructions are shown: ${rtmp}`);
  u.once('dialog', (d) => d.accept());
  await u.click('#rotate-key');
  await u.waitForFunction(() => !/shown once|none yet/.test(document.querySelector('#stream-key').textContent));
  const key = await u.textContent('#stream-key');
  check(key.length >= 16, `a new stream key is shown: ${key}`);
  await shot(u, 'studio-unsupported');
  result.unsupported = why;

  step('a browser whose VideoEncoder has no H.264');
  const ctxD = await phone(browser);
  await ctxD.addInitScript(() => {
    VideoEncoder.isConfigSupported = async (config) => ({ supported: false, config });
  });
  await ctxD.request.post(`${base}/api/v1/session`, { data: { username: 'alice', password: 'correct horse battery staple' } });
  const d = await ctxD.newPage();
  watchErrors(d, 'no-h264', errors);
  await d.goto(`${base}/studio`);
  await d.waitForSelector('#unsupported:not([hidden])', { timeout: 15000 });
  const whyH264 = await d.textContent('#unsupported-why');
  check(/H\.264/.test(whyH264), `the message says H.264 is missing: ${whyH264}`);
  result.unsupported_h264 = whyH264;

  await browser.close();
  const fatal = errors.filter((e) => !/favicon/.test(e));
  check(fatal.length === 0, `no page errors: ${fatal.join('\n')}`);
  console.log(`RESULT ${JSON.stringify(result)}`);
}

main().catch((e) => {
  console.error(`flow failed: ${e.stack || e.message}`);
  if (errors.length) console.error(`page errors:\n${errors.join('\n')}`);
  process.exit(1);
});
