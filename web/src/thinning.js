// Frame thinning for a quality step below the camera's frame rate: at most one frame in each
// 1/fps slot of the capture clock, so the frames kept never outnumber the rate (the server
// snaps them to its grid; docs/timestamps.md). At or above the camera's rate every frame goes.
// Pure: the studio asks per captured frame and says which frames it really kept.

export class FrameThinner {
  constructor() {
    this.fps = undefined;
    this.originUs = undefined;
    this.lastSlot = -Infinity;
    this.lastKeptUs = undefined;
  }

  /** Whether the frame captured at `tUs` goes, at `fps` from a camera of `cameraFps`. */
  wants(tUs, fps, cameraFps) {
    if (fps >= cameraFps) {
      this.fps = undefined;
      return true;
    }
    if (this.fps !== fps) {
      // A new rate counts its slots from the last frame kept: a change neither skips frames
      // (slots of a lower rate numbered below the old ones) nor bunches them.
      this.fps = fps;
      this.originUs = this.lastKeptUs ?? tUs;
      this.lastSlot = this.lastKeptUs === undefined ? -Infinity : 0;
    }
    const slot = Math.round(((tUs - this.originUs) * fps) / 1e6);
    return slot > this.lastSlot;
  }

  /** The frame at `tUs` (which `wants` let through) was encoded. */
  kept(tUs) {
    if (this.fps !== undefined) {
      this.lastSlot = Math.round(((tUs - this.originUs) * this.fps) / 1e6);
    }
    this.lastKeptUs = tUs;
  }
}
