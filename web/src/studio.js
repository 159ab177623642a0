// The studio: the phone's camera and microphone, encoded in the page with WebCodecs (H.264;
// AAC where the browser has it, else Opus, which the server converts), sent over the upload
// protocol with adaptive quality. Shows the live state, the uplink, dropped frames and the
// attribute data the server returns. `?source=clock` encodes a canvas with a burnt-in clock
// instead of the camera (the glass-to-glass benchmark).

import { api, ApiError, me, toSignIn } from './api.js';
import { ClockSource } from './clock.js';
import { nav } from './nav.js';
import { openShare } from './share.js';
import { FrameThinner } from './thinning.js';
import { h, $, attributesTable, copyText, formatBytes, formatKbps } from './ui.js';
import { IdbSpill } from './late_queue.js';
import { WhipPublisher } from './whip.js';
import { CLOSE_REASONS, UploadClient, base64 } from './upload.js';

const params = new URLSearchParams(location.search);
const SOURCE = params.get('source') === 'clock' ? 'clock' : 'camera';
const WANT_AUDIO = params.get('audio') !== '0';
const START_KBPS = Number(params.get('start_kbps')) || 1200;
const MAX_KBPS = Number(params.get('max_kbps')) || 2500;
const CAPTURE_W = Number(params.get('width')) || 1280;
const CAPTURE_H = Number(params.get('height')) || 720;
/** `?quality=fixed`: keep the capture size and 30 fps (benchmarks); the bitrate still follows. */
const FIXED_QUALITY = params.get('quality') === 'fixed';
/**
 * Dropped video kept for the backfill: this much in memory, the rest in IndexedDB, up to the
 * total (docs/web.md). `?backfill_memory=BYTES` sets the memory part (tests).
 */
const BACKFILL_MEMORY = Number(params.get('backfill_memory')) || 32 << 20;
const BACKFILL_TOTAL = 256 << 20;
/** A key frame at least this often (µs): segments and late joiners need them. */
const KEY_INTERVAL_US = 1_000_000;
const AUDIO_KBPS = { aac: 64, opus: 32 };

/** What the page found out and what it is doing; `window.vshareStudio` for tests. */
const studio = {
  state: 'starting',
  user: null,
  stream: null,
  clock: null,
  captureWidth: 0,
  captureHeight: 0,
  audioCodec: null,
  client: null,
  videoId: null,
  watchUrl: null,
  attributes: [],
  encoderDrops: 0,
  /** Video frames handed to the upload client, and the capture steps seen (µs), for tests. */
  videoFramesSent: 0,
  captureStepMinUs: null,
  captureStepMaxUs: null,
  error: null,
};
window.vshareStudio = studio;

function setState(state, reason = '') {
  studio.state = state;
  document.body.dataset.state = state;
  const labels = {
    starting: 'Starting the camera…', ready: 'Ready', connecting: 'Connecting…', live: 'Live',
    reconnecting: 'Reconnecting…', finishing: 'Finishing the recording…', ended: 'Recording ready',
    failed: 'Stopped', unsupported: 'Not supported here',
  };
  $('#state').textContent = labels[state] || state;
  const dot = { live: 'live', ended: 'ok', reconnecting: 'warn', connecting: 'warn', finishing: 'warn', failed: 'bad', unsupported: 'bad' };
  $('#state-dot').className = `state-dot ${dot[state] || ''}`;
  $('#state-reason').textContent = reason;
}

/** H.264 constrained baseline at the lowest level that fits the picture (Chrome, Safari). */
function avcCodec(width, height) {
  const mbs = Math.ceil(width / 16) * Math.ceil(height / 16);
  if (mbs <= 1620) return 'avc1.42e01e'; // level 3.0: up to 720×576
  if (mbs <= 3600) return 'avc1.42e01f'; // 3.1: 1280×720
  if (mbs <= 8192) return 'avc1.42e028'; // 4.0: 1920×1080
  return 'avc1.42e032'; // 5.0
}

