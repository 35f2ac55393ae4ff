// Publishes the candidate's camera (full and low resolution) and screen to the server over
// WebRTC, in the WHIP shape (RFC 9725): POST an SDP offer with the attempt's upload token, get
// 201 + Location + the answer, DELETE the Location to end.
//
// The server (aiortc) has no ICE restart, so every recovery is a new peer connection: after a
// failure, a lost network, or a new camera, with backoff. Live video is independent of the
// recording: nothing here touches the recorder, and a failure here only retries.

import {
  DISCONNECTED_GRACE_MS, Refused, backoffDelay, errorText, negotiate, pinVp8,
} from "./webrtc_signal.js";

const LOW_RESOLUTION = { width: { max: 320 }, height: { max: 240 }, frameRate: { max: 15 } };
const MAX_BITRATE = { camera: 600_000, camera_low: 150_000, screen: 800_000 };
const LEAVE_TIMEOUT_MS = 1000;

// One peer connection and the tracks it made for itself (the low-resolution clone).
function closeLink(link) {
  if (!link) return;
  link.pc.close();
  link.clones.forEach((track) => track.stop());
}

export class LivePublisher {
  // url: the WHIP endpoint; token: the attempt's upload token; onStatus({status, detail}) with
  // status connecting | live | retrying | refused | stopped. start({camera, screen}) publishes
  // those MediaStreams (screen may be null); the camera goes at full and at low resolution.
  constructor({ url, token, onStatus }) {
    this.url = url;
    this.token = token;
    this.onStatus = onStatus || (() => {});
    this.camera = null;
    this.screen = null;
    this.link = null;
    this.retiring = [];
    this.location = null;
    this.failures = 0;
    this.retryTimer = null;
    this.graceTimer = null;
    this.stopped = true;
    this.generation = 0;
    this.onOffline = () => this.drop("network offline");
    this.onOnline = () => {
      if (this.link?.pc.connectionState !== "connected") this.reconnectSoon(0);
    };
    this.onPageHide = () => this.deleteSession();
  }

  start({ camera, screen }) {
    this.camera = camera || null;
    this.screen = screen || null;
    this.stopped = false;
    window.addEventListener("offline", this.onOffline);
    window.addEventListener("online", this.onOnline);
    window.addEventListener("pagehide", this.onPageHide);
    this.connect();
  }

  // A re-acquired camera or a new screen share: publish it on a new connection, made before
  // the current one is closed (each side switches once the new one is up), so the picture goes on.
  replaceStreams({ camera, screen }) {
    this.camera = camera || null;
    this.screen = screen || null;
    if (!this.stopped) this.connect({ keepCurrent: true });
  }

  stop() {
    this.stopped = true;
    window.removeEventListener("offline", this.onOffline);
    window.removeEventListener("online", this.onOnline);
    window.removeEventListener("pagehide", this.onPageHide);
    clearTimeout(this.retryTimer);
    clearTimeout(this.graceTimer);
    // Close once the server has the DELETE, so it sees the candidate leave, not a lost connection.
    const links = [this.link, ...this.retiring];
    this.link = null;
    this.retiring = [];
    const close = () => links.forEach(closeLink);
    const leaving = this.deleteSession();
    if (leaving) {
      leaving.finally(close);
      setTimeout(close, LEAVE_TIMEOUT_MS);
    } else {
      close();
    }
    this.report("stopped");
  }

  report(status, detail = "") {
    try {
      this.onStatus({ status, detail });
    } catch (err) {
      console.warn("live status handler failed", err);
    }
  }

  // The tracks to send, as [stream name, track]; the low-resolution clone belongs to `link`.
  liveTracks(link) {
    const tracks = [];
    const cam = this.camera && this.camera.getVideoTracks().find((t) => t.readyState === "live");
    if (cam) {
      const low = cam.clone();
      link.clones.push(low);
      tracks.push(["camera", cam], ["camera_low", low]);
    }
    const scr = this.screen && this.screen.getVideoTracks().find((t) => t.readyState === "live");
    if (scr) tracks.push(["screen", scr]);
    return tracks;
  }

