// Plays one live stream of an attempt: receive-only WebRTC from the server, in the WHEP shape
// (POST an SDP offer, get 201 + Location + the answer, DELETE to end), authorised by the
// login cookie. Re-attaches by itself with a new peer connection when the connection fails.
// The server keeps the viewer attached while the candidate reconnects, so a candidate's
// outage needs nothing here.

const BACKOFF_MS = [1000, 2000, 4000, 8000, 15000];
const GATHER_TIMEOUT_MS = 2000;
const DISCONNECTED_GRACE_MS = 3000;

function pinVp8(transceiver) {
  const codecs = RTCRtpReceiver.getCapabilities("video").codecs.filter(
    (c) => c.mimeType === "video/VP8" || c.mimeType === "video/rtx");
  transceiver.setCodecPreferences(codecs);
}

function gatheringDone(pc) {
  if (pc.iceGatheringState === "complete") return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      if (pc.iceGatheringState !== "complete") return;
      pc.removeEventListener("icegatheringstatechange", done);
      resolve();
    };
    pc.addEventListener("icegatheringstatechange", done);
    setTimeout(resolve, GATHER_TIMEOUT_MS);
  });
}

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
      pinVp8(pc.addTransceiver("video", { direction: "recvonly" }));
      pc.addEventListener("track", (event) => {
        this.video.srcObject = new MediaStream([event.track]);
        this.video.play().catch(() => {});
      });
      pc.addEventListener("connectionstatechange", () => this.onConnection(pc, generation));
      await pc.setLocalDescription(await pc.createOffer());
      await gatheringDone(pc);
      if (generation !== this.generation) return;
      const response = await fetch(this.url, {
        method: "POST",
        headers: { "Content-Type": "application/sdp" },
        credentials: "same-origin",
        body: pc.localDescription.sdp,
      });
      if (generation !== this.generation) return;
      if (response.status !== 201) {
        const message = await response.text();
        if ([401, 403, 404, 409, 415].includes(response.status)) {
          this.release(false);
          this.stopped = true;
          this.report("refused", `${response.status} ${message}`);
          return;
        }
        throw new Error(`${response.status} ${message}`);
      }
      this.location = new URL(response.headers.get("Location"), window.location.href).href;
      await pc.setRemoteDescription({ type: "answer", sdp: await response.text() });
    } catch (err) {
      if (generation === this.generation) this.retry(String(err && err.message ? err.message : err));
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
    const delay = BACKOFF_MS[Math.min(this.failures, BACKOFF_MS.length - 1)];
    this.failures++;
    this.report("retrying", reason);
    clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => this.connect(), delay * (0.8 + 0.4 * Math.random()));
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