/** Why this browser cannot publish from the page, or null when it can. */
async function whyUnsupported() {
  if (!window.isSecureContext) {
    return 'The page is not a secure context (https or localhost), so the browser hides its camera and encoders.';
  }
  if (typeof window.VideoEncoder !== 'function' || typeof window.VideoFrame !== 'function') {
    return 'This browser has no WebCodecs video encoder (VideoEncoder), which the studio needs to encode the camera.';
  }
  try {
    const s = await VideoEncoder.isConfigSupported({
      codec: avcCodec(640, 480), width: 640, height: 480, bitrate: 1_000_000, framerate: 30,
      avc: { format: 'avc' },
    });
    if (!s.supported) return 'This browser cannot encode H.264 video with WebCodecs.';
  } catch (e) {
    return `This browser cannot encode H.264 video with WebCodecs (${e.message}).`;
  }
  if (SOURCE === 'camera' && !navigator.mediaDevices?.getUserMedia) {
    return 'This browser gives the page no camera access (getUserMedia).';
  }
  return null;
}

/** AAC where the browser can encode it, else Opus; null without an audio encoder. */
async function pickAudioCodec(sampleRate, channels) {
  if (typeof window.AudioEncoder !== 'function') return null;
  for (const [name, codec] of [['aac', 'mp4a.40.2'], ['opus', 'opus']]) {
    try {
      const s = await AudioEncoder.isConfigSupported({
        codec, sampleRate, numberOfChannels: channels, bitrate: AUDIO_KBPS[name] * 1000,
      });
      if (s.supported) return { name, codec };
    } catch {
      // not this one
    }
  }
  return null;
}

async function showRtmp(why) {
  setState('unsupported', '');
  $('#unsupported').hidden = false;
  $('#unsupported-why').textContent = why;
  $('#studio').hidden = true;
  $('#rtmp-url').textContent = studio.user.rtmp_url;
  $('#stream-key').textContent = studio.user.stream_key
    ? 'shown once, when it was made: press “New stream key” to see a new one'
    : 'none yet: press “New stream key”';
  $('#copy-rtmp').onclick = () => copyText(studio.user.rtmp_url);
  $('#rotate-key').onclick = async () => {
    if (!confirm('Make a new stream key? Apps using the old key stop working.')) return;
    try {
      const k = await api('POST', '/api/v1/me/stream-key');
      $('#stream-key').textContent = k.key;
      $('#copy-rtmp').textContent = 'Copy full RTMP address';
      $('#copy-rtmp').onclick = () => copyText(k.publish_url);
    } catch (e) {
      $('#unsupported-why').textContent = `${why} (New key failed: ${e.message})`;
    }
  };
}

/** Opens the camera (or the clock canvas) for the preview. */
async function openSource() {
  if (SOURCE === 'clock') {
    const canvas = $('#clock-canvas');
    canvas.hidden = false;
    $('#preview').hidden = true;
    studio.clock = new ClockSource(canvas);
    studio.captureWidth = canvas.width;
    studio.captureHeight = canvas.height;
    studio.clock.frame(0).close();
    if (WANT_AUDIO) {
      try {
        studio.stream = await navigator.mediaDevices.getUserMedia({ audio: true });
      } catch {
        studio.stream = null;
      }
    }
    $('#source-note').textContent = 'Test source: a canvas with a burnt-in clock.';
    return;
  }
  const stream = await navigator.mediaDevices.getUserMedia({
    video: { width: { ideal: CAPTURE_W }, height: { ideal: CAPTURE_H }, frameRate: { ideal: 30 },
      facingMode: 'environment' },
    audio: WANT_AUDIO ? { echoCancellation: true, noiseSuppression: true } : false,
  });
  studio.stream = stream;
  const v = $('#preview');
  v.srcObject = stream;
  await v.play().catch(() => {});
  const s = stream.getVideoTracks()[0].getSettings();
  studio.cameraFps = s.frameRate ? Math.round(s.frameRate) : null;
  studio.captureWidth = (s.width || v.videoWidth || 640) & ~1;
  studio.captureHeight = (s.height || v.videoHeight || 480) & ~1;
  $('#source-note').textContent = `Camera ${studio.captureWidth}×${studio.captureHeight}`
    + (s.frameRate ? ` at ${Math.round(s.frameRate)} fps` : '');
}

