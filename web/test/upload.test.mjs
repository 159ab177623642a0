// Unit tests of the browser's upload sender (node --test web/test): the wire format of frame
// pieces, the sender's window, acks and resume, and the rate controller — with the same cases
// and numbers as the Rust tests in crates/upload, so the two ports stay in step.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { HEADER_LEN, UploadClient, UploadSender, base64, decodePiece, encodePiece } from '../src/upload.js';
import { SenderRate, STEPS } from '../src/rate.js';

const bytes = (n, fill = 7) => new Uint8Array(n).fill(fill);
const welcome = (o = {}) => JSON.stringify({ type: 'welcome', session: 's1', video_id: 'v1', next_seq: 0,
  window_bytes: 1 << 20, max_piece_bytes: 1000, resume_grace_ms: 10000, watch_url: '', ...o });

test('a piece header is 32 big-endian bytes as the spec lays them out', () => {
  const frame = { seq: 0x01020304, track: 1, key: true, pts: 2 ** 40 + 5, dts: 2 ** 40 + 3, data: bytes(10, 9) };
  const buf = encodePiece(frame, 4, 6);
  const b = new Uint8Array(buf);
  assert.equal(buf.byteLength, HEADER_LEN + 6);
  assert.deepEqual([...b.subarray(0, 8)], [0x01, 1, 0x03, 0, 1, 2, 3, 4]);
  assert.deepEqual([...b.subarray(8, 16)], [0, 0, 1, 0, 0, 0, 0, 5]);
  assert.deepEqual([...b.subarray(16, 24)], [0, 0, 1, 0, 0, 0, 0, 3]);
  assert.deepEqual([...b.subarray(24, 32)], [0, 0, 0, 4, 0, 0, 0, 10]);
  assert.deepEqual([...b.subarray(32)], [9, 9, 9, 9, 9, 9]);
  const first = decodePiece(encodePiece({ ...frame, key: false }, 0, 4));
  assert.equal(first.key, false);
  assert.equal(first.last, false, 'only the piece that ends the frame has the last flag');
  assert.equal(first.pts, 2 ** 40 + 5);
});

test('frames are cut into pieces of at most max_piece_bytes, in order', () => {
  const s = new UploadSender();
  assert.equal(s.pollTransmit(), null, 'nothing before welcome is handed out by the client, and nothing kept');
  s.pushFrame(0, true, 1000, 1000, bytes(2500));
  s.handleText(welcome());
  const pieces = [];
  for (let m = s.pollTransmit(); m; m = s.pollTransmit()) pieces.push(decodePiece(m));
  assert.deepEqual(pieces.map((p) => [p.offset, p.payload.length, p.last]), [[0, 1000, false], [1000, 1000, false], [2000, 500, true]]);
  assert.ok(pieces.every((p) => p.seq === 0 && p.total === 2500 && p.key));
  assert.equal(s.inFlightBytes(), 2500);
  assert.equal(s.backlogBytes(), 2500);
});

test('the window holds pieces back until an ack frees it', () => {
  const s = new UploadSender();
  s.handleText(welcome({ window_bytes: 3000, max_piece_bytes: 1000 }));
  for (let i = 0; i < 3; i++) s.pushFrame(0, i === 0, i * 33333, i * 33333, bytes(1500));
  const sent = [];
  for (let m = s.pollTransmit(); m; m = s.pollTransmit()) sent.push(decodePiece(m));
  assert.equal(sent.reduce((n, p) => n + p.payload.length, 0), 3000, 'exactly the window is in flight');
  assert.equal(s.inFlightBytes(), 3000);
  s.handleText(JSON.stringify({ type: 'ack', seq: 1 }));
  assert.equal(s.backlogBytes(), 3000);
  const more = [];
  for (let m = s.pollTransmit(); m; m = s.pollTransmit()) more.push(decodePiece(m));
  assert.deepEqual(more.map((p) => [p.seq, p.offset]), [[2, 0], [2, 1000]]);
  assert.equal(s.inFlightBytes(), 3000);
});

