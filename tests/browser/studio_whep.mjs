// The studio publishing over the upload protocol (its default) while a second phone plays the
// stream over WHEP: sign up, open /studio?source=clock (the burnt-in clock canvas and the fake
// microphone's Opus), Go live, play the stream with WHEP from another page, Stop. Reports the
// player's stats and the key frames the server asked the studio for.
// Env: VSHARE_HTTP, MIN_FRAMES, WAIT_MS. Prints `RESULT {json}`.
import { launch, phone, playWhep, signUp } from './lib.mjs';

const base = process.env.VSHARE_HTTP;
const minFrames = Number(process.env.MIN_FRAMES || 60);
const waitMs = Number(process.env.WAIT_MS || 20000);
if (!base) {
  console.error('set VSHARE_HTTP');
  process.exit(2);
}

const browser = await launch(['--disable-features=WebRtcHideLocalIpsWithMdns', '--allow-loopback-in-peer-connection']);
try {
  const studio = await (await phone(browser)).newPage();
  const errors = [];
  studio.on('pageerror', (e) => errors.push(e.message));
  await signUp(studio, base, `whep${Date.now() % 1_000_000}`, 'correct horse battery staple', '/studio?source=clock');
  await studio.waitForFunction(() => document.body.dataset.state === 'ready', null, { timeout: 20000 });
  await studio.click('#start');
  await studio.waitForFunction(() => document.body.dataset.state === 'live', null, { timeout: 20000 });
  await studio.waitForFunction(() => (document.body.dataset.attributes || '').includes('live'), null, { timeout: 20000 });
  const videoId = await studio.evaluate(() => window.vshareStudio.videoId);
  const before = await studio.evaluate(() => window.vshareStudio.client.keyframeRequests);
  const viewer = await (await phone(browser)).newPage();
  await viewer.goto(`${base}/api/v1/videos/${videoId}`);
  const played = await playWhep(viewer, videoId, minFrames, waitMs);
  const keyframeRequests = await studio.evaluate(() => window.vshareStudio.client.keyframeRequests);
  await studio.click('#stop');
  await studio.waitForFunction(() => document.body.dataset.state === 'ended', null, { timeout: 30000 });
  console.log(`RESULT ${JSON.stringify({ videoId, played, keyframeRequestsBefore: before, keyframeRequests, errors })}`);
} finally {
  await browser.close();
}
