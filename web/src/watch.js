// The watch page: the video's attribute data first, then playback — live over WebRTC (WHEP)
// where the server offers it, else hls.js in low-latency mode (the browser's own HLS on Apple
// devices; `?engine=hls` skips WebRTC), the recording as MP4 — a download
// button, and a subscription to the source's next videos (Web Push or a phone number).
// `?glass=1` reads the studio's burnt-in clock from every displayed frame (glass-to-glass
// benchmark). While live, Rewind plays the DVR playlist (the recording so far) and LIVE goes
// back to the live edge; the page tells the server it is open (the studio's viewer count).
// The recording gets a seek bar with thumbnail previews from the sprite (scrub.js).

import Hls from './vendor/hls.mjs';
import { api } from './api.js';
import { readClock } from './clock.js';
import { seekBar } from './scrub.js';
import { nav } from './nav.js';
import { shareLink } from './share.js';
import { h, $, attributesList, copyText, posterOf, stateBadge } from './ui.js';

const M3U8 = 'application/vnd.apple.mpegurl';
const params = new URLSearchParams(location.search);
const id = decodeURIComponent(location.pathname.split('/').filter(Boolean)[1] || '');

/** State for tests and the benchmark: `window.vshareWatch`. */
const watch = { id, video: null, mode: null, hls: null, glass: [], errors: [], scrub: {} };
window.vshareWatch = watch;
let scrub = null;

/** A private link's signature, to carry along (`?exp=…&sig=…`, or ''). */
function linkQuery() {
  const q = new URLSearchParams();
  for (const k of ['exp', 'sig']) {
    if (params.has(k)) q.set(k, params.get(k));
  }
  const s = q.toString();
  return s ? `?${s}` : '';
}

/** The API URL of this video, carrying a private link's signature along. */
function videoApi() {
  return `/api/v1/videos/${encodeURIComponent(id)}${linkQuery()}`;
}

const liveRecord = (v) => v.attributes.find((a) => a.kind === 'live');
const mp4Record = (v) => v.attributes.find((a) => a.kind === 'vod' && a.format === 'mp4');
const hlsVodRecord = (v) => v.attributes.find((a) => a.kind === 'vod' && a.format === 'hls');

/** hls.js, unless this is an Apple browser with its own (LL-)HLS or there is no MSE. */
function useNativeHls(player) {
  const forced = params.get('player');
  if (forced === 'native') return true;
  if (forced === 'hlsjs') return false;
  const native = player.canPlayType(M3U8) !== '';
  return native && (!Hls.isSupported() || /Apple/.test(navigator.vendor));
}

/**
 * The poster before play: the recording's, or the live one (new every few seconds, so it is
 * asked for again on each refresh, at most every 5 s).
 */
function showPoster(v) {
  const player = $('#player');
  let url = posterOf(v);
  if (!url || watch.mode) return;
  if (v.state === 'live') url += `${url.includes('?') ? '&' : '?'}t=${Math.floor(Date.now() / 5000)}`;
  if (watch.poster !== url) {
    watch.poster = url;
    player.poster = url;
  }
}

function render(v) {
  watch.video = v;
  showPoster(v);
  document.title = `${v.title || 'Video'} · vshare`;
  $('#title').textContent = v.title || `Video ${v.id}`;
  $('#badges').replaceChildren(...stateBadge(v.state, v.visibility ? v.visibility === 'public' : true));
  $('#attributes').replaceChildren(attributesList(v.attributes));
  document.body.dataset.state = v.state;
  const mp4 = mp4Record(v);
  const dl = $('#download');
  if (mp4) {
    dl.href = mp4.url;
    dl.setAttribute('download', `${(v.title || v.id).replace(/[^\w.-]+/g, '_')}.mp4`);
    dl.hidden = false;
  } else {
    dl.hidden = true;
  }
  const play = $('#play');
  if (v.state === 'live' && liveRecord(v)) {
    play.textContent = 'Watch live';
    play.disabled = false;
  } else if (mp4 || hlsVodRecord(v)) {
    play.textContent = watch.mode === 'live' ? 'Play the recording' : 'Play';
    play.disabled = false;
  } else {
    play.textContent = v.state === 'finishing' ? 'Recording almost ready…' : 'Not playable yet';
    play.disabled = true;
  }
  renderDvr(v);
}

/** Rewind while live and the way back to the live edge (docs/web.md). */
function renderDvr(v) {
  const live = v.state === 'live' && liveRecord(v);
  // Offered from the start, before any playback, and while at the live edge.
  $('#rewind').hidden = !(live && liveRecord(v).dvr > 0 && watch.mode !== 'dvr' && watch.mode !== 'vod');
  $('#live-edge').hidden = !(live && watch.mode === 'dvr');
}

