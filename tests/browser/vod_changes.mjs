// A recording whose picture size changed mid-stream, played by the watch page (hls.js) to its
// end: prints where it stopped, what it buffered and hls.js's errors, for the test to judge.
// Env: VSHARE_HTTP (server base URL), VIDEO (video id). Prints `RESULT {json}`.

import { launch, phone, until } from './lib.mjs';

const base = process.env.VSHARE_HTTP;
const id = process.env.VIDEO;
if (!base || !id) {
  console.error('set VSHARE_HTTP and VIDEO');
  process.exit(2);
}

const state = (page) => page.evaluate(() => {
  const v = document.querySelector('#player');
  return { t: v.currentTime, duration: v.duration, ended: v.ended, engine: window.vshareWatch.engine,
    errors: window.vshareWatch.errors,
    buffered: Array.from({ length: v.buffered.length }, (_, i) => [v.buffered.start(i), v.buffered.end(i)]) };
});

const browser = await launch();
try {
  const page = await (await phone(browser)).newPage();
  await page.goto(`${base}/watch/${id}`);
  await page.waitForFunction(() => document.body.dataset.state === 'ready', null, { timeout: 20000 });
  await page.click('#play');
  await until('playback', 15000, async () => (await state(page)).t > 0);
  await page.evaluate(() => { document.querySelector('#player').playbackRate = 2; });
  let last = null;
  await until('the recording to play to its end', 40000, async () => {
    last = await state(page);
    return last.ended ? last : null;
  }).catch((e) => {
    throw new Error(`${e.message}; player: ${JSON.stringify(last)}`);
  });
  console.log(`RESULT ${JSON.stringify(last)}`);
} finally {
  await browser.close();
}
