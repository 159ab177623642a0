// The service worker's push and notificationclick handlers, run against a fake `self`.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import vm from 'node:vm';

const source = readFileSync(new URL('../src/sw.js', import.meta.url), 'utf8');

/** Loads sw.js with a fake `self` on `origin`, whose window clients are `tabs`. */
function worker(origin, tabs = []) {
  const handlers = {};
  const log = { shown: [], opened: [], focused: [], matchAll: [] };
  const self = {
    location: new URL(`${origin}/app/sw.js`),
    addEventListener: (type, f) => { handlers[type] = f; },
    registration: { showNotification: async (title, opts) => { log.shown.push({ title, opts }); } },
    clients: {
      matchAll: async (opts) => {
        log.matchAll.push(opts);
        return tabs.map((url) => ({ url, focus: async () => { log.focused.push(url); return url; } }));
      },
      openWindow: async (url) => { log.opened.push(url); return { url }; },
    },
  };
  vm.runInNewContext(source, { self, URL, console });
  /** Dispatches an event; resolves once its waitUntil promise settled. */
  const dispatch = async (type, event) => {
    let wait = Promise.resolve();
    handlers[type]({ ...event, waitUntil: (p) => { wait = p; } });
    await wait;
  };
  return { dispatch, log };
}

const push = (obj) => ({ data: { json: () => obj, text: () => JSON.stringify(obj) } });

test('a push becomes a notification that names the watch page on the worker origin', async () => {
  const w = worker('https://vshare.example');
  await w.dispatch('push', push({
    event: 'live', video_id: 'ab c/1', source: 'alice',
    records: [{ kind: 'live', url: 'https://live.other.example/live/x/index.m3u8', title: 'Beach', width: 640, height: 360 }],
  }));
  assert.equal(w.log.shown.length, 1);
  const { title, opts } = w.log.shown[0];
  assert.equal(title, 'alice is live');
  assert.equal(opts.body, 'Beach · 640×360');
  assert.equal(opts.tag, 'ab c/1');
  // Absolute, on the origin that registered the worker, not the records' live host.
  assert.equal(opts.data.url, 'https://vshare.example/watch/ab%20c%2F1');
});

test('tapping opens the watch page when no tab has it', async () => {
  const w = worker('https://vshare.example', ['https://vshare.example/watch/other']);
  let closed = false;
  await w.dispatch('notificationclick', {
    notification: { data: { url: 'https://vshare.example/watch/v1' }, close: () => { closed = true; } },
  });
  assert.ok(closed);
  assert.deepEqual(w.log.opened, ['https://vshare.example/watch/v1']);
  assert.deepEqual(w.log.focused, []);
  // Windows the worker does not control (the watch page is outside its /app/ scope) count.
  assert.deepEqual(JSON.parse(JSON.stringify(w.log.matchAll)), [{ type: 'window', includeUncontrolled: true }]);
});

test('tapping focuses a tab already on the watch page, a private link too', async () => {
  const w = worker('https://vshare.example', [
    'https://vshare.example/studio',
    'https://vshare.example/watch/v1?exp=1&sig=abc',
  ]);
  await w.dispatch('notificationclick', {
    notification: { data: { url: 'https://vshare.example/watch/v1' }, close: () => {} },
  });
  assert.deepEqual(w.log.focused, ['https://vshare.example/watch/v1?exp=1&sig=abc']);
  assert.deepEqual(w.log.opened, []);
});

test('an old relative URL opens on this origin; another origin is not followed', async () => {
  const w = worker('http://127.0.0.1:8080');
  await w.dispatch('notificationclick', { notification: { data: { url: '/watch/v2' }, close: () => {} } });
  await w.dispatch('notificationclick', { notification: { data: { url: 'https://evil.example/x' }, close: () => {} } });
  await w.dispatch('notificationclick', { notification: { data: null, close: () => {} } });
  assert.deepEqual(w.log.opened, [
    'http://127.0.0.1:8080/watch/v2',
    'http://127.0.0.1:8080/',
    'http://127.0.0.1:8080/',
  ]);
});
