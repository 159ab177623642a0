// Scrubbing previews in Chromium: a user publishes a clip over RTMP with ffmpeg in real time;
// once the recording is ready the watch page plays it, loads the sprite's WebVTT track, and its
// seek bar shows the sprite tile for the time under the pointer (mouse hover, touch drag), seeks
// on a click, at the end of a touch drag and with the keys; a private video does the same under
// its signed link. Env: VSHARE_HTTP (server base URL), CLIP (a file to publish). Prints
// `RESULT {json}`.

import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { check, launch, phone, screenshotDir, signUp, until, watchErrors } from './lib.mjs';

const base = process.env.VSHARE_HTTP;
const clip = process.env.CLIP;
if (!base || !clip) {
  console.error('set VSHARE_HTTP and CLIP');
  process.exit(2);
}

/** The track's cues, read here independently of the page: `[{start, x, y, w, h}]`. */
function cuesOf(vtt) {
  const re = /(\d\d):(\d\d):(\d\d)\.(\d{3}) --> [^\n]+\n[^#\n]+#xywh=(\d+),(\d+),(\d+),(\d+)/g;
  return [...vtt.matchAll(re)].map((m) => ({
    start: Number(m[1]) * 3600 + Number(m[2]) * 60 + Number(m[3]) + Number(m[4]) / 1000,
    x: Number(m[5]), y: Number(m[6]), w: Number(m[7]), h: Number(m[8]),
  }));
}
const cueFor = (cues, t) => cues.filter((c) => c.start <= t).pop() || cues[0];

/** Plays the recording on a watch page and waits for its duration and the sprite's cues. */
async function playRecording(page, url) {
  await page.goto(url);
  await page.waitForFunction(() => document.body.dataset.state === 'ready', null, { timeout: 15000 });
  await page.click('#play');
  await page.waitForFunction(() => {
    const v = document.querySelector('#player');
    return window.vshareWatch.mode === 'vod' && Number.isFinite(v.duration) && v.duration > 0
      && window.vshareWatch.scrub.cues > 0 && !document.querySelector('#seek').hidden;
  }, null, { timeout: 20000 });
  await page.evaluate(() => document.querySelector('#player').pause());
}

/** Where the seek bar is, and the x of a fraction of it. */
async function bar(page) {
  const b = await page.locator('#seek').boundingBox();
  return { ...b, at: (f) => b.x + f * b.width, y: b.y + b.height / 2 };
}

/** What the preview shows now, and where. */
const preview = (page) => page.evaluate(() => {
  const p = document.querySelector('.seek-preview');
  const tile = document.querySelector('.seek-tile');
  const r = p.getBoundingClientRect();
  const s = document.querySelector('#seek').getBoundingClientRect();
  const v = document.querySelector('#player');
  return {
    shown: !p.hidden, tile: !tile.hidden, time: window.vshareWatch.scrub.time,
    label: document.querySelector('.seek-time').textContent,
    position: tile.style.backgroundPosition, image: tile.style.backgroundImage,
    width: tile.offsetWidth, height: tile.offsetHeight,
    center: r.left + r.width / 2, bottom: r.bottom, bar_top: s.top,
    duration: v.duration, current: v.currentTime,
    fill: parseFloat(document.querySelector('.seek-fill').style.width),
  };
});

/** The preview once it shows the time at the fraction `f` (pointer events come with frames). */
const previewAt = (page, f, what) => until(what, 5000, async () => {
  const p = await preview(page);
  return p.shown && Math.abs(p.time - f * p.duration) < p.duration / 100 ? p : null;
});

/** The preview's tile matches the track's cue for the time it shows, above the pointer at x. */
function checkTile(p, cues, x, want) {
  check(p.shown && p.tile, `the preview with a tile: ${JSON.stringify(p)}`);
  check(Math.abs(p.time - want * p.duration) < p.duration / 100, `the preview's time is ${want} of the duration: ${JSON.stringify(p)}`);
  const cue = cueFor(cues, p.time);
  const [bx, by] = p.position.split(' ').map(parseFloat);
  check(Math.abs(bx + cue.x) < 0.5 && Math.abs(by + cue.y) < 0.5 && p.width === cue.w && p.height === cue.h,
    `the tile of the cue at ${cue.start} s (${JSON.stringify(cue)}): ${JSON.stringify(p)}`);
  check(p.bottom <= p.bar_top + 0.5 && Math.abs(p.center - x) < cue.w / 2 + 2, `the preview above the pointer at ${x}: ${JSON.stringify(p)}`);
  return { ...p, cue };
}

/** Whether the sprite image the tiles name loads, and its size. */
const spriteImage = (page) => page.evaluate(async () => {
  const url = window.vshareWatch.scrub.image;
  const img = new Image();
  img.src = url;
  try {
    await img.decode();
  } catch {
    return { url, loaded: false };
  }
  return { url, loaded: true, width: img.naturalWidth, height: img.naturalHeight };
});

const errors = [];
const shots = screenshotDir();
const browser = await launch();
let ffmpeg;
try {
  const ctx = await phone(browser, { hasTouch: true });
  const page = await ctx.newPage();
  watchErrors(page, 'library', errors);
  await signUp(page, base, 'scrubber', 'a long password', '/library');
  const key = await page.evaluate(async () => (await fetch('/api/v1/me/stream-key', { method: 'POST' })).json());
  check(key.publish_url, `a publish URL: ${JSON.stringify(key)}`);
  ffmpeg = spawn('ffmpeg', ['-hide_banner', '-loglevel', 'error', '-re', '-i', clip, '-c', 'copy', '-f', 'flv', key.publish_url],
    { stdio: ['ignore', 'ignore', 'inherit'] });
  const code = await new Promise((resolve) => ffmpeg.on('exit', resolve));
  check(code === 0, `ffmpeg exited with ${code}`);
  const mine = () => page.evaluate(async () => (await fetch('/api/v1/me/videos')).json());
  const video = await until('the recording', 30000, async () => (await mine()).find((v) => v.state === 'ready'));
  const id = video.id;

  const vtt = await (await fetch(`${base}/vod/${id}/sprite.vtt`)).text();
  const cues = cuesOf(vtt);
  check(cues.length >= 4, `a sprite track with a few cues: ${vtt}`);

  // Mouse: hover at 25 % and 75 %, then a click seeks.
  const watch = await ctx.newPage();
  watchErrors(watch, 'watch', errors);
  const requests = [];
  watch.on('request', (r) => requests.push(new URL(r.url()).pathname));
  await playRecording(watch, `${base}/watch/${id}`);
  check(requests.includes(`/vod/${id}/sprite.vtt`), `the page loaded the track: ${requests.join(' ')}`);
  const loaded = await watch.evaluate(() => window.vshareWatch.scrub.cues);
  check(loaded === cues.length, `the page read all ${cues.length} cues: ${loaded} of ${vtt}`);
  const image = await spriteImage(watch);
  check(image.loaded, `the sprite image loads: ${JSON.stringify(image)}`);
  check(cues.every((c) => c.x + c.w <= image.width && c.y + c.h <= image.height), `every tile within the sprite: ${JSON.stringify(image)}`);
  const b = await bar(watch);
  const hover = {};
  for (const f of [0.25, 0.75]) {
    await watch.mouse.move(b.at(f), b.y);
    hover[f] = checkTile(await previewAt(watch, f, `the preview at ${f * 100} %`), cues, b.at(f), f);
    await watch.screenshot({ path: join(shots, `scrub-hover-${f * 100}.png`) });
  }
  check(hover[0.25].position !== hover[0.75].position, `different tiles at 25 % and 75 %: ${JSON.stringify(hover)}`);
  await watch.mouse.move(b.at(0.5), b.y + 200);
  await until('the preview to go when the pointer leaves', 5000, async () => !(await preview(watch)).shown);
  await watch.mouse.click(b.at(0.4), b.y);
  const clicked = await until('the click to seek', 10000, async () => {
    const p = await preview(watch);
    return Math.abs(p.current - 0.4 * p.duration) < 0.5 ? p : null;
  });
  check(Math.abs(clicked.fill - 40) < 2, `the bar shows the new time: ${JSON.stringify(clicked)}`);

  // Touch: a drag from 20 % to 75 % shows the tile under the finger and seeks when it lifts.
  const cdp = await ctx.newCDPSession(watch);
  const touch = (type, x) => cdp.send('Input.dispatchTouchEvent', { type, touchPoints: type === 'touchEnd' ? [] : [{ x, y: b.y }] });
  await touch('touchStart', b.at(0.2));
  for (const f of [0.3, 0.5, 0.75]) await touch('touchMove', b.at(f));
  const dragging = checkTile(await previewAt(watch, 0.75, 'the preview under the finger at 75 %'), cues, b.at(0.75), 0.75);
  await watch.screenshot({ path: join(shots, 'scrub-touch.png') });
  await touch('touchEnd');
  const dropped = await until('the drag to seek', 10000, async () => {
    const p = await preview(watch);
    return Math.abs(p.current - 0.75 * p.duration) < 0.5 ? p : null;
  });
  check(!dropped.shown, `the preview goes when the finger lifts: ${JSON.stringify(dropped)}`);

  // Keys: Home goes to the start, an arrow steps 5 s.
  await watch.focus('#seek');
  await watch.keyboard.press('Home');
  await watch.keyboard.press('ArrowRight');
  const keys = await until('the keys to seek', 10000, async () => {
    const p = await preview(watch);
    return Math.abs(p.current - 5) < 0.5 ? p : null;
  });

  // A private video: the track and the sprite under the signed link, refused without it.
  const priv = await page.evaluate(async (vid) => {
    const r = await fetch(`/api/v1/videos/${vid}`, { method: 'PATCH', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ visibility: 'private' }) });
    if (!r.ok) return { error: r.status };
    return (await fetch(`/api/v1/videos/${vid}/link`)).json();
  }, id);
  check(priv.query, `a signed link: ${JSON.stringify(priv)}`);
  const anonVtt = await fetch(`${base}/vod/${id}/sprite.vtt`);
  check(anonVtt.status === 403, `the private track is refused without the link: ${anonVtt.status}`);
  const other = await browser.newContext({ viewport: { width: 390, height: 844 } });
  const anon = await other.newPage();
  watchErrors(anon, 'watch-private', errors);
  await playRecording(anon, `${base}/watch/${id}?${priv.query}`);
  const privImage = await spriteImage(anon);
  check(privImage.loaded && /[?&]sig=/.test(privImage.url), `the private sprite loads under the link: ${JSON.stringify(privImage)}`);
  const pb = await bar(anon);
  await anon.mouse.move(pb.at(0.75), pb.y);
  const privTile = checkTile(await previewAt(anon, 0.75, 'the private preview at 75 %'), cues, pb.at(0.75), 0.75);
  await other.close();

  console.log(`RESULT ${JSON.stringify({ id, cues: cues.length, image, hover, clicked, dragging, dropped, keys: keys.current,
    private: { image: { ...privImage, url: privImage.url.replace(/sig=[0-9a-f]+/, 'sig=…') }, tile: privTile }, errors })}`);
} finally {
  if (ffmpeg && ffmpeg.exitCode === null) ffmpeg.kill();
  await browser.close();
}
