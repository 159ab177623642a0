// The browser's sender of the upload protocol, `vshare-upload.1` (docs/upload-protocol.md).
//
// `UploadSender` is the protocol without I/O — frames and server messages in, WebSocket
// messages out — ported line for line from `UploadSender` in crates/upload; it is tested in
// Node (web/test). `UploadClient` is its WebSocket adapter: connects, pumps, resumes after a
// drop, and runs the adaptation (`SenderRate` in rate.js). With the protocol's `backfill` it
// keeps the video it dropped (in memory, and past `backfillMemoryBytes` in IndexedDB, within
// `backfillMaxBytes` in all; late_queue.js) and sends it late.

import { SenderRate } from './rate.js';
import { LateQueue } from './late_queue.js';

export const PROTOCOL = 'vshare-upload.1';
export const VERSION = 1;
export const HEADER_LEN = 32;
export const MSG_FRAME_PIECE = 0x01;
export const FEATURE_BACKFILL = 'backfill';
/** The server may ask for a key frame (`keyframe`): this sender's encoder makes one when asked. */
export const FEATURE_KEYFRAME = 'keyframe';
const FLAG_KEY = 0x01;
const FLAG_LAST = 0x02;
const FLAG_LATE = 0x04;

/** Close codes of docs/upload-protocol.md, with what to tell the user. */
export const CLOSE_REASONS = Object.freeze({
  1000: 'the stream ended',
  1001: 'the server is shutting down',
  4000: 'the server could not read a message (malformed)',
  4001: 'the upload token was refused (sign in again)',
  4002: 'a frame was larger than the server accepts',
  4003: 'frames arrived out of order',
  4004: 'too much data without acknowledgement (flood)',
  4005: 'this stream key is already publishing elsewhere',
  4006: 'the session expired before it could be resumed',
  4007: 'the server does not accept this codec',
});
/** Close codes after which reconnecting cannot help. */
const FATAL = new Set([1000, 4000, 4001, 4002, 4003, 4004, 4005, 4006, 4007]);

/**
 * One piece of a frame as a binary message: the 32-byte big-endian header, then the payload.
 * `data` is a Uint8Array holding the whole frame; the piece is data[offset, offset + len).
 */
export function encodePiece(frame, offset, len) {
  const buf = new ArrayBuffer(HEADER_LEN + len);
  const v = new DataView(buf);
  const last = offset + len === frame.data.byteLength;
  v.setUint8(0, MSG_FRAME_PIECE);
  v.setUint8(1, frame.track);
  v.setUint8(2, (frame.key ? FLAG_KEY : 0) | (last ? FLAG_LAST : 0) | (frame.late ? FLAG_LATE : 0));
  v.setUint8(3, 0);
  v.setUint32(4, frame.seq);
  v.setBigInt64(8, BigInt(frame.pts));
  v.setBigInt64(16, BigInt(frame.dts));
  v.setUint32(24, offset);
  v.setUint32(28, frame.data.byteLength);
  new Uint8Array(buf, HEADER_LEN).set(frame.data.subarray(offset, offset + len));
  return buf;
}

/** Reads a piece's header back (for tests and for the record). */
export function decodePiece(buf) {
  if (buf.byteLength < HEADER_LEN) throw new Error(`piece of ${buf.byteLength} bytes is shorter than its header`);
  const v = new DataView(buf);
  const flags = v.getUint8(2);
  return {
    type: v.getUint8(0),
    track: v.getUint8(1),
    key: (flags & FLAG_KEY) !== 0,
    last: (flags & FLAG_LAST) !== 0,
    late: (flags & FLAG_LATE) !== 0,
    seq: v.getUint32(4),
    pts: Number(v.getBigInt64(8)),
    dts: Number(v.getBigInt64(16)),
    offset: v.getUint32(24),
    total: v.getUint32(28),
    payload: new Uint8Array(buf, HEADER_LEN),
  };
}

/** Base64 of bytes (for avcC / AudioSpecificConfig descriptions). */
export function base64(bytes) {
  let s = '';
  for (let i = 0; i < bytes.length; i += 0x8000) {
    s += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  }
  return btoa(s);
}

/**
 * The sender's protocol state, a line-for-line port of `UploadSender` in
 * crates/upload/src/sender.rs: numbers frames and configurations, cuts frames into pieces,
 * keeps every message until it is acknowledged, respects the window, rewinds after a reconnect.
 */