  async connect({ keepCurrent = false } = {}) {
    const generation = ++this.generation;
    clearTimeout(this.retryTimer);
    if (keepCurrent && this.link) this.retiring.push(this.link);
    else closeLink(this.link);
    const link = { pc: new RTCPeerConnection({ iceServers: [] }), clones: [] };
    this.link = link;
    const { pc } = link;
    // A newer connect() or a stop() took over while this one waited: it has closed `link`.
    const superseded = () => generation !== this.generation;
    const tracks = this.liveTracks(link);
    if (!tracks.length) {
      this.closeAll();
      this.report("retrying", "no camera");
      return; // replaceStreams() brings the next attempt
    }
    this.report(this.failures ? "retrying" : "connecting");
    try {
      for (const [name, track] of tracks) {
        if (name === "camera_low") await track.applyConstraints(LOW_RESOLUTION).catch(() => {});
        const transceiver = pc.addTransceiver(track, { direction: "sendonly" });
        pinVp8(transceiver, RTCRtpSender);
        const params = transceiver.sender.getParameters();
        if (params.encodings && params.encodings.length) {
          params.encodings[0].maxBitrate = MAX_BITRATE[name];
          // Where the clone could not be scaled down at the source, the encoder does it.
          const width = track.getSettings().width || 0;
          if (name === "camera_low" && width > LOW_RESOLUTION.width.max) {
            params.encodings[0].scaleResolutionDownBy = width / LOW_RESOLUTION.width.max;
          }
          await transceiver.sender.setParameters(params).catch(() => {});
        }
        track.addEventListener("ended", () => {
          if (!superseded() && name !== "camera_low") this.drop(`${name} ended`);
        });
      }
      pc.addEventListener("connectionstatechange", () => this.onState(pc, generation));
      const streams = tracks.map(([name]) => name).join(",");
      const location = await negotiate(pc, `${this.url}?streams=${streams}`,
                                       { Authorization: `Bearer ${this.token}` }, superseded);
      if (location) this.location = location;
    } catch (err) {
      if (superseded()) return;
      if (err instanceof Refused) {
        this.closeAll();
        this.stopped = true;
        this.report("refused", err.message);
      } else {
        this.drop(errorText(err));
      }
    }
  }

  onState(pc, generation) {
    if (generation !== this.generation) return;
    const state = pc.connectionState;
    clearTimeout(this.graceTimer);
    if (state === "connected") {
      this.failures = 0;
      // The new connection is up: the one it replaces can go (the server switched over).
      this.retiring.forEach(closeLink);
      this.retiring = [];
      this.report("live");
    } else if (state === "failed" || state === "closed") {
      this.drop(`connection ${state}`);
    } else if (state === "disconnected") {
      this.graceTimer = setTimeout(() => this.drop("connection lost"), DISCONNECTED_GRACE_MS);
    }
  }

  // The connection is gone: close it and try again after a backoff. No DELETE: that would
  // tell the server the candidate left, while this is a connection being repaired.
  drop(reason) {
    if (this.stopped) return;
    this.generation++;
    this.location = null;
    this.closeAll();
    const delay = backoffDelay(this.failures);
    this.failures++;
    this.report("retrying", reason);
    this.reconnectSoon(delay);
  }

  reconnectSoon(delay) {
    if (this.stopped) return;
    clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => {
      if (navigator.onLine === false) return; // the "online" event brings the next attempt
      this.connect();
    }, delay);
  }

  // The candidate leaves: tell the server (keepalive, so it is sent as the page goes away).
  deleteSession() {
    if (!this.location) return null;
    const url = this.location;
    this.location = null;
    return fetch(url, { method: "DELETE", keepalive: true, headers: { Authorization: `Bearer ${this.token}` } })
      .catch(() => {});
  }

  closeAll() {
    closeLink(this.link);
    this.link = null;
    this.retiring.forEach(closeLink);
    this.retiring = [];
  }
}
