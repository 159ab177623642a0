// The studio over https in headless Chromium that trusts the server's self-signed certificate
// by its SPKI hash only (`--ignore-certificate-errors-spki-list`, what an operator can pin):
// the page is a secure context, so the camera (getUserMedia) and WebCodecs are there, as a
// phone's browser gives them only to a secure page; a page of the same host over plain HTTP is
// not one. Without the pin the https page does not load.
// Env: VSHARE_HTTP (https base URL), PLAIN (plain-HTTP base URL of the same host), CERT (the
// server's PEM certificate), MAP (`NAME IP`: where the host name resolves). Prints `RESULT {json}`.

import { readFileSync } from 'node:fs';
import { X509Certificate, createHash } from 'node:crypto';
import { launch, phone } from './lib.mjs';

const { VSHARE_HTTP: base, PLAIN: plain, CERT: certFile, MAP: map } = process.env;
if (!base || !plain || !certFile || !map) {
  console.error('set VSHARE_HTTP, PLAIN, CERT and MAP');
  process.exit(2);
}
const resolve = `--host-resolver-rules=MAP ${map}`;
const spki = createHash('sha256')
  .update(new X509Certificate(readFileSync(certFile)).publicKey.export({ type: 'spki', format: 'der' }))
  .digest('base64');

const result = {};
let browser = await launch([resolve]);
try {
  const page = await (await phone(browser)).newPage();
  await page.goto(`${base}/studio`).then(
    () => { result.untrusted = 'loaded'; },
    (e) => { result.untrusted = e.message.split('\n')[0]; },
  );
} finally {
  await browser.close();
}

browser = await launch([resolve, `--ignore-certificate-errors-spki-list=${spki}`]);
try {
  const page = await (await phone(browser)).newPage();
  await page.goto(`${plain}/signin`);
  result.plain = await page.evaluate(() => ({
    secure: window.isSecureContext,
    camera: typeof navigator.mediaDevices?.getUserMedia,
  }));
  // Sign up from the page (its Secure session cookie is kept over https), then the studio.
  await page.goto(`${base}/signin`);
  result.signup = await page.evaluate(async () => (await fetch('/api/v1/accounts', {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ username: 'phone', password: 'a long enough password' }),
  })).status);
  const resp = await page.goto(`${base}/studio`);
  result.status = resp.status();
  result.hsts = resp.headers()['strict-transport-security'] || null;
  await page.waitForLoadState('networkidle');
  Object.assign(result, await page.evaluate(async () => {
    const r = {
      path: location.pathname,
      secure: window.isSecureContext,
      protocol: location.protocol,
      video_encoder: typeof VideoEncoder,
    };
    try {
      const s = await navigator.mediaDevices.getUserMedia({ video: true, audio: true });
      r.tracks = s.getTracks().map((t) => t.kind).sort();
      s.getTracks().forEach((t) => t.stop());
    } catch (e) {
      r.camera_error = String(e);
    }
    return r;
  }));
} finally {
  await browser.close();
}
console.log(`RESULT ${JSON.stringify(result)}`);
