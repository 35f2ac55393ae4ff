// Plays one live stream of an attempt: receive-only WebRTC from the server, in the WHEP shape
// (POST an SDP offer, get 201 + Location + the answer, DELETE to end), authorised by the
// login cookie. Re-attaches by itself with a new peer connection when the connection fails.
// The server keeps the viewer attached while the candidate reconnects, so a candidate's
// outage needs nothing here.

import {
  DISCONNECTED_GRACE_MS, Refused, backoffDelay, errorText, negotiate, pinVp8,
} from "./webrtc_signal.js";

export class LiveViewer {
  // url: the WHEP endpoint of one stream; video: the <video> element to play it in;
  // onState({state, detail}) with state connecting | playing | retrying | refused | stopped.
  constructor({ url, video, onState }) {
    this.url = url;
    this.video = video;
    this.onState = onState || (() => {});
    this.pc = null;
    this.location = null;
    this.failures = 0;
    this.retryTimer = null;
    this.graceTimer = null;
    this.generation = 0;
    this.stopped = true;
  }

  start() {
    this.stopped = false;
    this.connect();
  }

  stop() {
    this.stopped = true;
    this.generation++;
    clearTimeout(this.retryTimer);
    clearTimeout(this.graceTimer);
    this.release(true);
    this.report("stopped");
  }

  report(state, detail = "") {
    try {
      this.onState({ state, detail });
    } catch (err) {
      console.warn("live state handler failed", err);
    }
  }

  async connect() {
    const generation = ++this.generation;
    this.release(false);
    this.report(this.failures ? "retrying" : "connecting");
    const pc = new RTCPeerConnection({ iceServers: [] });
    this.pc = pc;
    try {
      pinVp8(pc.addTransceiver("video", { direction: "recvonly" }), RTCRtpReceiver);
      pc.addEventListener("track", (event) => {
        this.video.srcObject = new MediaStream([event.track]);
        this.video.play().catch(() => {});
      });
      pc.addEventListener("connectionstatechange", () => this.onConnection(pc, generation));
      const location = await negotiate(pc, this.url, {}, () => generation !== this.generation);
      if (location) this.location = location;
    } catch (err) {
      if (generation !== this.generation) return;
      if (err instanceof Refused) {
        this.release(false);
        this.stopped = true;
        this.report("refused", err.message);
      } else {
        this.retry(errorText(err));
      }
    }
  }

  onConnection(pc, generation) {
    if (generation !== this.generation) return;
    clearTimeout(this.graceTimer);
    const state = pc.connectionState;
    if (state === "connected") {
      this.failures = 0;
      this.report("playing");
    } else if (state === "failed" || state === "closed") {
      this.retry(`connection ${state}`);
    } else if (state === "disconnected") {
      this.graceTimer = setTimeout(() => this.retry("connection lost"), DISCONNECTED_GRACE_MS);
    }
  }

  retry(reason) {
    if (this.stopped) return;
    this.generation++;
    this.release(true);
    const delay = backoffDelay(this.failures);
    this.failures++;
    this.report("retrying", reason);
    clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => this.connect(), delay);
  }

  // Close the connection; with endSession, also tell the server (DELETE).
  release(endSession) {
    if (endSession && this.location) {
      fetch(this.location, { method: "DELETE", keepalive: true, credentials: "same-origin" })
        .catch(() => {});
    }
    this.location = null;
    if (this.pc) {
      this.pc.close();
      this.pc = null;
    }
  }
}
