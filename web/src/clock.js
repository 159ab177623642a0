// The burnt-in clock of the glass-to-glass benchmark: the studio's test source draws the wall
// clock (Date.now(), ms) as two rows of black and white blocks; the watch page reads the blocks
// back from decoded video frames. Blocks span 1/28 of the width and 1/16 of the height, so they
// survive scaling (quality steps) and compression; a checksum rejects misreads.

const COLUMNS = 28; // 26 bits per row and a margin block each side
const ROWS = 16;
const BITS = 52; // 44 bits of milliseconds, 8 bits of checksum
const MS_BITS = 44;

/** 8 bits over the time; the XOR keeps an all-black (or all-white) frame from passing. */
function checksum(ms) {
  return (ms % 251) ^ 0xa5;
}

function bitsOf(ms) {
  const bits = [];
  for (let i = MS_BITS - 1; i >= 0; i--) bits.push(Math.floor(ms / 2 ** i) % 2);
  const c = checksum(ms);
  for (let i = 7; i >= 0; i--) bits.push((c >> i) & 1);
  return bits;
}

/** Where bit `i` sits, as fractions of the frame: [x0, y0, x1, y1]. */
function blockRect(i) {
  const row = Math.floor(i / 26);
  const col = 1 + (i % 26);
  return [col / COLUMNS, (1 + row) / ROWS, (col + 1) / COLUMNS, (2 + row) / ROWS];
}

/** Draws `ms` as blocks on a 2D context of size w×h (plus a grey band behind them). */
export function drawClock(ctx, w, h, ms) {
  ctx.fillStyle = '#808080';
  ctx.fillRect(0, (0.5 / ROWS) * h, w, (2.5 / ROWS) * h);
  bitsOf(ms).forEach((bit, i) => {
    const [x0, y0, x1, y1] = blockRect(i);
    ctx.fillStyle = bit ? '#ffffff' : '#000000';
    const X0 = Math.round(x0 * w);
    const Y0 = Math.round(y0 * h);
    ctx.fillRect(X0, Y0, Math.round(x1 * w) - X0, Math.round(y1 * h) - Y0);
  });
}

/**
 * Reads the clock back from RGBA pixels (`ImageData`-like: data, width, height). Returns the
 * milliseconds, or null when the checksum does not match (no clock in this frame).
 */
export function readClock(img) {
  const { data, width, height } = img;
  let ms = 0;
  let c = 0;
  for (let i = 0; i < BITS; i++) {
    const [x0, y0, x1, y1] = blockRect(i);
    // The middle half of the block, away from edges that compression blurs.
    const xa = Math.floor((x0 + (x1 - x0) * 0.25) * width);
    const xb = Math.max(xa + 1, Math.floor((x0 + (x1 - x0) * 0.75) * width));
    const ya = Math.floor((y0 + (y1 - y0) * 0.25) * height);
    const yb = Math.max(ya + 1, Math.floor((y0 + (y1 - y0) * 0.75) * height));
    let sum = 0;
    let n = 0;
    for (let y = ya; y < yb; y++) {
      for (let x = xa; x < xb; x++) {
        const p = (y * width + x) * 4;
        sum += data[p] * 0.299 + data[p + 1] * 0.587 + data[p + 2] * 0.114;
        n++;
      }
    }
    const bit = sum / n > 128 ? 1 : 0;
    if (i < MS_BITS) ms = ms * 2 + bit;
    else c = c * 2 + bit;
  }
  return checksum(ms) === c ? ms : null;
}

/**
 * A test source: a canvas that shows the clock, a moving bar and the time as text, and makes
 * a VideoFrame of itself on demand.
 */
export class ClockSource {
  /** @param {HTMLCanvasElement|OffscreenCanvas} canvas where to draw (its size is the picture's) */
  constructor(canvas) {
    this.canvas = canvas;
    this.width = canvas.width;
    this.height = canvas.height;
    this.ctx = canvas.getContext('2d');
    this.count = 0;
  }

  /** Draws the current time and returns a VideoFrame stamped `timestampUs`. */
  frame(timestampUs) {
    const { ctx, width: w, height: h } = this;
    const ms = Date.now();
    ctx.fillStyle = '#1d3557';
    ctx.fillRect(0, 0, w, h);
    const x = ((this.count * 4) % (w + 80)) - 80;
    ctx.fillStyle = '#e9c46a';
    ctx.fillRect(x, h * 0.55, 80, h * 0.3);
    ctx.fillStyle = '#ffffff';
    ctx.font = `${Math.round(h / 9)}px sans-serif`;
    ctx.fillText(new Date(ms).toISOString().slice(11, 23), w * 0.05, h * 0.4);
    ctx.fillText(`frame ${this.count}`, w * 0.05, h * 0.95);
    drawClock(ctx, w, h, ms);
    this.count += 1;
    return new VideoFrame(this.canvas, { timestamp: timestampUs });
  }
}
