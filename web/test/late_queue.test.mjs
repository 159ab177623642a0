// The late-frame queue (late_queue.js): memory first, a spill store past its bound, the order
// kept across both, and frames the store lost counted, not waited for.
import test from 'node:test';
import assert from 'node:assert/strict';

import { LateQueue } from '../src/late_queue.js';
import { UploadSender, decodePiece } from '../src/upload.js';

/** A spill store as IndexedDB behaves: asynchronous, operations in the order they were made. */
class FakeSpill {
  constructor() {
    this.frames = new Map();
    this.chain = Promise.resolve();
    this.puts = 0;
    this.refuse = new Set();
  }

  /** Runs `f` after every operation made before it; one that fails does not stop the next. */
  op(f) {
    const done = this.chain.then(() => new Promise((r) => setTimeout(r, 1))).then(f);
    this.chain = done.catch(() => {});
    return done;
  }

  put(key, frame) {
    return this.op(() => {
      if (this.refuse.has(key)) throw new Error('quota');
      this.puts += 1;
      this.frames.set(key, frame);
    });
  }

  take(key) {
    return this.op(() => {
      const f = this.frames.get(key);
      this.frames.delete(key);
      return f;
    });
  }

  clear() {
    return this.op(() => this.frames.clear());
  }
}

const frame = (i, len = 10) => ({ track: 0, key: false, pts: i, dts: i, data: new Uint8Array(len).fill(i) });

/** Drains the queue the way the sender does: what is in memory now, then waits for refills. */
async function drain(q) {
  const out = [];
  for (let guard = 0; q.length > 0 && guard < 1000; guard += 1) {
    while (q.headLength() !== null) out.push(q.shift().pts);
    await new Promise((r) => setTimeout(r, 5));
  }
  return out;
}

test('late queue: past its memory bound frames go to the spill store and come back in order', async () => {
  const spill = new FakeSpill();
  const q = new LateQueue(30, spill);
  for (let i = 0; i < 10; i += 1) q.push(frame(i));
  assert.equal(q.length, 10);
  assert.equal(q.bytes, 100);
  assert.equal(q.memory.length, 3, 'three 10-byte frames fit in 30 bytes');
  assert.equal(q.stats.spilled, 7);
  // A frame kept while others are spilled goes after them, even when memory has room.
  q.shift();
  q.push(frame(10));
  assert.deepEqual(await drain(q), [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
  assert.equal(spill.puts, 8);
  assert.equal(spill.frames.size, 0, 'nothing is left in the store');
  assert.equal(q.bytes, 0);
  assert.equal(q.memoryUsed, 0);
});

test('late queue: a frame the store refused is counted lost and the rest still come', async () => {
  const spill = new FakeSpill();
  // Frame 0 is in memory, frames 1-3 are spilled under keys 0-2: key 1 (frame 2) is refused.
  spill.refuse.add(1);
  const q = new LateQueue(10, spill);
  for (let i = 0; i < 4; i += 1) q.push(frame(i));
  assert.deepEqual(await drain(q), [0, 1, 3]);
  assert.equal(q.stats.lost, 1);
  assert.equal(q.bytes, 0);
});

test('late queue: without a spill store everything stays in memory', () => {
  const q = new LateQueue(5);
  for (let i = 0; i < 4; i += 1) q.push(frame(i));
  assert.equal(q.memory.length, 4);
  assert.equal(q.headLength(), 10);
  q.clear();
  assert.equal(q.length, 0);
  assert.equal(q.headLength(), null);
});

test('backfill with a spill store: the sender sends the spilled frames late, in order, after end', async () => {
  const spill = new FakeSpill();
  const s = new UploadSender().withBackfill(1 << 20, 2000, spill);
  s.handleText(JSON.stringify({ type: 'welcome', session: 's', window_bytes: 1 << 20, max_piece_bytes: 1 << 16,
    features: ['backfill'], backfill: { max_frames: 100, max_bytes: 1 << 20, wait_ms: 5000 } }));
  for (let i = 0; i < 5; i += 1) assert.equal(s.keepLate(0, false, i * 1000, i * 1000, new Uint8Array(1000)), true);
  assert.deepEqual(s.lateWaiting(), { frames: 5, bytes: 5000 });
  s.end();
  const late = [];
  for (let guard = 0; late.length < 5 && guard < 1000; guard += 1) {
    s.releaseLate(Infinity);
    for (let m = s.pollTransmit(); m !== null; m = s.pollTransmit()) {
      if (typeof m === 'string') continue;
      const p = decodePiece(m);
      if (p.late && p.last) late.push(p.pts);
    }
    await new Promise((r) => setTimeout(r, 5));
  }
  assert.deepEqual(late, [0, 1000, 2000, 3000, 4000]);
  assert.equal(spill.puts, 3, 'two frames in memory, three spilled');
});
