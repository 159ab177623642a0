// The Share dialog shows how many SMS a share costs before it is sent: opened from the library
// of a signed-in user, it reads the count the server computes (share-preview) for each form,
// compact and full. Env: VSHARE_HTTP (server base URL), VIDEO (video id), SESSION (the owner's
// session token). Prints `RESULT {json}`: the dialog's text and count per form.

import { launch, phone, check } from './lib.mjs';

const base = process.env.VSHARE_HTTP;
const id = process.env.VIDEO;
const session = process.env.SESSION;
if (!base || !id || !session) {
  console.error('set VSHARE_HTTP, VIDEO and SESSION');
  process.exit(2);
}

const browser = await launch();
try {
  const context = await phone(browser);
  await context.addCookies([{ name: 'vshare_session', value: session, url: base }]);
  const page = await context.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(e.message));
  await page.goto(`${base}/library`);
  await page.waitForSelector(`li[data-id="${id}"]`);
  await page.click(`li[data-id="${id}"] details summary`);
  await page.click(`li[data-id="${id}"] button.share`);
  await page.waitForSelector('#share-dialog[open]');
  // Waits for the count of the form and size now chosen (a new count replaces data-parts).
  const count = async () => {
    await page.waitForFunction(() => document.querySelector('#share-parts').dataset.parts, null,
      { timeout: 15000 });
    return page.evaluate(() => {
      const p = document.querySelector('#share-parts');
      return { parts: Number(p.dataset.parts), text: p.textContent };
    });
  };
  const result = {};
  for (const form of ['text', 'wap-si']) {
    await page.selectOption('#share-as', form);
    result[form] = await count();
    await page.check('#share-full');
    result[`${form}-full`] = await count();
    await page.uncheck('#share-full');
  }
  check(errors.length === 0, `page errors: ${errors.join('; ')}`);
  console.log(`RESULT ${JSON.stringify(result)}`);
} finally {
  await browser.close();
}
