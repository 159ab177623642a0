// Shared by the browser tests and the glass-to-glass benchmark: Chromium through playwright-core
// (installed in web/node_modules by `npm ci`), with a fake camera and microphone.
import { createRequire } from 'node:module';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';

const require = createRequire(new URL('../../web/package.json', import.meta.url));
let playwright;
try {
  playwright = require('playwright-core');
} catch {
  console.error('playwright-core is not installed: run `npm ci` in web/ (scripts/setup.sh --test does)');
  process.exit(2);
}

export const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';

/** Flags that work headless on the CI machines, plus a 30 fps fake camera and microphone. */
export const CHROMIUM_ARGS = [
  '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
  '--use-fake-device-for-media-stream=fps=30', '--use-fake-ui-for-media-stream',
  '--autoplay-policy=no-user-gesture-required',
];

export async function launch(extraArgs = []) {
  return playwright.chromium.launch({ executablePath: CHROMIUM, headless: true, args: [...CHROMIUM_ARGS, ...extraArgs] });
}

/** A phone-sized browser context (the pages are mobile first). */
export async function phone(browser, opts = {}) {
  return browser.newContext({ viewport: { width: 390, height: 844 }, deviceScaleFactor: 1, ...opts });
}

/** Logs a page's errors under a name, and keeps them for the final check. */
export function watchErrors(page, name, sink) {
  page.on('pageerror', (e) => {
    sink.push(`${name}: ${e.message}`);
    console.log(`[${name}] page error: ${e.message}`);
  });
  page.on('console', (m) => {
    if (m.type() === 'error' && !/status of (401|403|404)/.test(m.text())) {
      sink.push(`${name}: console: ${m.text()}`);
    }
    if (process.env.VERBOSE) console.log(`[${name}] ${m.type()}: ${m.text()}`);
  });
}

export function screenshotDir() {
  const dir = process.env.SCREENSHOTS || join(process.cwd(), 'target', 'browser-screenshots');
  mkdirSync(dir, { recursive: true });
  return dir;
}

/** Throws with `message` (and what was seen) unless `cond`. */
export function check(cond, message) {
  if (!cond) throw new Error(`check failed: ${message}`);
}

export async function getJson(url) {
  const r = await fetch(url);
  const text = await r.text();
  if (!r.ok) throw new Error(`GET ${url}: ${r.status} ${text}`);
  return JSON.parse(text);
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Polls `f` until it returns a truthy value. */
export async function until(what, timeoutMs, f) {
  const end = Date.now() + timeoutMs;
  let last;
  for (;;) {
    try {
      last = await f();
      if (last) return last;
    } catch (e) {
      last = e.message;
    }
    if (Date.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what} (last: ${JSON.stringify(last)})`);
    await sleep(200);
  }
}

/** Signs up through the page (sign-in page, "Create account" tab); lands on `next`. */
export async function signUp(page, base, username, password, next = '/studio') {
  await page.goto(`${base}/signin?mode=signup&next=${encodeURIComponent(next)}`);
  await page.fill('#username', username);
  await page.fill('#password', password);
  await page.click('#submit');
  await page.waitForURL((u) => u.pathname === next.split('?')[0], { timeout: 15000 });
}