/**
 * Reads frames from a track: MediaStreamTrackProcessor where there is one (Chrome), else
 * a timer drawing the preview element (Safari, Firefox). Calls `onFrame(VideoFrame)`; the
 * callee closes it. Returns a stop function.
 */
function readVideo(track, onFrame) {
  if (typeof window.MediaStreamTrackProcessor === 'function') {
    const reader = new MediaStreamTrackProcessor({ track }).readable.getReader();
    let on = true;
    (async () => {
      while (on) {
        const { value, done } = await reader.read();
        if (done) break;
        onFrame(value);
      }
    })();
    return () => { on = false; reader.cancel().catch(() => {}); };
  }
  const v = $('#preview');
  const timer = setInterval(() => {
    if (v.readyState >= 2) onFrame(new VideoFrame(v, { timestamp: Math.round(performance.now() * 1000) }));
  }, 1000 / 30);
  return () => clearInterval(timer);
}

/** Reads audio as AudioData: MediaStreamTrackProcessor, or null where there is none. */
function readAudio(track, onData) {
  if (typeof window.MediaStreamTrackProcessor !== 'function') return null;
  const reader = new MediaStreamTrackProcessor({ track }).readable.getReader();
  let on = true;
  (async () => {
    while (on) {
      const { value, done } = await reader.read();
      if (done) break;
      onData(value);
    }
  })();
  return () => { on = false; reader.cancel().catch(() => {}); };
}

/** The bytes of a BufferSource (a decoder configuration's description). */
function bytesOf(src) {
  return src instanceof ArrayBuffer
    ? new Uint8Array(src)
    : new Uint8Array(src.buffer, src.byteOffset, src.byteLength);
}

/** One live session: encoders, the upload client, the stats timer. */
class Broadcast {
  constructor(token, title) {
    this.token = token;
    this.title = title;
    this.stops = [];
    this.videoCfg = null;
    this.videoInfo = null;
    this.audioInfo = null;
    this.offsetV = null;
    this.offsetA = null;
    this.thinner = new FrameThinner();
    this.lastKeyUs = -Infinity;
    this.forceKey = true;
    this.configuredKbps = 0;
    this.started = false;
    this.running = true;
    this.lastWire = 0;
    this.lastWireAt = performance.now();
    this.feedback = null;
    /** The quality step the encoder runs at (the rate controller's, unless fixed). */
    this.step = 0;
  }

