// The studio publishing over WebRTC (WHIP) instead of the upload protocol: sign up, open
// /studio?source=clock&protocol=whip (the burnt-in clock canvas), Go live, wait for the live
// record, publish PUBLISH_MS, Stop, and wait for the recording's records.
// Env: VSHARE_HTTP, PUBLISH_MS. Prints `RESULT {json}`.
import { launch, phone, signUp, sleep } from './lib.mjs';

const base = process.env.VSHARE_HTTP;
const publishMs = Number(process.env.PUBLISH_MS || 6000);
if (!base) {
  console.error('set VSHARE_HTTP');
  process.exit(2);
}

const browser = await launch(['--disable-features=WebRtcHideLocalIpsWithMdns', '--allow-loopback-in-peer-connection']);
try {
  const page = await (await phone(browser)).newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(e.message));
  await signUp(page, base, `whip${Date.now() % 1_000_000}`, 'correct horse battery staple', '/studio?source=clock&protocol=whip');
  await page.waitForFunction(() => document.body.dataset.state === 'ready', null, { timeout: 20000 });
  const offered = await page.evaluate(() => ({
    shown: !document.querySelector('#over-webrtc-row').hidden,
    checked: document.querySelector('#over-webrtc').checked,
  }));
  await page.click('#start');
  await page.waitForFunction(() => document.body.dataset.state === 'live', null, { timeout: 20000 });
  await page.waitForFunction(() => (document.body.dataset.attributes || '').includes('live'), null, { timeout: 20000 });
  await sleep(publishMs);
  const sent = await page.evaluate(() => window.vshareStudio.whip.stats());
  const videoId = await page.evaluate(() => window.vshareStudio.videoId);
  await page.click('#stop');
  await page.waitForFunction(() => document.body.dataset.state === 'ended', null, { timeout: 30000 });
  const after = await page.evaluate(() => ({
    attributes: document.body.dataset.attributes,
    watch: document.querySelector('#watch-href').textContent,
    state: document.body.dataset.state,
  }));
  console.log(`RESULT ${JSON.stringify({ offered, sent, videoId, after, errors })}`);
} finally {
  await browser.close();
}