/**
 * Live: over WebRTC (WHEP, docs/webrtc.md) where the browser and the server can, else LL-HLS.
 * `?engine=hls` skips WebRTC.
 */
async function playLive(v) {
  stopPlayback();
  watch.mode = 'live';
  const attempt = watch.attempt;
  if (params.get('engine') !== 'hls' && (await playWhep(v, attempt))) return;
  if (attempt !== watch.attempt) return;
  playHls(v);
}

/** Starts WHEP playback; false (nothing left open) when the server or browser cannot. */
async function playWhep(v, attempt) {
  if (typeof RTCPeerConnection !== 'function') return false;
  const player = $('#player');
  let pc;
  let resource = null;
  try {
    pc = new RTCPeerConnection();
    pc.addTransceiver('video', { direction: 'recvonly' });
    pc.addTransceiver('audio', { direction: 'recvonly' });
    const stream = new MediaStream();
    pc.ontrack = (e) => {
      stream.addTrack(e.track);
      if (player.srcObject !== stream) player.srcObject = stream;
    };
    await pc.setLocalDescription(await pc.createOffer());
    // No trickle: the offer goes with the candidates gathered within a second.
    await new Promise((resolve) => {
      if (pc.iceGatheringState === 'complete') return resolve();
      pc.addEventListener('icegatheringstatechange', () => pc.iceGatheringState === 'complete' && resolve());
      setTimeout(resolve, 1000);
    });
    const r = await fetch(`/whep/${encodeURIComponent(v.id)}${linkQuery()}`, {
      method: 'POST', headers: { 'Content-Type': 'application/sdp' }, body: pc.localDescription.sdp,
    });
    // 404: WebRTC is off on this server (or the stream just ended): LL-HLS, quietly.
    if (r.status === 404) {
      pc.close();
      return false;
    }
    if (r.status !== 201) throw new Error(`WHEP: ${r.status} ${await r.text()}`);
    const location = r.headers.get('Location');
    if (location) resource = `${location}${linkQuery()}`;
    await pc.setRemoteDescription({ type: 'answer', sdp: await r.text() });
  } catch (e) {
    watch.errors.push(`webrtc: ${e.message}`);
    pc?.close();
    if (resource) fetch(resource, { method: 'DELETE' }).catch(() => {});
    return false;
  }
  if (attempt !== watch.attempt) {
    pc.close();
    if (resource) fetch(resource, { method: 'DELETE' }).catch(() => {});
    return true;
  }
  watch.pc = pc;
  watch.whep = resource;
  watch.engine = 'webrtc';
  // A session that cannot connect (UDP blocked) falls back to LL-HLS.
  pc.addEventListener('connectionstatechange', () => {
    if (watch.pc === pc && pc.connectionState === 'failed' && watch.mode === 'live') {
      watch.errors.push('webrtc: the connection failed; LL-HLS instead');
      stopPlayback();
      watch.mode = 'live';
      playHls(v);
    }
  });
  $('#player-note').textContent = 'Live · WebRTC';
  startPlayer(player);
  renderDvr(v);
  return true;
}

function startPlayer(player) {
  player.play().catch(() => {
    player.muted = true;
    player.play().catch(() => {});
  });
  if (params.get('glass') === '1') startGlass(player);
}

function playHls(v) {
  const player = $('#player');
  const url = liveRecord(v).url;
  if (useNativeHls(player)) {
    watch.engine = 'native';
    player.src = url;
  } else {
    watch.engine = 'hls.js';
    // Low-latency mode holds PART-HOLD-BACK behind the live edge. A stall raises that target
    // by 0.25 s (hls.js's default is a whole second, which a start-up stall made permanent),
    // and playback catches up to the target at up to 1.5×.
    const hls = new Hls({ lowLatencyMode: true, maxLiveSyncPlaybackRate: 1.5, liveSyncOnStallIncrease: 0.25, backBufferLength: 30, enableWorker: false });
    watch.hls = hls;
    hls.on(Hls.Events.ERROR, (_e, data) => {
      watch.errors.push(`${data.type}: ${data.details}`);
      if (data.fatal) {
        $('#player-note').textContent = `Playback error: ${data.details}`;
        if (data.type === Hls.ErrorTypes.NETWORK_ERROR) hls.startLoad();
        else if (data.type === Hls.ErrorTypes.MEDIA_ERROR) hls.recoverMediaError();
      }
    });
    hls.loadSource(url);
    hls.attachMedia(player);
  }
  $('#player-note').textContent = `Live · ${watch.engine === 'native' ? "the browser's HLS" : 'hls.js, low-latency mode'}`;
  startPlayer(player);
  renderDvr(v);
}

/** Seconds back from the recorded edge where Rewind starts. */
const REWIND_S = 30;