test('after a reconnect everything from next_seq is sent again, whole, and nothing before it', () => {
  const s = new UploadSender();
  s.handleText(welcome({ max_piece_bytes: 400 }));
  s.pushFrame(0, true, 0, 0, bytes(1000, 1));
  s.pushConfig({ track: 0, codec: 'avc1.42e015', description: base64(new Uint8Array([1, 2, 3])) });
  s.pushFrame(0, true, 33333, 33333, bytes(1000, 2));
  s.pushFrame(1, true, 40000, 40000, bytes(100, 3));
  // Send the first frame, the config and one piece of the second frame; then the line drops.
  for (let i = 0; i < 5; i++) s.pollTransmit();
  const hello = JSON.parse(s.hello('tok', 't', [], 1000, 2500));
  assert.deepEqual(hello.resume, { session: 's1' });
  s.handleText(welcome({ next_seq: 2, max_piece_bytes: 400 }));
  const again = [];
  for (let m = s.pollTransmit(); m; m = s.pollTransmit()) again.push(typeof m === 'string' ? JSON.parse(m) : decodePiece(m));
  assert.deepEqual(again.map((m) => [m.seq, m.offset ?? m.type]), [[2, 0], [2, 400], [2, 800], [3, 0]]);
  assert.equal(s.stats.resentFrames, 1, 'the cut-off frame counts as sent again');
  assert.equal(s.backlogBytes(), 1100);
});

test('end goes out after everything kept, and finished() waits for its ack', () => {
  const s = new UploadSender();
  s.handleText(welcome());
  s.pushFrame(0, true, 0, 0, bytes(10));
  s.end();
  const msgs = [];
  for (let m = s.pollTransmit(); m; m = s.pollTransmit()) msgs.push(m);
  assert.equal(JSON.parse(msgs.at(-1)).type, 'end');
  assert.equal(JSON.parse(msgs.at(-1)).seq, 1);
  assert.equal(s.finished(), false);
  s.handleText(JSON.stringify({ type: 'ack', seq: 1 }));
  assert.equal(s.finished(), true);
});

test('a config message is sequenced like a frame', () => {
  const s = new UploadSender();
  s.handleText(welcome());
  assert.equal(s.pushFrame(0, true, 0, 0, bytes(5)), 0);
  assert.equal(s.pushConfig({ track: 0, codec: 'avc1.42e015', description: 'AQID' }), 1);
  s.pollTransmit();
  const cfg = JSON.parse(s.pollTransmit());
  assert.deepEqual(cfg, { type: 'config', seq: 1, track: 0, codec: 'avc1.42e015', description: 'AQID' });
});

test('the sender steps down at once and up after three seconds (as crates/upload)', () => {
  const s = new SenderRate(640, 360, 32, 1200, 2500);
  assert.equal(s.step(), 0);
  assert.deepEqual(s.stepSize(0), [640, 360]);
  assert.deepEqual(s.stepSize(2), [320, 180]);
  assert.equal(s.needKbps(0), 552);
  assert.equal(s.onFeedback(0, 250), 2);
  assert.equal(s.videoKbps(), 218);
  const plenty = 2500;
  assert.equal(s.onFeedback(500_000, plenty), null);
  assert.equal(s.onFeedback(2_000_000, plenty), null);
  assert.equal(s.onFeedback(3_500_000, plenty), 1);
  assert.equal(s.onFeedback(4_000_000, 450), null);
  assert.equal(s.onFeedback(6_000_000, plenty), null);
  assert.equal(s.onFeedback(8_500_000, plenty), null);
  assert.equal(s.onFeedback(9_000_000, plenty), 0);
  assert.equal(STEPS.length, 5);
});

test('the backlog limit is one and a half seconds of media (as crates/upload)', () => {
  const s = new SenderRate(640, 360, 32, 800, 2500);
  assert.equal(s.backlogTooBig(150_000), false);
  assert.equal(s.backlogTooBig(150_001), true);
});

test('a 720p capture starting at 1.2 Mbit/s begins at the half-size step', () => {
  const s = new SenderRate(1280, 720, 32, 1200, 2500);
  assert.equal(s.step(), 2);
  assert.deepEqual(s.stepSize(s.step()), [640, 360]);
  assert.equal(s.stepFps(s.step()), 25);
});

test('a big backlog drops video until the next key frame, never audio', () => {
  const c = new UploadClient({ url: 'ws://unused', token: 't', tracks: [], captureWidth: 640,
    captureHeight: 360, audioKbps: 32, startKbps: 800, maxKbps: 2500 });
  // Not connected: everything stays kept. 150,000 bytes is the limit at 800 kbit/s.
  assert.equal(c.pushFrame({ track: 0, video: true, key: true, pts: 0, dts: 0, data: bytes(150_001) }), true);
  assert.equal(c.pushFrame({ track: 0, video: true, key: false, pts: 1, dts: 1, data: bytes(10) }), false);
  assert.equal(c.wantKeyFrame, true, 'the encoder is asked for a key frame');
  assert.equal(c.pushFrame({ track: 1, video: false, key: true, pts: 2, dts: 2, data: bytes(10) }), true);
  c.sender.handleText(welcome());
  c.sender.handleText(JSON.stringify({ type: 'ack', seq: 1 }));
  assert.equal(c.pushFrame({ track: 0, video: true, key: false, pts: 3, dts: 3, data: bytes(10) }), false,
    'still dropping: only a key frame ends it');
  assert.equal(c.pushFrame({ track: 0, video: true, key: true, pts: 4, dts: 4, data: bytes(10) }), true);
  assert.equal(c.wantKeyFrame, false);
  assert.equal(c.droppedFrames, 2);
});

