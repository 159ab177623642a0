// Late frames (the upload protocol's backfill) waiting to be sent: the oldest in memory, up to
// `memoryBytes`, and past that in a spill store (IndexedDB in the page), read back in order as
// memory empties. Written here: a FIFO split across a synchronous and an asynchronous store is
// a few dozen lines, and no IndexedDB wrapper offers one.

export class LateQueue {
  /**
   * @param {number} memoryBytes frames kept in memory before the spill store is used
   * @param {object|null} spill `put(key, frame)`, `take(key)` (the frame, removed; undefined
   *   when it is not there), `clear()`, all returning promises; null keeps everything in memory
   */
  constructor(memoryBytes = Infinity, spill = null) {
    this.memoryBytes = memoryBytes;
    this.spill = spill;
    /** The oldest frames, in memory. */
    this.memory = [];
    this.memoryUsed = 0;
    /** The newer ones in the spill store, oldest first: {key, len}. */
    this.spilled = [];
    this.nextKey = 0;
    /** Payload bytes waiting, in memory and spilled. */
    this.bytes = 0;
    this.refilling = false;
    /** Called when frames came back from the spill store (the sender sends them). */
    this.onRefill = null;
    this.stats = { spilled: 0, lost: 0 };
  }

  /** Frames waiting, in memory and spilled. */
  get length() {
    return this.memory.length + this.spilled.length;
  }

  /** Keeps a frame ({track, key, pts, dts, data}), after every frame kept before it. */
  push(frame) {
    const len = frame.data.byteLength;
    this.bytes += len;
    if (this.spill && (this.spilled.length > 0 || this.memoryUsed + len > this.memoryBytes)) {
      const key = this.nextKey;
      this.nextKey += 1;
      this.spilled.push({ key, len });
      this.stats.spilled += 1;
      // A frame the store refused is found missing when read back (counted as lost).
      this.spill.put(key, frame).catch(() => {});
      return;
    }
    this.memory.push(frame);
    this.memoryUsed += len;
  }

  /** The next frame's length, or null while it is still being read back (or none waits). */
  headLength() {
    return this.memory.length > 0 ? this.memory[0].data.byteLength : null;
  }

  /** The next frame, from memory; reading spilled ones back starts as memory frees up. */
  shift() {
    const f = this.memory.shift();
    if (f) {
      this.memoryUsed -= f.data.byteLength;
      this.bytes -= f.data.byteLength;
    }
    this.refill();
    return f;
  }

  /** Moves spilled frames back into memory, oldest first, while they fit (one at least). */
  async refill() {
    if (this.refilling || !this.spill) return;
    this.refilling = true;
    let moved = 0;
    try {
      while (this.spilled.length > 0
          && (this.memory.length === 0 || this.memoryUsed + this.spilled[0].len <= this.memoryBytes)) {
        const { key, len } = this.spilled[0];
        let frame;
        try {
          frame = await this.spill.take(key);
        } catch {
          frame = undefined;
        }
        this.spilled.shift();
        if (frame === undefined) {
          this.bytes -= len;
          this.stats.lost += 1;
          continue;
        }
        this.memory.push(frame);
        this.memoryUsed += len;
        moved += 1;
      }
    } finally {
      this.refilling = false;
    }
    if (moved > 0 && this.onRefill) this.onRefill();
  }

  /** Forgets every frame, spilled ones too. */
  clear() {
    this.memory = [];
    this.memoryUsed = 0;
    this.spilled = [];
    this.bytes = 0;
    if (this.spill) this.spill.clear().catch(() => {});
  }
}

const STORE = 'frames';

function request(r) {
  return new Promise((resolve, reject) => {
    r.onsuccess = () => resolve(r.result);
    r.onerror = () => reject(r.error);
  });
}

/** A spill store in IndexedDB: one object store of frames by key. */
export class IdbSpill {
  /** Opens (or makes) the database and drops what an earlier page left in it. */
  static async open(name = 'vshare-backfill') {
    const open = indexedDB.open(name, 1);
    open.onupgradeneeded = () => open.result.createObjectStore(STORE);
    const db = await request(open);
    const spill = new IdbSpill(db);
    await spill.clear();
    return spill;
  }

  constructor(db) {
    this.db = db;
    /** Frames written, for tests and the stats line. */
    this.writes = 0;
  }

  store(mode) {
    return this.db.transaction(STORE, mode).objectStore(STORE);
  }

  async put(key, frame) {
    await request(this.store('readwrite').put(frame, key));
    this.writes += 1;
  }

  /** The frame under `key`, removed in the same transaction. */
  take(key) {
    return new Promise((resolve, reject) => {
      const store = this.store('readwrite');
      const r = store.get(key);
      r.onsuccess = () => {
        store.delete(key);
        resolve(r.result);
      };
      r.onerror = () => reject(r.error);
    });
  }

  clear() {
    return request(this.store('readwrite').clear());
  }
}