  async start() {
    const audioTrack = studio.stream?.getAudioTracks()[0] || null;
    let audioCfg = null;
    if (audioTrack) {
      const s = audioTrack.getSettings();
      const sampleRate = s.sampleRate || 48000;
      const channels = Math.min(s.channelCount || 1, 2);
      const picked = await pickAudioCodec(sampleRate, channels);
      if (picked) {
        studio.audioCodec = picked.name;
        audioCfg = { codec: picked.codec, sampleRate, numberOfChannels: channels,
          bitrate: AUDIO_KBPS[picked.name] * 1000 };
      }
    }
    // Without IndexedDB (a private window may refuse it) the backfill keeps to memory.
    const spill = typeof indexedDB === 'undefined' ? null : await IdbSpill.open().catch(() => null);
    studio.backfillSpill = spill;
    const client = new UploadClient({
      url: `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/api/v1/upload`,
      token: this.token, title: this.title, tracks: [],
      captureWidth: studio.captureWidth, captureHeight: studio.captureHeight,
      audioKbps: audioCfg ? AUDIO_KBPS[studio.audioCodec] : 0, startKbps: START_KBPS, maxKbps: MAX_KBPS,
      backfillMaxBytes: spill ? BACKFILL_TOTAL : BACKFILL_MEMORY,
      backfillMemoryBytes: BACKFILL_MEMORY, backfillSpill: spill,
    });
    this.client = client;
    studio.client = client;
    this.step = FIXED_QUALITY ? 0 : client.rate.step();
    client.addEventListener('state', (e) => setState(e.detail.state, e.detail.reason));
    client.addEventListener('welcome', (e) => this.onWelcome(e.detail));
    client.addEventListener('feedback', (e) => this.onFeedback(e.detail));
    client.addEventListener('attributes', (e) => showAttributes(e.detail));
    client.addEventListener('error', (e) => {
      $('#state-reason').textContent = `Server: ${e.detail.message} (${e.detail.code})`;
    });
    client.addEventListener('closed', (e) => this.onClosed(e.detail));

    this.videoEncoder = new VideoEncoder({
      output: (chunk, meta) => this.onVideo(chunk, meta),
      error: (e) => this.abort(`video encoder: ${e.message}`),
    });
    this.configureVideo();
    if (audioCfg) {
      this.audioEncoder = new AudioEncoder({
        output: (chunk, meta) => this.onAudio(chunk, meta),
        error: (e) => this.abort(`audio encoder: ${e.message}`),
      });
      this.audioEncoder.configure(audioCfg);
      this.audioCfg = audioCfg;
      const stop = readAudio(audioTrack, (data) => this.encodeAudio(data));
      if (stop) this.stops.push(stop);
      else this.audioInfo = null;
    }
    if (studio.clock) {
      const timer = setInterval(() => {
        const frame = studio.clock.frame(Math.round(performance.now() * 1000));
        this.encodeVideo(frame);
      }, 1000 / 30);
      this.stops.push(() => clearInterval(timer));
    } else {
      this.stops.push(readVideo(studio.stream.getVideoTracks()[0], (f) => this.encodeVideo(f)));
    }
    this.statsTimer = setInterval(() => this.showStats(), 500);
    setState('connecting');
  }

  /** (Re)configures the video encoder for the current quality step and target. */
  configureVideo() {
    const rate = this.client.rate;
    const step = this.step;
    const [width, height] = rate.stepSize(step);
    const kbps = rate.videoKbps();
    this.videoCfg = {
      codec: avcCodec(width, height), width, height, bitrate: kbps * 1000,
      framerate: rate.stepFps(step), avc: { format: 'avc' }, latencyMode: 'realtime',
      bitrateMode: 'variable',
    };
    this.videoEncoder.configure(this.videoCfg);
    this.configuredKbps = kbps;
    this.forceKey = true;
  }

  encodeVideo(frame) {
    try {
      if (!this.running || this.videoEncoder.state !== 'configured') return;
      const t = frame.timestamp;
      if (this.offsetV === null) this.offsetV = performance.now() * 1000 - t;
      if (this.lastCaptureUs !== undefined) {
        const step = t - this.lastCaptureUs;
        studio.captureStepMinUs = Math.min(studio.captureStepMinUs ?? step, step);
        studio.captureStepMaxUs = Math.max(studio.captureStepMaxUs ?? step, step);
      }
      this.lastCaptureUs = t;
      // The step's frame rate, below the camera's: one frame per slot (thinning.js).
      const fps = this.client.rate.stepFps(this.step);
      if (!this.thinner.wants(t, fps, studio.cameraFps || 30)) return;
      // An encoder that cannot keep up: drop here rather than queue delay.
      if (this.videoEncoder.encodeQueueSize > 2) {
        studio.encoderDrops += 1;
        return;
      }
      const keyFrame = this.forceKey || this.client.wantKeyFrame || t - this.lastKeyUs >= KEY_INTERVAL_US;
      if (keyFrame) {
        this.lastKeyUs = t;
        this.forceKey = false;
        this.client.wantKeyFrame = false;
      }
      this.videoEncoder.encode(frame, { keyFrame });
      this.thinner.kept(t);
    } finally {
      frame.close();
    }
  }

