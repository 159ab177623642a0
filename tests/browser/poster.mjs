// The poster in Chromium: a user signs up, publishes a clip over RTMP with ffmpeg in real time,
// and sees the poster on the watch page before play (live, then the recording) and in the
// library. Env: VSHARE_HTTP (server base URL), CLIP (a file to publish). Prints `RESULT {json}`.

import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { check, launch, phone, screenshotDir, signUp, until, watchErrors } from './lib.mjs';

const base = process.env.VSHARE_HTTP;
const clip = process.env.CLIP;
if (!base || !clip) {
  console.error('set VSHARE_HTTP and CLIP');
  process.exit(2);
}

/** The watch page's poster before play: its URL, whether the image loaded, and its size. */
const posterState = (page) => page.evaluate(async () => {
  const v = document.querySelector('#player');
  const url = v.poster;
  if (!url) return null;
  const img = new Image();
  img.src = url;
  try {
    await img.decode();
  } catch {
    return { url, loaded: false };
  }
  return { url, loaded: true, width: img.naturalWidth, height: img.naturalHeight,
    paused: v.paused, time: v.currentTime, src: v.currentSrc, mode: window.vshareWatch.mode };
});

const errors = [];
const shots = screenshotDir();
const browser = await launch();
let ffmpeg;
try {
  const ctx = await phone(browser);
  const page = await ctx.newPage();
  watchErrors(page, 'library', errors);
  await signUp(page, base, 'posterfan', 'a long password', '/library');
  const key = await page.evaluate(async () => {
    const r = await fetch('/api/v1/me/stream-key', { method: 'POST' });
    return r.json();
  });
  check(key.publish_url, `a publish URL: ${JSON.stringify(key)}`);
  ffmpeg = spawn('ffmpeg', ['-hide_banner', '-loglevel', 'error', '-re', '-i', clip, '-c', 'copy', '-f', 'flv', key.publish_url],
    { stdio: ['ignore', 'ignore', 'inherit'] });
  const exited = new Promise((resolve) => ffmpeg.on('exit', resolve));
  const mine = () => page.evaluate(async () => (await fetch('/api/v1/me/videos')).json());
  const live = await until('the live video with a poster', 20000, async () =>
    (await mine()).find((v) => v.state === 'live' && v.attributes.some((a) => a.poster)));

  const watch = await ctx.newPage();
  watchErrors(watch, 'watch', errors);
  await watch.goto(`${base}/watch/${live.id}`);
  const livePoster = await until('the live poster on the watch page', 15000, async () => {
    const s = await posterState(watch);
    return s && s.loaded ? s : null;
  });
  await watch.screenshot({ path: join(shots, 'poster-watch-live.png') });

  const code = await exited;
  check(code === 0, `ffmpeg exited with ${code}`);
  await until('the recording', 30000, async () => (await mine()).find((v) => v.id === live.id && v.state === 'ready'));
  await watch.reload();
  await watch.waitForFunction(() => document.body.dataset.state === 'ready', null, { timeout: 15000 });
  const vodPoster = await until('the recording\'s poster on the watch page', 15000, async () => {
    const s = await posterState(watch);
    return s && s.loaded ? s : null;
  });
  await watch.screenshot({ path: join(shots, 'poster-watch-vod.png') });

  await page.goto(`${base}/library`);
  const library = await until('the poster in the library', 15000, () => page.evaluate(() => {
    const img = document.querySelector('.video-card img.poster');
    return img && img.complete && img.naturalWidth > 0
      ? { src: img.currentSrc, width: img.naturalWidth, height: img.naturalHeight, shown: img.getBoundingClientRect().width }
      : null;
  }));
  await page.screenshot({ path: join(shots, 'poster-library.png') });
  console.log(`RESULT ${JSON.stringify({ id: live.id, live: livePoster, vod: vodPoster, library, errors })}`);
} finally {
  if (ffmpeg && ffmpeg.exitCode === null) ffmpeg.kill();
  await browser.close();
}
