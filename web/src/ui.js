// Small DOM helpers shared by the pages (no framework: the pages are small).

/** Creates an element: h('a', {href: '/x', class: 'button'}, 'text', child…). */
export function h(tag, props = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(props || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (k === 'class') el.className = v;
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else if (v === true) el.setAttribute(k, '');
    else el.setAttribute(k, v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : String(c));
  }
  return el;
}

export const $ = (sel, root = document) => root.querySelector(sel);

export function formatBytes(n) {
  if (!Number.isFinite(n)) return '–';
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  if (n < 1024 ** 3) return `${(n / 1024 / 1024).toFixed(1)} MiB`;
  return `${(n / 1024 ** 3).toFixed(2)} GiB`;
}

export function formatKbps(bitsPerSecond) {
  if (!Number.isFinite(bitsPerSecond)) return '–';
  if (bitsPerSecond >= 1e6) return `${(bitsPerSecond / 1e6).toFixed(2)} Mbit/s`;
  return `${Math.round(bitsPerSecond / 1000)} kbit/s`;
}

export function formatDuration(ms) {
  if (!Number.isFinite(ms)) return '–';
  const s = Math.round(ms / 100) / 10;
  if (s < 60) return `${s.toFixed(1)} s`;
  const m = Math.floor(s / 60);
  return `${m} min ${Math.round(s - m * 60)} s`;
}

const FORMAT_NAMES = {
  'll-hls': 'Live (LL-HLS)', whep: 'Live (WebRTC)', hls: 'HLS', mp4: 'MP4', webm: 'WebM', '3gp': '3GP',
};

/** One attribute record as a table: what the server measured. */
export function attributesTable(r) {
  const rows = [
    ['Format', FORMAT_NAMES[r.format] || r.format],
    ['Address', h('a', { href: r.url, class: 'mono' }, r.url)],
    ['Codecs', r.codecs],
    ['Resolution', r.width && r.height ? `${r.width} × ${r.height}` : '–'],
    ['Frame rate', r.frame_rate ? `${Number(r.frame_rate).toFixed(2)} fps` : '–'],
    ['Bitrate', formatKbps(r.bitrate)],
    ['Size', formatBytes(r.size)],
    ['Duration', formatDuration(r.duration_ms)],
    ['Audio', r.audio_sample_rate ? `${r.audio_sample_rate} Hz, ${r.audio_channels} ch` : 'none'],
  ];
  // A live stream's DVR window: how far back a viewer can rewind while it is live.
  if (r.dvr) {
    const back = r.dvr % 3600 === 0 ? `${r.dvr / 3600} h` : r.dvr >= 60 ? `${Math.round(r.dvr / 60)} min` : `${r.dvr} s`;
    rows.push(['Rewind', `up to ${back} back`]);
  }
  // Frames the live send dropped on a bad uplink, on their way into the recording.
  if (r.frames_coming) rows.push(['Still coming', `${r.frames_coming} frames`]);
  return h('table', { class: 'attrs', dataset: { format: r.format, kind: r.kind } },
    rows.map(([k, v]) => h('tr', {}, h('th', {}, k), h('td', {}, v))));
}

/** All records of a video, each with a heading. */
export function attributesList(records) {
  if (!records || records.length === 0) return h('p', { class: 'muted' }, 'No attribute data yet.');
  return h('div', {}, records.map((r) => h('div', { class: 'record' },
    h('h2', {}, `${r.kind === 'live' ? 'Live stream' : 'Recording'} · ${FORMAT_NAMES[r.format] || r.format}`),
    attributesTable(r))));
}

export function stateBadge(state, isPublic = true) {
  const badges = [h('span', { class: `badge ${state}` }, state)];
  if (isPublic === false) badges.push(' ', h('span', { class: 'badge private' }, 'private'));
  return badges;
}

let toastTimer = null;
export function toast(text) {
  let el = $('.toast');
  if (!el) {
    el = h('div', { class: 'toast', role: 'status' });
    document.body.append(el);
  }
  el.textContent = text;
  el.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => { el.hidden = true; }, 2500);
}

/** Copies text to the clipboard (with a fallback for browsers without the async API). */
export async function copyText(text) {
  try {
    await navigator.clipboard.writeText(text);
  } catch {
    const ta = h('textarea', { readonly: true }, text);
    ta.style.position = 'fixed';
    ta.style.opacity = '0';
    document.body.append(ta);
    ta.select();
    document.execCommand('copy');
    ta.remove();
  }
  toast('Copied');
}

/** One video as a list item linking to its watch page. */
/** A video's poster URL (from its attribute records), or undefined. */
export function posterOf(v) {
  return (v.attributes.find((a) => a.poster) || {}).poster;
}

export function videoItem(v, extra = []) {
  const best = v.attributes.find((a) => a.kind === 'vod' && a.format === 'mp4') || v.attributes[0];
  const facts = [];
  if (best) {
    if (best.width) facts.push(`${best.width}×${best.height}`);
    if (best.duration_ms) facts.push(formatDuration(best.duration_ms));
  }
  facts.push(new Date(v.created_at).toLocaleString());
  const href = `/watch/${encodeURIComponent(v.id)}`;
  const poster = posterOf(v);
  return h('li', { class: 'video-card', dataset: { id: v.id, state: v.state } },
    poster && h('a', { href, class: 'poster-link', tabindex: '-1', 'aria-hidden': 'true' },
      h('img', { class: 'poster', src: poster, alt: '', loading: 'lazy', decoding: 'async' })),
    h('div', { class: 'row' }, stateBadge(v.state, v.visibility ? v.visibility === 'public' : true),
      h('a', { class: 'title', href }, v.title || `Video ${v.id}`)),
    h('div', { class: 'muted small' }, facts.join(' · ')),
    extra);
}