  encodeAudio(data) {
    try {
      if (!this.running || !this.audioEncoder || this.audioEncoder.state !== 'configured') return;
      if (this.offsetA === null) this.offsetA = performance.now() * 1000 - (data.timestamp + data.duration);
      this.audioEncoder.encode(data);
    } finally {
      data.close();
    }
  }

  onVideo(chunk, meta) {
    const cfg = meta?.decoderConfig;
    if (cfg?.description) {
      const info = { track: 0, kind: 'video', codec: cfg.codec, description: base64(bytesOf(cfg.description)) };
      if (!this.videoInfo) {
        this.videoInfo = info;
        this.maybeStart();
        // A microphone that gives nothing must not hold the stream back: go on without audio.
        setTimeout(() => {
          if (this.started || !this.running) return;
          if (this.audioEncoder && this.audioEncoder.state !== 'closed') this.audioEncoder.close();
          this.audioEncoder = null;
          this.maybeStart();
        }, 2000);
      } else if (info.description !== this.videoInfo.description || info.codec !== this.videoInfo.codec) {
        this.videoInfo = info;
        this.client.pushConfig({ track: 0, codec: info.codec, description: info.description });
      }
    }
    if (!this.videoInfo) return;
    const data = new Uint8Array(chunk.byteLength);
    chunk.copyTo(data);
    const pts = chunk.timestamp + this.offsetV;
    const kept = this.client.pushFrame({ track: 0, video: true, key: chunk.type === 'key', pts, dts: pts, data });
    if (kept) studio.videoFramesSent += 1;
  }

  onAudio(chunk, meta) {
    if (!this.audioEncoder) return;
    const cfg = meta?.decoderConfig;
    if (cfg && !this.audioInfo) {
      this.audioInfo = { track: 1, kind: 'audio', codec: studio.audioCodec === 'aac' ? 'mp4a.40.2' : 'opus',
        sample_rate: cfg.sampleRate, channels: cfg.numberOfChannels };
      if (cfg.description) this.audioInfo.description = base64(bytesOf(cfg.description));
      this.maybeStart();
    }
    if (!this.audioInfo || !this.started) return;
    const data = new Uint8Array(chunk.byteLength);
    chunk.copyTo(data);
    const pts = chunk.timestamp + this.offsetA;
    this.client.pushFrame({ track: 1, video: false, key: true, pts, dts: pts, data });
  }

  /** Connects once every track has its configuration (hello carries them). */
  maybeStart() {
    if (this.started || !this.videoInfo || (this.audioEncoder && !this.audioInfo)) return;
    this.started = true;
    this.client.tracks = [this.videoInfo, ...(this.audioInfo ? [this.audioInfo] : [])];
    $('#s-codecs').textContent = `Video ${this.videoInfo.codec}`
      + (this.audioInfo ? ` · audio ${this.audioInfo.codec} ${this.audioInfo.sample_rate} Hz` : ' · no audio');
    this.client.start();
  }

  onWelcome(w) {
    publishing(w.video_id, w.watch_url);
  }

  onFeedback(f) {
    this.feedback = f;
    if (f.step !== null && f.step !== undefined && !FIXED_QUALITY) {
      this.step = f.step;
      this.configureVideo();
    } else if (Math.abs(f.videoKbps - this.configuredKbps) > 0.15 * this.configuredKbps) {
      // Bitrate only: the same picture size, no new configuration message needed.
      this.videoCfg = { ...this.videoCfg, bitrate: f.videoKbps * 1000 };
      this.videoEncoder.configure(this.videoCfg);
      this.configuredKbps = f.videoKbps;
    }
  }

