// Service worker for Web Push (docs/proxy.md): each push is the proxy's notification JSON
// {event, video_id, source, records}; it becomes a system notification that opens the video's
// watch page when tapped: an open tab of it is focused, else a new one opens. The page's URL
// is absolute on this worker's origin, the server's that served the watch page and registered
// it, whichever host the push itself came through (the proxy's).

/** The watch page of a video, absolute on this worker's origin. */
function watchUrl(videoId) {
  const path = videoId ? `/watch/${encodeURIComponent(videoId)}` : '/';
  return new URL(path, self.location.origin).href;
}

/** A notification's target, kept on this origin (data from elsewhere cannot send it off-site). */
function targetUrl(data) {
  const origin = self.location.origin;
  let u;
  try {
    u = new URL((data && data.url) || '/', origin);
  } catch {
    u = new URL('/', origin);
  }
  return u.origin === origin ? u.href : new URL('/', origin).href;
}

self.addEventListener('push', (event) => {
  let n = {};
  try {
    n = event.data ? event.data.json() : {};
  } catch {
    n = { text: event.data ? event.data.text() : '' };
  }
  const live = (n.records || []).some((r) => r.kind === 'live');
  const rec = (n.records || [])[0] || {};
  const title = live ? `${n.source || 'A source'} is live` : `New video from ${n.source || 'a source'}`;
  const facts = [rec.title, rec.width ? `${rec.width}×${rec.height}` : '', rec.duration_ms ? `${Math.round(rec.duration_ms / 1000)} s` : '']
    .filter(Boolean).join(' · ');
  event.waitUntil(self.registration.showNotification(title, {
    body: facts || n.text || 'Tap to watch',
    tag: n.video_id || undefined,
    data: { url: watchUrl(n.video_id) },
  }));
});

self.addEventListener('notificationclick', (event) => {
  event.notification.close();
  const url = targetUrl(event.notification.data);
  const path = new URL(url).pathname;
  event.waitUntil((async () => {
    const tabs = await self.clients.matchAll({ type: 'window', includeUncontrolled: true });
    // The same watch page, a private link's query or not.
    const open = tabs.find((c) => {
      try {
        const u = new URL(c.url);
        return u.origin === self.location.origin && u.pathname === path;
      } catch {
        return false;
      }
    });
    if (open && typeof open.focus === 'function') return open.focus();
    return self.clients.openWindow(url);
  })());
});