const grant = (o = {}) => welcome({ features: ['backfill'], backfill: { max_frames: 10, max_bytes: 20_000, wait_ms: 5000 }, ...o });

test('backfill: dropped frames are kept, promised, and sent late after the live ones (as crates/upload)', () => {
  const s = new UploadSender().withBackfill(1 << 20);
  assert.deepEqual(JSON.parse(s.hello('k', 't', [], 500, 2000)).features, ['keyframe', 'backfill']);
  s.handleText(grant());
  assert.equal(s.backfill(), true);
  for (let i = 0; i < 10; i += 1) {
    const pts = i * 33_333;
    if (i >= 3 && i < 6) assert.equal(s.keepLate(0, false, pts, pts, bytes(1500, i)), true);
    else s.pushFrame(0, i % 6 === 0, pts, pts, bytes(1500, i));
  }
  const out = [];
  for (let m = s.pollTransmit(); m; m = s.pollTransmit()) out.push(m);
  assert.deepEqual(JSON.parse(out[0]), { type: 'backfill', frames: 3 }, 'the promise goes first');
  assert.ok(out.slice(1).every((m) => !decodePiece(m).late));
  assert.deepEqual(s.lateWaiting(), { frames: 3, bytes: 4500 });
  // Room for one, then the stop: `end` goes at its place, the rest follow it.
  assert.equal(s.releaseLate(2000), 1);
  s.end();
  assert.equal(s.releaseLate(Infinity), 2);
  const after = [];
  for (let m = s.pollTransmit(); m; m = s.pollTransmit()) after.push(m);
  const kinds = after.map((m) => (typeof m === 'string' ? JSON.parse(m).type : decodePiece(m)));
  assert.equal(kinds.filter((k) => k === 'end').length, 1);
  const endAt = kinds.indexOf('end');
  const late = kinds.filter((k) => typeof k === 'object' && k.last);
  assert.deepEqual(late.map((p) => [p.late, p.pts / 33_333]), [[true, 3], [true, 4], [true, 5]]);
  assert.ok(kinds.slice(0, endAt).filter((k) => typeof k === 'object' && k.last).length === 1,
    'the late frame numbered before the stop goes before end');
  assert.equal(s.finished(), false);
  s.handleText(JSON.stringify({ type: 'ack', seq: s.nextSeq }));
  assert.equal(s.finished(), true);
});

test('backfill: an old server grants nothing and nothing is kept', () => {
  const s = new UploadSender().withBackfill(1 << 20);
  s.handleText(welcome());
  assert.equal(s.backfill(), false);
  assert.equal(s.keepLate(0, false, 0, 0, bytes(10)), false);
  assert.equal(s.stats.lateRefused, 1);
});

test('backfill: the client keeps a dropped run until a frame does not fit', () => {
  const c = new UploadClient({ url: 'ws://unused', token: 't', tracks: [], captureWidth: 640,
    captureHeight: 360, audioKbps: 32, startKbps: 800, maxKbps: 2500, backfillMaxBytes: 25 });
  c.sender.handleText(grant());
  assert.equal(c.pushFrame({ track: 0, video: true, key: true, pts: 0, dts: 0, data: bytes(150_001) }), true);
  for (let i = 1; i <= 4; i += 1) {
    assert.equal(c.pushFrame({ track: 0, video: true, key: false, pts: i, dts: i, data: bytes(10) }), false);
  }
  // 25 bytes: two of the dropped frames fit; the third ends the run, the fourth is not kept.
  assert.equal(c.sender.stats.lateKept, 2);
  assert.deepEqual(c.sender.lateWaiting(), { frames: 2, bytes: 20 });
  const r = new SenderRate(640, 360, 32, 800, 2500);
  assert.equal(r.lateRoom(0), 75_000);
  assert.equal(r.lateRoom(200_000), 0);
});