  showStats() {
    const c = this.client;
    const now = performance.now();
    const wire = c.sender.stats.wireBytes;
    const bps = ((wire - this.lastWire) * 8 * 1000) / Math.max(now - this.lastWireAt, 1);
    this.lastWire = wire;
    this.lastWireAt = now;
    this.uplinkBps = bps;
    const rate = c.rate;
    const [w, hgt] = rate.stepSize(this.step);
    $('#s-uplink').textContent = formatKbps(bps);
    $('#s-target').textContent = formatKbps(rate.targetKbps() * 1000);
    const fps = Math.min(rate.stepFps(this.step), studio.cameraFps || 30);
    $('#s-quality').textContent = `${w}×${hgt} @ ${fps}${FIXED_QUALITY ? ' (fixed)' : ''}`;
    $('#s-dropped').textContent = String(c.droppedFrames + studio.encoderDrops);
    const backlog = c.sender.backlogBytes();
    $('#s-backlog').textContent = `${formatBytes(backlog)} · ${Math.round((backlog * 8) / rate.targetKbps())} ms`;
    if (this.feedback) {
      $('#s-queue').textContent = `${this.feedback.queue_delay_ms} ms · ${formatKbps(this.feedback.receive_kbps * 1000)}`;
    }
  }

  /** Stop: flush the encoders, send `end`, wait for the server to close. */
  async stop() {
    this.running = false;
    for (const s of this.stops) s();
    try {
      await this.videoEncoder.flush();
      if (this.audioEncoder) await this.audioEncoder.flush();
    } catch {
      // an encoder error was already reported
    }
    this.client.stop();
  }

  abort(reason) {
    if (!this.running) return;
    this.running = false;
    for (const s of this.stops) s();
    setState('failed', reason);
    this.client.fail(0, reason);
  }

  onClosed({ code, reason }) {
    this.running = false;
    for (const s of this.stops) s();
    clearInterval(this.statsTimer);
    this.showStats();
    for (const enc of [this.videoEncoder, this.audioEncoder]) {
      if (enc && enc.state !== 'closed') enc.close();
    }
    $('#start').disabled = false;
    $('#stop').disabled = true;
    if (code !== 1000) {
      studio.error = reason || CLOSE_REASONS[code] || `closed (${code})`;
      setState('failed', studio.error);
    }
  }
}

/** A publish has its video: the watch link, Share and Stop. */
function publishing(videoId, watchUrl) {
  studio.videoId = videoId;
  studio.watchUrl = watchUrl || new URL(`/watch/${videoId}`, location.href).href;
  $('#watch-link').hidden = false;
  $('#watch-href').href = studio.watchUrl;
  $('#watch-href').textContent = studio.watchUrl;
  $('#share').disabled = false;
  $('#stop').disabled = false;
  followWatching(videoId);
}

/**
 * How many watch pages are open on the video now (the server counts their beacons). Over WHIP,
 * which has no message channel, the same poll brings the attribute records and the end.
 */
function followWatching(videoId) {
  clearInterval(studio.watchingTimer);
  const show = async () => {
    try {
      const v = await api('GET', `/api/v1/videos/${encodeURIComponent(videoId)}`);
      if (studio.videoId !== videoId) return;
      studio.watching = v.watching;
      $('#s-watching').textContent = String(v.watching);
      document.body.dataset.watching = String(v.watching);
      if (studio.whip) whipRecords(v);
    } catch {
      // the next poll tries again
    }
  };
  show();
  studio.watchingTimer = setInterval(show, 2000);
}

function showAttributes(msg) {
  studio.attributes.push(msg);
  document.body.dataset.attributes = studio.attributes.map((a) => a.kind).join(',');
  const box = $('#attributes');
  if (studio.attributes.length === 1) box.replaceChildren();
  const r = msg.record;
  box.append(h('div', { class: 'record', dataset: { kind: msg.kind } },
    h('h2', {}, msg.kind === 'live' ? 'Live stream' : `Recording · ${r.format}`),
    attributesTable(r),
    msg.text ? h('pre', { class: 'text' }, msg.text) : null));
}

