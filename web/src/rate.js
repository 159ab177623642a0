// The sender's half of rate adaptation (docs/upload-protocol.md, *Adaptation*): a line-for-line
// port of `SenderRate` in crates/upload/src/rate.rs. Keep the two in step.

/** The lowest bitrate ever suggested, kbit/s. */
export const MIN_KBPS = 64;

/** The quality steps, best first: a scale of the capture size and a frame rate. */
export const STEPS = Object.freeze([
  Object.freeze({ scale: 1.0, fps: 30 }),
  Object.freeze({ scale: 0.75, fps: 30 }),
  Object.freeze({ scale: 0.5, fps: 25 }),
  Object.freeze({ scale: 0.375, fps: 20 }),
  Object.freeze({ scale: 0.25, fps: 15 }),
]);
/** Bits per pixel a step needs to look right. */
const BITS_PER_PIXEL = 0.08;
/** A step up needs the target this much above the better step's need… */
const UP_MARGIN = 1.3;
/** …for this long. */
const UP_HOLD_US = 3_000_000;
/** Frames are dropped when the unacknowledged backlog is more than this much media. */
const BACKLOG_LIMIT_S = 1.5;
/** The lowest video bitrate the sender sets. */
const MIN_VIDEO_KBPS = 32;

const clamp = (v, lo, hi) => Math.min(Math.max(v, lo), hi);

/** The sender's half: target bitrate, quality step, and when to drop. */
export class SenderRate {
  constructor(captureWidth, captureHeight, audioKbps, startKbps, maxKbps) {
    this.captureWidth = captureWidth;
    this.captureHeight = captureHeight;
    this.audioKbps = audioKbps;
    this.maxKbps = Math.max(maxKbps, MIN_KBPS);
    this.target = clamp(startKbps, MIN_KBPS, Math.max(maxKbps, MIN_KBPS));
    this.currentStep = 0;
    this.upSinceUs = null;
    while (this.currentStep + 1 < STEPS.length && this.videoKbps() < this.needKbps(this.currentStep)) {
      this.currentStep += 1;
    }
  }

  /** Total target (video + audio), kbit/s. */
  targetKbps() {
    return this.target;
  }

  /** What the video encoder should aim for, kbit/s. */
  videoKbps() {
    return Math.max(Math.max(this.target - this.audioKbps, 0), MIN_VIDEO_KBPS);
  }

  /** The current quality step's index in STEPS. */
  step() {
    return this.currentStep;
  }

  /** Picture size of a step: the capture size scaled, rounded down to even numbers. */
  stepSize(step) {
    const s = STEPS[Math.min(step, STEPS.length - 1)].scale;
    const even = (v) => Math.max(Math.trunc(v * s) & ~1, 2);
    return [even(this.captureWidth), even(this.captureHeight)];
  }

  stepFps(step) {
    return STEPS[Math.min(step, STEPS.length - 1)].fps;
  }

  /** Video kbit/s a step needs. */
  needKbps(step) {
    const [w, h] = this.stepSize(step);
    return Math.trunc((w * h * this.stepFps(step) * BITS_PER_PIXEL) / 1000);
  }

  /** Takes the server's suggestion; returns the new step when it changed, else null. */
  onFeedback(nowUs, suggestedKbps) {
    this.target = clamp(suggestedKbps, MIN_KBPS, this.maxKbps);
    const before = this.currentStep;
    while (this.currentStep + 1 < STEPS.length && this.videoKbps() < this.needKbps(this.currentStep)) {
      this.currentStep += 1;
    }
    if (this.currentStep !== before) {
      this.upSinceUs = null;
      return this.currentStep;
    }
    if (this.currentStep > 0 && this.videoKbps() >= UP_MARGIN * this.needKbps(this.currentStep - 1)) {
      if (this.upSinceUs === null) this.upSinceUs = nowUs;
      if (nowUs - this.upSinceUs >= UP_HOLD_US) {
        this.currentStep -= 1;
        this.upSinceUs = null;
        return this.currentStep;
      }
    } else {
      this.upSinceUs = null;
    }
    return null;
  }

  /**
   * Whether a backlog of `unackedBytes` (sent or not, not yet acknowledged) is too much media:
   * then video frames are dropped until the next key frame.
   */
  backlogTooBig(unackedBytes) {
    return unackedBytes * 8 > BACKLOG_LIMIT_S * this.target * 1000;
  }

  /**
   * `backfill`: late frame bytes that may be added to a backlog of `unackedBytes` now: up to
   * half the drop point, so late frames only use room the live send leaves.
   */
  lateRoom(unackedBytes) {
    const half = Math.floor((BACKLOG_LIMIT_S * this.target * 1000) / 8 / 2);
    return Math.max(half - unackedBytes, 0);
  }
}