export class UploadSender {
  constructor() {
    /** Sequenced messages not yet acknowledged, in order: {seq, frame?|info?}. */
    this.kept = [];
    /** Index in `kept` of the next message to send, and how much of it is sent. */
    this.sendIndex = 0;
    this.sendOffset = 0;
    this.nextSeq = 0;
    /** Payload bytes sent and not acknowledged. */
    this.inFlight = 0;
    /** Payload bytes kept (sent or not) and not acknowledged. */
    this.backlog = 0;
    this.windowBytes = 1 << 20;
    this.maxPieceBytes = 16 << 10;
    this.sessionId = null;
    this.endSeq = null;
    this.endSent = false;
    /** Highest sequence number ever sent, to count what is sent again. */
    this.sentHigh = null;
    this.stats = { mediaBytes: 0, wireBytes: 0, resentFrames: 0, lateKept: 0, lateRefused: 0 };
    /** `backfill`: asked for (our byte bound), granted by `welcome` (its limits). */
    this.lateMaxBytes = null;
    this.lateLimits = null;
    /** Late frames kept and not yet numbered (in memory, or spilled: late_queue.js). */
    this.late = new LateQueue();
    /** Late frames promised in all; the count last announced on this connection. */
    this.latePromised = 0;
    this.lateAnnounced = null;
    this.lateTotalBytes = 0;
  }

  /**
   * Asks for `backfill`, keeping at most `maxBytes` of dropped frames waiting: `memoryBytes`
   * of them in memory and the rest in `spill` (an IndexedDB store; none: all in memory).
   */
  withBackfill(maxBytes, memoryBytes = maxBytes, spill = null) {
    this.lateMaxBytes = maxBytes;
    this.late = new LateQueue(memoryBytes, spill);
    return this;
  }

  /** Whether the server granted `backfill`. */
  backfill() {
    return this.lateLimits !== null;
  }

  /** The `hello` for a new session, or for resuming the one the server welcomed us to. */
  hello(token, title, tracks, startKbps, maxKbps) {
    const msg = { type: 'hello', version: VERSION, token, title, start_kbps: startKbps,
      max_kbps: maxKbps, tracks };
    if (this.sessionId !== null) msg.resume = { session: this.sessionId };
    msg.features = [FEATURE_KEYFRAME];
    if (this.lateMaxBytes !== null) msg.features.push(FEATURE_BACKFILL);
    return JSON.stringify(msg);
  }

  /**
   * A frame the live send dropped: kept to be sent late when `backfill` was granted and the
   * bounds allow. Returns whether it was kept; a frame not kept ends what can be kept of its
   * run (the next ones would not decode without it) until the next key frame.
   */
  keepLate(track, key, pts, dts, data) {
    const len = data.byteLength;
    const l = this.lateLimits;
    const fits = l !== null && this.lateMaxBytes !== null
      && this.latePromised < l.max_frames
      && this.lateTotalBytes + this.late.bytes + len <= l.max_bytes
      && this.late.bytes + len <= this.lateMaxBytes;
    if (!fits) {
      this.stats.lateRefused += 1;
      return false;
    }
    this.latePromised += 1;
    this.stats.lateKept += 1;
    this.late.push({ track, key, pts: Math.round(pts), dts: Math.round(dts), data });
    return true;
  }

  /**
   * Numbers late frames, oldest first, for sending next: whole frames within `budgetBytes`,
   * and one in any case when nothing else is waiting to go out. Returns how many.
   */
  releaseLate(budgetBytes) {
    let used = 0;
    let n = 0;
    // A frame still being read back from the spill store stops the run until it is here.
    for (let len = this.late.headLength(); len !== null; len = this.late.headLength()) {
      const idle = n === 0 && this.sendIndex >= this.kept.length && this.inFlight === 0;
      if (used + len > budgetBytes && !idle) break;
      const f = this.late.shift();
      used += len;
      n += 1;
      this.lateTotalBytes += len;
      this.backlog += len;
      const seq = this.takeSeq();
      this.kept.push({ seq, frame: { seq, ...f, late: true } });
    }
    return n;
  }

  /** Late frames kept and not yet numbered: {frames, bytes}. */
  lateWaiting() {
    return { frames: this.late.length, bytes: this.late.bytes };
  }

  /** Keeps a frame to send ({track, key, pts, dts, data: Uint8Array}); returns its sequence number. */
  pushFrame(track, key, pts, dts, data) {
    const seq = this.takeSeq();
    this.backlog += data.byteLength;
    this.stats.mediaBytes += data.byteLength;
    this.kept.push({ seq, frame: { seq, track, key, pts: Math.round(pts), dts: Math.round(dts), data } });
    return seq;
  }