/**
 * Rewind while live: the DVR playlist (the recorded segments of the last `dvr` seconds, a
 * sliding live playlist without parts), which hls.js seeks over as a whole; the live playlist
 * stays short for low latency. Starts `REWIND_S` before the recorded edge.
 */
function playDvr(v) {
  const player = $('#player');
  const url = `/vod/${encodeURIComponent(v.id)}/dvr.m3u8${linkQuery()}`;
  stopPlayback();
  watch.mode = 'dvr';
  if (useNativeHls(player)) {
    watch.engine = 'native';
    player.src = url;
    player.addEventListener('loadedmetadata', () => {
      const s = player.seekable;
      if (s.length) player.currentTime = Math.max(s.start(0), s.end(s.length - 1) - REWIND_S);
    }, { once: true });
  } else {
    watch.engine = 'hls.js';
    const hls = new Hls({ autoStartLoad: false, enableWorker: false, backBufferLength: 30 });
    watch.hls = hls;
    hls.on(Hls.Events.ERROR, (_e, data) => watch.errors.push(`${data.type}: ${data.details}`));
    hls.once(Hls.Events.LEVEL_LOADED, (_e, data) => {
      hls.startLoad(Math.max(0, data.details.totalduration - REWIND_S));
    });
    hls.loadSource(url);
    hls.attachMedia(player);
  }
  $('#player-note').textContent = 'Rewound · the recording so far; LIVE goes back to the live edge';
  renderDvr(v);
  player.play().catch(() => {
    player.muted = true;
    player.play().catch(() => {});
  });
}

/**
 * The recording: its HLS VOD where there is one (hls.js, or the browser's own HLS on Apple),
 * since a recording whose picture size changed (a quality step) has one init segment per
 * size, which HLS maps and Chromium's progressive MP4 playback cannot follow; else the MP4.
 * The MP4 is always the download.
 */
function playVod(v) {
  const player = $('#player');
  stopPlayback();
  watch.mode = 'vod';
  const rec = hlsVodRecord(v);
  const forced = params.get('vod');
  if (rec && forced !== 'mp4' && (Hls.isSupported() || player.canPlayType(M3U8))) {
    if (useNativeHls(player)) {
      watch.engine = 'native';
      player.src = rec.url;
    } else {
      watch.engine = 'hls.js';
      watch.hls = new Hls({ enableWorker: false });
      watch.hls.on(Hls.Events.ERROR, (_e, data) => watch.errors.push(`${data.type}: ${data.details}`));
      watch.hls.loadSource(rec.url);
      watch.hls.attachMedia(player);
    }
  } else {
    watch.engine = 'mp4';
    player.src = mp4Record(v).url;
  }
  // The sprite is made when the stream ends: a recording without one gets the bar, times only.
  scrub.show(`/vod/${encodeURIComponent(v.id)}/sprite.vtt${linkQuery()}`, linkQuery());
  $('#player-note').textContent = `Recording · ${watch.engine === 'mp4' ? 'MP4' : `HLS (${watch.engine === 'native' ? "the browser's" : 'hls.js'})`}`;
  player.play().catch(() => {
    player.muted = true;
    player.play().catch(() => {});
  });
}

function stopPlayback() {
  // A WHEP answer still on its way belongs to a playback that is over.
  watch.attempt = (watch.attempt || 0) + 1;
  if (watch.hls) {
    watch.hls.destroy();
    watch.hls = null;
  }
  if (watch.pc) {
    watch.pc.close();
    watch.pc = null;
    if (watch.whep) fetch(watch.whep, { method: 'DELETE' }).catch(() => {});
    watch.whep = null;
  }
  scrub.hide();
  const player = $('#player');
  player.srcObject = null;
  player.removeAttribute('src');
  player.load();
}

/**
 * Glass-to-glass: on each displayed frame, read the burnt-in wall clock and record
 * display time − capture time (same machine, same clock).
 */
function startGlass(player) {
  if (typeof player.requestVideoFrameCallback !== 'function') {
    watch.errors.push('no requestVideoFrameCallback');
    return;
  }
  const canvas = new OffscreenCanvas(448, 252);
  const ctx = canvas.getContext('2d', { willReadFrequently: true });
  const onFrame = (_now, meta) => {
    if (watch.mode !== 'live') return;
    ctx.drawImage(player, 0, 0, canvas.width, canvas.height);
    const ms = readClock(ctx.getImageData(0, 0, canvas.width, canvas.height));
    const shown = performance.timeOrigin + meta.expectedDisplayTime;
    if (ms !== null) watch.glass.push({ at: shown, latency: shown - ms });
    else watch.glassMisses = (watch.glassMisses || 0) + 1;
    player.requestVideoFrameCallback(onFrame);
  };
  player.requestVideoFrameCallback(onFrame);
}

