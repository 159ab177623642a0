// The thumbnail sprite's WebVTT track (`/vod/{id}/sprite.vtt`, docs/http-api.md): cue times and
// `image#xywh=x,y,w,h` tiles. Written here rather than through the browser's TextTrack, which
// only parses a track attached to a playing element and hides malformed cues' reasons; this
// one reads exactly what the server writes and skips anything else.

/** At most this many cues are kept (the server's default sprite has at most 400). */
export const MAX_CUES = 5000;
/** A longer track is not parsed. */
export const MAX_VTT_BYTES = 1 << 20;

const TIME = /^(?:(\d{1,3}):)?([0-5]\d):([0-5]\d)\.(\d{3})$/;
const XYWH = /^([^#\s]+)#xywh=(?:pixel:)?(\d{1,5}),(\d{1,5}),(\d{1,5}),(\d{1,5})$/;

/** `[HH:]MM:SS.mmm` in seconds, or null. */
export function parseTime(s) {
  const m = TIME.exec(s.trim());
  if (!m) return null;
  return Number(m[1] || 0) * 3600 + Number(m[2]) * 60 + Number(m[3]) + Number(m[4]) / 1000;
}

/**
 * The sprite cues of a WebVTT text: `[{start, end, image, x, y, w, h}]` sorted by start, times
 * in seconds, `image` as written (relative to the track). Malformed cues are skipped; a text
 * that is not WebVTT or too long gives none.
 */
export function parseSpriteVtt(text, maxCues = MAX_CUES) {
  if (typeof text !== 'string' || text.length > MAX_VTT_BYTES) return [];
  const lines = text.replace(/^\uFEFF/, '').split(/\r\n|\r|\n/);
  if (!/^WEBVTT(?:[ \t].*)?$/.test(lines[0])) return [];
  const cues = [];
  for (let i = 1; i < lines.length && cues.length < maxCues; i++) {
    const arrow = lines[i].indexOf('-->');
    if (arrow < 0) continue;
    const start = parseTime(lines[i].slice(0, arrow));
    // Cue settings may follow the end time.
    const end = parseTime(lines[i].slice(arrow + 3).trim().split(/[ \t]/)[0]);
    const m = XYWH.exec((lines[i + 1] || '').trim());
    // The server's last cue ends where it starts (the recording's last tile): kept.
    if (start === null || end === null || end < start || !m) continue;
    const [x, y, w, h] = m.slice(2).map(Number);
    if (w === 0 || h === 0) continue;
    cues.push({ start, end, image: m[1], x, y, w, h });
    i++;
  }
  return cues.sort((a, b) => a.start - b.start);
}

/** The cue shown at `t` s: the last one starting at or before it (the first before any). */
export function cueAt(cues, t) {
  if (!cues.length) return null;
  let lo = 0;
  let hi = cues.length - 1;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if (cues[mid].start <= t) lo = mid;
    else hi = mid - 1;
  }
  return cues[lo];
}

/** `m:ss` or `h:mm:ss`. */
export function clockTime(t) {
  const s = Math.max(0, Math.floor(Number.isFinite(t) ? t : 0));
  const two = (n) => String(n).padStart(2, '0');
  const h = Math.floor(s / 3600);
  return h ? `${h}:${two(Math.floor(s / 60) % 60)}:${two(s % 60)}` : `${Math.floor(s / 60)}:${two(s % 60)}`;
}