/** Over WHIP: the records the video API lists, each shown once; the end once it is ready. */
function whipRecords(v) {
  studio.shownRecords ??= new Set();
  for (const r of v.attributes || []) {
    const kind = r.kind === 'live' ? 'live' : r.format === 'mp4' ? 'vod' : r.format;
    const id = `${kind} ${r.url}`;
    if (studio.shownRecords.has(id) || (r.kind === 'live' && v.state !== 'live')) continue;
    studio.shownRecords.add(id);
    showAttributes({ kind, record: r });
  }
  if (studio.state === 'finishing' && ['ready', 'partial'].includes(v.state)) {
    setState('ended', 'The recording is ready.');
    $('#start').disabled = false;
  }
}

/** Goes live over WebRTC (WHIP) instead of the upload protocol. */
async function goLiveWhip(token) {
  let video = studio.stream?.getVideoTracks()[0] || null;
  if (SOURCE === 'clock') {
    // The canvas redrawn at 30 fps, sent as a track.
    video = $('#clock-canvas').captureStream(30).getVideoTracks()[0];
    studio.clockTimer = setInterval(() => studio.clock.frame(0).close(), 1000 / 30);
  }
  const p = new WhipPublisher({ token, video, audio: studio.stream?.getAudioTracks()[0] || null, maxKbps: MAX_KBPS });
  studio.whip = p;
  studio.shownRecords = new Set();
  studio.broadcast = { stop: () => p.stop() };
  p.addEventListener('state', (e) => setState(e.detail.state, e.detail.reason));
  p.addEventListener('live', (e) => publishing(e.detail.videoId));
  p.addEventListener('ended', (e) => {
    clearInterval(studio.clockTimer);
    $('#stop').disabled = true;
    if (!e.detail.reason) setState('finishing', 'The server is finishing the recording.');
  });
  try {
    await p.start();
  } catch (e) {
    clearInterval(studio.clockTimer);
    setState('failed', e.message);
    $('#start').disabled = false;
  }
}

async function goLive() {
  $('#start').disabled = true;
  studio.attributes = [];
  studio.error = null;
  $('#attributes').replaceChildren(h('p', { class: 'muted' }, 'Appears when you are live.'));
  let token;
  try {
    const r = await api('POST', '/api/v1/me/upload-token');
    token = r.token;
  } catch (e) {
    if (e instanceof ApiError && e.status === 401) return toSignIn();
    setState('failed', `No upload token: ${e.message}`);
    $('#start').disabled = false;
    return;
  }
  if ($('#over-webrtc').checked) return goLiveWhip(token);
  studio.whip = null;
  const b = new Broadcast(token, $('#title').value.trim());
  studio.broadcast = b;
  try {
    await b.start();
  } catch (e) {
    setState('failed', e.message);
    $('#start').disabled = false;
  }
}

async function main() {
  nav('studio');
  try {
    studio.user = await me();
  } catch (e) {
    setState('failed', e.message);
    return;
  }
  if (!studio.user) return toSignIn();
  const why = await whyUnsupported();
  if (why) return showRtmp(why);
  try {
    await openSource();
  } catch (e) {
    setState('failed', `No camera: ${e.message}. Allow the camera and microphone and reload.`);
    return;
  }
  setState('ready', 'Press Go live to start.');
  // WebRTC (WHIP) where the server has it on; the upload protocol stays the default.
  $('#over-webrtc-row').hidden = !studio.user.whip;
  $('#over-webrtc').checked = Boolean(studio.user.whip) && params.get('protocol') === 'whip';
  $('#start').disabled = false;
  $('#start').onclick = goLive;
  $('#stop').onclick = () => {
    $('#stop').disabled = true;
    studio.broadcast?.stop();
  };
  $('#share').onclick = () => openShare(studio.videoId, $('#title').value.trim());
}

main();
