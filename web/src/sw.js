// Service worker for Web Push (docs/proxy.md): each push is the proxy's notification JSON
// {event, video_id, source, records}; it becomes a system notification that opens the video.
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
    data: { url: n.video_id ? `/watch/${encodeURIComponent(n.video_id)}` : '/' },
  }));
});

self.addEventListener('notificationclick', (event) => {
  event.notification.close();
  event.waitUntil(self.clients.openWindow(event.notification.data?.url || '/'));
});
