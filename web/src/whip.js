// Publishing over WebRTC (WHIP, RFC 9725; docs/webrtc.md): the studio's alternative to the
// upload protocol. The browser's own WebRTC encoder sends the camera (H.264 — the server
// answers with nothing else) and the microphone (Opus); the server records and packages it like
// any source. Lower delay than the upload protocol, but what a bad network loses stays lost
// (no backfill), so the upload protocol remains the studio's default.

/** One WHIP publish. Events: `state` ({state, reason}), `live` ({videoId, location}),
 *  `ended` ({status}). */
export class WhipPublisher extends EventTarget {
  /**
   * @param {{token: string, video: MediaStreamTrack, audio: MediaStreamTrack|null,
   *          maxKbps?: number}} o the upload token (or stream key) and the tracks to send
   */
  constructor(o) {
    super();
    this.o = o;
    this.pc = null;
    this.location = null;
    this.videoId = null;
  }

  emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }

  async start() {
    this.emit('state', { state: 'connecting', reason: 'WebRTC (WHIP)' });
    const pc = new RTCPeerConnection();
    this.pc = pc;
    const video = pc.addTransceiver(this.o.video, { direction: 'sendonly' });
    if (this.o.audio) pc.addTransceiver(this.o.audio, { direction: 'sendonly' });
    if (this.o.maxKbps) {
      const p = video.sender.getParameters();
      p.encodings = (p.encodings?.length ? p.encodings : [{}]).map((e) => ({ ...e, maxBitrate: this.o.maxKbps * 1000 }));
      await video.sender.setParameters(p).catch(() => {});
    }
    await pc.setLocalDescription(await pc.createOffer());
    // No trickle: the offer goes with the candidates gathered within a second.
    await new Promise((resolve) => {
      if (pc.iceGatheringState === 'complete') return resolve();
      pc.addEventListener('icegatheringstatechange', () => pc.iceGatheringState === 'complete' && resolve());
      setTimeout(resolve, 1000);
    });
    const r = await fetch('/whip', {
      method: 'POST',
      headers: { 'Content-Type': 'application/sdp', Authorization: `Bearer ${this.o.token}` },
      body: pc.localDescription.sdp,
    });
    const answer = await r.text();
    if (r.status !== 201) {
      pc.close();
      throw new Error(`WHIP: ${r.status} ${answer.trim()}`);
    }
    this.location = r.headers.get('Location');
    // Location: /whip/{video}/{session}
    this.videoId = decodeURIComponent(this.location.split('/')[2] || '');
    await pc.setRemoteDescription({ type: 'answer', sdp: answer });
    pc.addEventListener('connectionstatechange', () => {
      if (this.pc !== pc) return;
      if (pc.connectionState === 'connected') this.emit('state', { state: 'live', reason: 'WebRTC (WHIP)' });
      if (pc.connectionState === 'disconnected') this.emit('state', { state: 'reconnecting', reason: 'WebRTC connection lost' });
      if (pc.connectionState === 'failed') this.finish('the WebRTC connection failed');
    });
    this.emit('live', { videoId: this.videoId, location: this.location });
  }

  /** Ends the publish: the server finishes the recording. */
  async stop() {
    const location = this.location;
    this.location = null;
    let status = null;
    if (location) {
      status = await fetch(location, { method: 'DELETE' }).then((r) => r.status).catch(() => null);
    }
    this.finish(null, status);
  }

  finish(reason, status = null) {
    const pc = this.pc;
    if (!pc) return;
    this.pc = null;
    pc.close();
    if (reason) this.emit('state', { state: 'failed', reason });
    this.emit('ended', { status, reason });
  }

  /** The sender's video stats (frames encoded, the encoder, key frames). */
  async stats() {
    const out = {};
    if (!this.pc) return out;
    (await this.pc.getStats()).forEach((s) => {
      if (s.type === 'outbound-rtp' && s.kind === 'video') {
        Object.assign(out, { framesEncoded: s.framesEncoded, keyFramesEncoded: s.keyFramesEncoded,
          pliCount: s.pliCount, encoder: s.encoderImplementation, width: s.frameWidth, height: s.frameHeight });
      }
    });
    return out;
  }
}
