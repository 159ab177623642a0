// The burnt-in clock survives scaling and noise, and a frame without it reads as null.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { drawClock, readClock } from '../src/clock.js';

/** A 2D context that paints filled rectangles into an RGBA buffer. */
function canvas(w, h) {
  const data = new Uint8ClampedArray(w * h * 4);
  const ctx = {
    fillStyle: '#000000',
    fillRect(x, y, rw, rh) {
      const v = parseInt(this.fillStyle.slice(1, 3), 16);
      for (let j = Math.max(0, y); j < Math.min(h, y + rh); j++) {
        for (let i = Math.max(0, x); i < Math.min(w, x + rw); i++) {
          data.set([v, v, v, 255], (j * w + i) * 4);
        }
      }
    },
  };
  return { ctx, img: { data, width: w, height: h } };
}

/** Nearest-neighbour scaling plus noise, as a video path would do (roughly). */
function degrade(img, w, h, noise) {
  const out = new Uint8ClampedArray(w * h * 4);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const sx = Math.floor((x * img.width) / w);
      const sy = Math.floor((y * img.height) / h);
      const v = img.data[(sy * img.width + sx) * 4] + (Math.random() - 0.5) * 2 * noise;
      out.set([v, v, v, 255], (y * w + x) * 4);
    }
  }
  return { data: out, width: w, height: h };
}

test('the clock reads back at full size, scaled down and with noise', () => {
  const ms = 1795600000123;
  const { ctx, img } = canvas(640, 360);
  drawClock(ctx, 640, 360, ms);
  assert.equal(readClock(img), ms);
  assert.equal(readClock(degrade(img, 448, 252, 40)), ms);
  assert.equal(readClock(degrade(img, 160, 90, 30)), ms);
});

test('a frame without a clock reads as null (black, white)', () => {
  const { ctx, img } = canvas(320, 180);
  assert.equal(readClock(img), null);
  ctx.fillStyle = '#ffffff';
  ctx.fillRect(0, 0, 320, 180);
  assert.equal(readClock(img), null);
});