async function subscribe(source) {
  const result = $('#sub-result');
  $('#push').onclick = async () => {
    result.textContent = '';
    try {
      if (!('serviceWorker' in navigator) || !('PushManager' in window)) {
        throw new Error('this browser has no Web Push; use a phone number');
      }
      const reg = await navigator.serviceWorker.register('/app/sw.js', { scope: '/app/' });
      const { public_key: key } = await api('GET', '/api/v1/webpush/key');
      const raw = atob(key.replace(/-/g, '+').replace(/_/g, '/') + '='.repeat((4 - (key.length % 4)) % 4));
      const sub = await reg.pushManager.subscribe({
        userVisibleOnly: true, applicationServerKey: Uint8Array.from(raw, (c) => c.charCodeAt(0)),
      });
      await api('POST', '/api/v1/subscriptions', { source, channel: 'webpush', address: JSON.stringify(sub.toJSON()) });
      result.textContent = 'This browser will be notified.';
      result.className = 'small notice ok';
    } catch (e) {
      result.textContent = `Not subscribed: ${e.message}`;
      result.className = 'small notice bad';
    }
  };
  $('#sub-send').onclick = async () => {
    const address = $('#sub-number').value.trim();
    const channel = $('#sub-channel').value;
    try {
      const sub = await api('POST', '/api/v1/subscriptions', { source, channel, address });
      watch.subscription = sub;
      result.textContent = `A code was sent to ${sub.address}: reply YES and the code, or enter it here.`;
      result.className = 'small notice ok';
      $('#confirm').hidden = false;
      $('#sub-confirm').onclick = async () => {
        try {
          await api('POST', `/api/v1/subscriptions/${encodeURIComponent(sub.id)}/confirm`, { code: $('#sub-code').value.trim() });
          result.textContent = `Subscribed: ${sub.address} gets ${source}’s next videos.`;
          $('#confirm').hidden = true;
        } catch (e) {
          result.textContent = `Not confirmed: ${e.message}`;
          result.className = 'small notice bad';
        }
      };
    } catch (e) {
      result.textContent = `Not subscribed: ${e.message}`;
      result.className = 'small notice bad';
    }
  };
}

async function refresh() {
  const v = await api('GET', videoApi());
  const wasLive = watch.video?.state === 'live';
  render(v);
  if (wasLive && v.state !== 'live') {
    $('#player-note').textContent = 'The live stream ended. The recording is ready to play.';
  }
  return v;
}

/**
 * Tells the server this page is open, every `seconds`, with a random id for this tab: the
 * studio's viewer count. Nothing about the viewer is sent; public objects stay the same for all.
 */
function beacon(seconds) {
  const tab = Array.from(crypto.getRandomValues(new Uint8Array(12)), (b) => b.toString(16).padStart(2, '0')).join('');
  const url = `/api/v1/videos/${encodeURIComponent(id)}/watching${linkQuery()}`;
  const send = () => {
    if (document.visibilityState === 'hidden') return;
    fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ tab }) })
      .then((r) => (r.ok ? r.json() : null))
      .then((j) => { if (j) watch.watching = j.watching; })
      .catch(() => {});
  };
  send();
  setInterval(send, Math.max(1, Number(seconds) || 10) * 1000);
}

async function main() {
  nav('watch');
  let v;
  try {
    v = await api('GET', videoApi());
  } catch (e) {
    const m = $('#missing');
    m.textContent = e.status === 404 ? 'This video does not exist, was deleted, or its link has expired.' : `Cannot load the video: ${e.message}`;
    m.hidden = false;
    return;
  }
  $('#watch').hidden = false;
  scrub = seekBar($('#player'), $('#seek'), watch.scrub);
  render(v);
  $('#play').onclick = () => {
    const cur = watch.video;
    if (cur.state === 'live' && liveRecord(cur)) playLive(cur);
    else playVod(cur);
  };
  $('#copy').onclick = async () => {
    copyText(await shareLink(id));
  };
  $('#rewind').onclick = () => playDvr(watch.video);
  $('#live-edge').onclick = () => {
    if (watch.video.state === 'live' && liveRecord(watch.video)) playLive(watch.video);
  };
  beacon(v.watching_beacon_s);
  const source = v.source || v.owner || v.user;
  if (source) {
    $('#subscribe-card').hidden = false;
    $('#source-name').textContent = source;
    subscribe(source);
  }
  // Follow the state until the recording is ready (live → finishing → ready).
  const timer = setInterval(async () => {
    if (!['live', 'finishing'].includes(watch.video.state)) {
      clearInterval(timer);
      return;
    }
    try {
      await refresh();
    } catch {
      // keep the last state; the next poll tries again
    }
  }, 1500);
  if (params.get('autoplay') === '1') $('#play').click();
}

main();
