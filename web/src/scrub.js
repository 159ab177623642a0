// The watch page's seek bar for the recording: seeks on a tap, click or drag (on release) and
// follows currentTime; while the pointer hovers or drags, a preview above it shows the time and
// the sprite's tile for that time (docs/web.md, "Scrubbing"). The native controls stay as they
// are: their timeline gives no hover events.

import { MAX_VTT_BYTES, clockTime, cueAt, parseSpriteVtt } from './sprite.js';

/** Arrow keys step this many seconds (Home and End go to the ends). */
const KEY_STEP_S = 5;

/**
 * Wires `bar` (the `.seek` element of watch.html) to `player`. Returns `show(vttUrl, query)`
 * (load the sprite track, `query` carried onto the image; no URL: time only) and `hide()`.
 * `state` gets `{cues, image, time}` for tests.
 */
export function seekBar(player, bar, state = {}) {
  const fill = bar.querySelector('.seek-fill');
  const preview = bar.querySelector('.seek-preview');
  const tile = bar.querySelector('.seek-tile');
  const label = bar.querySelector('.seek-time');
  let cues = [];
  let dragging = false;
  let loading = 0;

  const duration = () => (Number.isFinite(player.duration) && player.duration > 0 ? player.duration : 0);
  const fractionAt = (e) => {
    const r = bar.getBoundingClientRect();
    return r.width > 0 ? Math.min(1, Math.max(0, (e.clientX - r.left) / r.width)) : 0;
  };
  const setFill = (f) => {
    fill.style.width = `${(f * 100).toFixed(2)}%`;
  };
  const sync = () => {
    const d = duration();
    if (!dragging) setFill(d ? Math.min(1, player.currentTime / d) : 0);
    bar.setAttribute('aria-valuemax', String(Math.round(d)));
    bar.setAttribute('aria-valuenow', String(Math.round(player.currentTime)));
    bar.setAttribute('aria-valuetext', `${clockTime(player.currentTime)} of ${clockTime(d)}`);
  };

  /** The preview for the fraction `f` of the bar, kept within the bar. */
  const showAt = (f) => {
    const t = f * duration();
    state.time = t;
    label.textContent = clockTime(t);
    const cue = cueAt(cues, t);
    if (cue) {
      Object.assign(tile.style, {
        width: `${cue.w}px`,
        height: `${cue.h}px`,
        backgroundImage: `url("${cue.url}")`,
        backgroundPosition: `-${cue.x}px -${cue.y}px`,
      });
    }
    tile.hidden = !cue;
    preview.hidden = false;
    const half = preview.offsetWidth / 2;
    const x = f * bar.clientWidth;
    preview.style.left = `${Math.min(Math.max(x, half), Math.max(half, bar.clientWidth - half))}px`;
  };
  const hidePreview = () => {
    preview.hidden = true;
  };

  bar.addEventListener('pointerdown', (e) => {
    if (!duration() || e.button > 0) return;
    dragging = true;
    bar.setPointerCapture(e.pointerId);
    const f = fractionAt(e);
    setFill(f);
    showAt(f);
    e.preventDefault();
  });
  bar.addEventListener('pointermove', (e) => {
    if (!duration()) return;
    const f = fractionAt(e);
    if (dragging) setFill(f);
    showAt(f);
  });
  bar.addEventListener('pointerup', (e) => {
    if (!dragging) return;
    dragging = false;
    player.currentTime = fractionAt(e) * duration();
    sync();
    if (e.pointerType !== 'mouse') hidePreview();
  });
  bar.addEventListener('pointercancel', () => {
    dragging = false;
    hidePreview();
    sync();
  });
  bar.addEventListener('pointerleave', () => {
    if (!dragging) hidePreview();
  });
  bar.addEventListener('keydown', (e) => {
    const d = duration();
    const to = { ArrowLeft: player.currentTime - KEY_STEP_S, ArrowRight: player.currentTime + KEY_STEP_S, Home: 0, End: d }[e.key];
    if (to === undefined || !d) return;
    player.currentTime = Math.min(d, Math.max(0, to));
    e.preventDefault();
  });
  for (const ev of ['timeupdate', 'durationchange', 'seeking', 'emptied']) player.addEventListener(ev, sync);

  /** The sprite's cues, each with its image's URL (same origin only, with `query`). */
  async function load(vttUrl, query, token) {
    const base = new URL(vttUrl, location.href);
    const r = await fetch(base);
    if (!r.ok || Number(r.headers.get('content-length') || 0) > MAX_VTT_BYTES) return;
    const parsed = parseSpriteVtt(await r.text());
    if (token !== loading) return;
    cues = parsed.flatMap((c) => {
      const u = new URL(c.image, base);
      if (u.origin !== location.origin) return [];
      return [{ ...c, url: `${u.pathname}${query}` }];
    });
    state.cues = cues.length;
    state.image = cues[0]?.url || null;
    // Fetch the image now, so the first hover has it.
    if (cues[0]) new Image().src = cues[0].url;
  }

  return {
    show(vttUrl, query = '') {
      const token = ++loading;
      cues = [];
      state.cues = 0;
      bar.hidden = false;
      sync();
      if (vttUrl) load(vttUrl, query, token).catch(() => {});
    },
    hide() {
      loading++;
      cues = [];
      dragging = false;
      bar.hidden = true;
      hidePreview();
    },
  };
}