  /** Keeps a new configuration for a track (its next frame must be a key frame). */
  pushConfig(info) {
    const seq = this.takeSeq();
    this.kept.push({ seq, info });
    return seq;
  }

  /** The user stopped: `end` goes out after everything kept. */
  end() {
    if (this.endSeq === null) this.endSeq = this.nextSeq;
  }

  takeSeq() {
    const seq = this.nextSeq;
    this.nextSeq += 1;
    return seq;
  }

  /** Handles a parsed server message; `welcome` rewinds to what the server still needs. */
  handleServer(msg) {
    if (msg.type === 'welcome') {
      this.sessionId = msg.session;
      if (this.lateMaxBytes !== null && Array.isArray(msg.features)
          && msg.features.includes(FEATURE_BACKFILL) && msg.backfill) {
        this.lateLimits = msg.backfill;
      }
      this.lateAnnounced = null;
      this.windowBytes = Math.max(msg.window_bytes, 1);
      this.maxPieceBytes = Math.min(Math.max(msg.max_piece_bytes, 1), 1 << 20);
      this.acknowledge(msg.next_seq);
      this.sendIndex = 0;
      this.sendOffset = 0;
      this.inFlight = 0;
      this.endSent = false;
    } else if (msg.type === 'ack') {
      this.acknowledge(msg.seq);
    }
  }

  /** Parses and handles a text message from the server; throws on one it cannot read. */
  handleText(text) {
    const msg = JSON.parse(text);
    if (typeof msg !== 'object' || msg === null || typeof msg.type !== 'string') {
      throw new Error(`server message without a type: ${text.slice(0, 80)}`);
    }
    this.handleServer(msg);
    return msg;
  }

  acknowledge(seq) {
    while (this.kept.length > 0 && this.kept[0].seq < seq) {
      const k = this.kept.shift();
      const len = k.frame ? k.frame.data.byteLength : 0;
      this.backlog -= len;
      if (this.sendIndex > 0) {
        this.sendIndex -= 1;
        this.inFlight = Math.max(this.inFlight - len, 0);
      } else {
        // Acknowledged while (partly) unsent here: a resume told us it arrived before.
        this.inFlight = Math.max(this.inFlight - this.sendOffset, 0);
        this.sendOffset = 0;
      }
    }
  }

  /** The next message to write (a string or an ArrayBuffer), if the window allows one; else null. */
  pollTransmit() {
    // Text messages go between frames, never between the pieces of one.
    if (this.sendOffset === 0) {
      if (this.backfill() && this.lateAnnounced !== this.latePromised) {
        this.lateAnnounced = this.latePromised;
        return this.text({ type: 'backfill', frames: this.latePromised });
      }
      // `end` goes at its place: late frames numbered after it follow it.
      const next = this.kept[this.sendIndex];
      if (this.endSeq !== null && !this.endSent && (next === undefined || next.seq >= this.endSeq)) {
        this.endSent = true;
        return this.text({ type: 'end', seq: this.endSeq });
      }
    }
    const kept = this.kept[this.sendIndex];
    if (kept === undefined) return null;
    const seq = kept.seq;
    let msg;
    if (kept.info) {
      msg = JSON.stringify({ type: 'config', seq, ...kept.info });
      this.sendIndex += 1;
    } else {
      const f = kept.frame;
      const remaining = f.data.byteLength - this.sendOffset;
      const len = Math.min(remaining, this.maxPieceBytes);
      if (this.inFlight > 0 && this.inFlight + len > this.windowBytes) return null;
      msg = encodePiece(f, this.sendOffset, len);
      if (this.sendOffset === 0 && this.sentHigh !== null && seq <= this.sentHigh) {
        this.stats.resentFrames += 1;
      }
      this.inFlight += len;
      if (len === remaining) {
        this.sendIndex += 1;
        this.sendOffset = 0;
      } else {
        this.sendOffset += len;
      }
    }
    this.sentHigh = this.sentHigh === null ? seq : Math.max(this.sentHigh, seq);
    this.stats.wireBytes += typeof msg === 'string' ? msg.length : msg.byteLength;
    return msg;
  }

  text(msg) {
    const text = JSON.stringify(msg);
    this.stats.wireBytes += text.length;
    return text;
  }

  /** Frame payload bytes kept and not acknowledged (sent or not). */
  backlogBytes() {
    return this.backlog;
  }

  /** Frame payload bytes sent and not acknowledged. */
  inFlightBytes() {
    return this.inFlight;
  }

  /** The session id once welcomed. */
  session() {
    return this.sessionId;
  }

