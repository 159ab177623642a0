// The studio's frame thinning keeps the quality step's rate through changes of step.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FrameThinner } from '../src/thinning.js';

/** The capture times a 30 fps camera delivers, with `jitterUs` of alternating error. */
function camera(seconds, jitterUs = 0) {
  return Array.from({ length: seconds * 30 }, (_, i) => Math.round((i * 1e6) / 30) + (i % 2 ? jitterUs : -jitterUs));
}

/** Runs the thinner over `times` with the rate `fpsAt(t)`; returns the kept times. */
function run(times, fpsAt) {
  const thin = new FrameThinner();
  const kept = [];
  for (const t of times) {
    if (thin.wants(t, fpsAt(t), 30)) {
      thin.kept(t);
      kept.push(t);
    }
  }
  return kept;
}

function gaps(kept) {
  return kept.slice(1).map((t, i) => t - kept[i]);
}

test('at or above the camera rate every frame goes', () => {
  const times = camera(2);
  assert.deepEqual(run(times, () => 30), times);
});

test('a lower rate keeps one frame per slot', () => {
  const kept = run(camera(10, 4000), () => 15);
  assert.ok(Math.abs(kept.length - 150) <= 1, `${kept.length} frames for 10 s at 15 fps`);
  assert.ok(Math.max(...gaps(kept)) <= 1e6 / 15 + 1e6 / 30 + 8000);
});

test('a step down from 20 to 15 fps neither skips nor bunches frames', () => {
  // 20 fps for 6.5 s, then 15: slots of the lower rate must not be compared with the old ones.
  const kept = run(camera(10), (t) => (t < 6.5e6 ? 20 : 15));
  const g = gaps(kept);
  assert.ok(Math.max(...g) <= 1e6 / 15 + 1e6 / 30 + 1, `largest gap ${Math.max(...g)} µs`);
  assert.ok(Math.min(...g) >= 1e6 / 30 - 1, `smallest gap ${Math.min(...g)} µs`);
});

test('a step up from 15 to 20 fps and back to the camera rate', () => {
  const kept = run(camera(9), (t) => (t < 3e6 ? 15 : t < 6e6 ? 20 : 30));
  const g = gaps(kept);
  assert.ok(Math.max(...g) <= 1e6 / 15 + 1e6 / 30 + 1, `largest gap ${Math.max(...g)} µs`);
  const last3s = kept.filter((t) => t >= 6.1e6).length;
  assert.ok(last3s >= 85, `${last3s} frames in the last 2.9 s at 30 fps`);
});

test('a frame the encoder could not take leaves its slot to the next one', () => {
  const thin = new FrameThinner();
  const times = camera(1);
  const kept = [];
  times.forEach((t, i) => {
    if (thin.wants(t, 15, 30) && i !== 2) {
      thin.kept(t);
      kept.push(t);
    }
  });
  // Frame 2 was wanted but dropped: frame 3 takes its slot.
  assert.ok(kept.includes(times[3]), JSON.stringify(kept.slice(0, 4)));
});