  /** Whether `end` went out and everything, late frames too, was acknowledged. */
  finished() {
    return this.endSent && this.kept.length === 0 && this.late.length === 0;
  }
}

/**
 * The WebSocket adapter and the sender's adaptation: one connection at a time, resumed after a
 * drop until the server's grace period runs out; follows the server's feedback with
 * `SenderRate` and drops video until the next key frame while the backlog is too big.
 * Events (EventTarget, `detail` = the message): welcome, ack, feedback (with `step` when the
 * quality step changed and `videoKbps`), attributes, error, state ({state, reason}),
 * closed ({code, reason}).
 */
export class UploadClient extends EventTarget {
  /**
   * @param {object} o url, token, title, tracks (as in hello), captureWidth, captureHeight,
   *   audioKbps, startKbps, maxKbps, backfillMaxBytes (dropped video kept to be sent late,
   *   the protocol's `backfill`; 0 keeps none; default 32 MiB), backfillSpill (an `IdbSpill`:
   *   what is past backfillMemoryBytes, default 32 MiB, goes there)
   */
  constructor(o) {
    super();
    this.url = o.url;
    this.token = o.token;
    this.title = o.title || '';
    this.tracks = o.tracks;
    this.startKbps = o.startKbps;
    this.maxKbps = o.maxKbps;
    this.sender = new UploadSender();
    const backfill = o.backfillMaxBytes ?? 32 << 20;
    if (backfill > 0) {
      const memory = o.backfillSpill ? Math.min(o.backfillMemoryBytes ?? 32 << 20, backfill) : backfill;
      this.sender.withBackfill(backfill, memory, o.backfillSpill || null);
      // Frames read back from IndexedDB go out as soon as they are here.
      this.sender.late.onRefill = () => this.pump();
    }
    this.rate = new SenderRate(o.captureWidth, o.captureHeight, o.audioKbps, o.startKbps, o.maxKbps);
    this.ws = null;
    this.welcomed = false;
    this.state = 'idle';
    this.welcome = null;
    this.droppedAt = null;
    this.lastHeard = 0;
    this.watchdog = null;
    this.retryTimer = null;
    this.retries = 0;
    this.resumes = 0;
    /** Sending paused (dropConnection in tests). */
    this.holding = false;
    /** Dropping video until the next key frame; the encoder is asked for one. */
    this.dropping = false;
    this.wantKeyFrame = false;
    /** Key frames the server asked for (a WebRTC player joined or lost one). */
    this.keyframeRequests = 0;
    this.framesIn = 0;
    this.droppedFrames = 0;
    /** Whether the current run of dropped frames is still kept for the backfill. */
    this.keeping = false;
  }

  emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }

  setState(state, reason = '') {
    this.state = state;
    this.emit('state', { state, reason });
  }

  start() {
    this.connect();
    // A path that goes silent (no message while data waits) is treated as dropped.
    this.watchdog = setInterval(() => {
      if (this.ws && this.welcomed && this.sender.inFlightBytes() > 0
          && performance.now() - this.lastHeard > 4000) {
        this.ws.close(3000, 'no acknowledgement for 4 s');
      }
    }, 500);
  }

  connect() {
    this.setState(this.sender.session() ? 'reconnecting' : 'connecting');
    let ws;
    try {
      ws = new WebSocket(this.url, PROTOCOL);
    } catch (e) {
      this.fail(0, `cannot open ${this.url}: ${e.message}`);
      return;
    }
    ws.binaryType = 'arraybuffer';
    this.ws = ws;
    ws.onopen = () => {
      this.lastHeard = performance.now();
      const tracks = this.sender.session() ? [] : this.tracks;
      ws.send(this.sender.hello(this.token, this.title, tracks, this.startKbps, this.maxKbps));
    };
    ws.onmessage = (ev) => {
      if (ws !== this.ws || typeof ev.data !== 'string') return;
      this.lastHeard = performance.now();
      let msg;
      try {
        msg = this.sender.handleText(ev.data);
      } catch (e) {
        this.emit('error', { type: 'error', code: 0, message: `unreadable server message: ${e.message}` });
        return;
      }
      if (msg.type === 'welcome') {
        if (this.welcome) this.resumes += 1;
        this.welcome = msg;
        this.welcomed = true;
        this.droppedAt = null;
        this.retries = 0;
        this.setState(this.sender.endSeq !== null ? 'finishing' : 'live');
      } else if (msg.type === 'keyframe') {
        this.keyframeRequests += 1;
        this.wantKeyFrame = true;
      } else if (msg.type === 'feedback') {
        const now = performance.now() * 1000;
        msg.step = this.rate.onFeedback(now, msg.suggested_kbps);
        msg.videoKbps = this.rate.videoKbps();
      }
      this.emit(msg.type, msg);
      this.pump();
    };
    ws.onclose = (ev) => {
      if (ws !== this.ws) return;
      this.ws = null;
      this.welcomed = false;
      if (ev.code === 1000 && this.sender.endSeq !== null) {
        this.finish(ev.code, ev.reason || 'the stream ended');
      } else if (FATAL.has(ev.code)) {
        this.fail(ev.code, ev.reason || CLOSE_REASONS[ev.code] || `closed with ${ev.code}`);
      } else {
        this.scheduleResume(ev.code, ev.reason);
      }
    };
  }

  scheduleResume(code, reason) {
    const now = performance.now();
    if (this.droppedAt === null) this.droppedAt = now;
    // Before a first welcome there is no session to resume: a few plain retries.
    const grace = this.welcome ? this.welcome.resume_grace_ms || 10_000 : 5000;
    if (now - this.droppedAt > grace) {
      this.fail(code, `connection lost and not restored within ${Math.round(grace / 1000)} s`);
      return;
    }
    this.setState('reconnecting', reason || `connection closed (${code})`);
    const delay = Math.min(250 * 2 ** this.retries, 2000);
    this.retries += 1;
    this.retryTimer = setTimeout(() => this.connect(), delay);
  }

  /**
   * An encoded frame {track, video, key, pts, dts (µs), data: Uint8Array}. Returns false when
   * it was dropped: video only, while the unacknowledged backlog is more than 1.5 s of media
   * at the current target, and then until the next key frame (`wantKeyFrame` asks for one).
   */
  pushFrame(f) {
    this.framesIn += 1;
    if (f.video) {
      if (this.dropping && !f.key) {
        this.droppedFrames += 1;
        this.keepLate(f);
        return false;
      }
      if (this.rate.backlogTooBig(this.sender.backlogBytes())) {
        this.dropping = true;
        this.wantKeyFrame = true;
        this.droppedFrames += 1;
        this.keeping = this.sender.backfill();
        this.keepLate(f);
        return false;
      }
      this.dropping = false;
      if (f.key) this.wantKeyFrame = false;
    }
    this.sender.pushFrame(f.track, !!f.key, f.pts, f.dts, f.data);
    this.pump();
    return true;
  }

  /** A dropped video frame, kept for the backfill while its run is unbroken. */
  keepLate(f) {
    this.keeping = this.keeping && this.sender.keepLate(f.track, !!f.key, f.pts, f.dts, f.data);
  }

  /** A new codec configuration for a track, sent before its next (key) frame. */
  pushConfig(info) {
    this.tracks = this.tracks.map((t) => (t.track === info.track ? { ...t, ...info } : t));
    this.sender.pushConfig(info);
    this.pump();
  }

  /** Sends whatever the window allows now. */
  pump() {
    const ws = this.ws;
    if (!ws || !this.welcomed || this.holding || ws.readyState !== WebSocket.OPEN) return;
    // Late frames go when the live send leaves room, and all of them after the stop.
    if (this.sender.backfill()) {
      const stopped = this.sender.endSeq !== null;
      this.sender.releaseLate(stopped ? Infinity : this.rate.lateRoom(this.sender.backlogBytes()));
    }
    for (let m = this.sender.pollTransmit(); m !== null; m = this.sender.pollTransmit()) ws.send(m);
  }

  /** The user stopped: `end` follows everything kept; `closed` fires when the server is done. */
  stop() {
    this.sender.end();
    if (this.state === 'live') this.setState('finishing');
    this.pump();
  }

  /**
   * For tests: a network outage. Nothing is sent for `holdMs` (frames pile up unsent, as
   * behind a dead link), then the connection is cut; the sender resumes and sends them.
   */
  dropConnection(holdMs = 0) {
    this.holding = true;
    setTimeout(() => {
      this.holding = false;
      if (this.ws) this.ws.close(3001, 'dropped on purpose');
    }, holdMs);
  }

  finish(code, reason) {
    this.stopTimers();
    this.setState('ended', reason);
    this.emit('closed', { code, reason });
  }

  fail(code, reason) {
    this.stopTimers();
    if (this.ws) {
      const ws = this.ws;
      this.ws = null;
      ws.close();
    }
    this.setState('failed', reason);
    this.emit('closed', { code, reason });
  }

  stopTimers() {
    clearInterval(this.watchdog);
    clearTimeout(this.retryTimer);
  }
}
