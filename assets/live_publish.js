// Publishes the candidate's camera (full and low resolution) and screen to the server over
// WebRTC, in the WHIP shape (RFC 9725): POST an SDP offer with the attempt's upload token, get
// 201 + Location + the answer, DELETE the Location to end.
//
// Every recovery is a new peer connection (webrtc_signal.js): after a failure, a lost network,
// or a new camera. Live video is independent of the recording: nothing here touches the
// recorder, and a failure here only retries.

import { ReconnectingConnection, negotiate, peerConnection, pinCodecs } from "./webrtc_signal.js";

const LOW_RESOLUTION = { width: { max: 320 }, height: { max: 240 }, frameRate: { max: 15 } };
const MAX_BITRATE = { camera: 600_000, camera_low: 150_000, screen: 800_000 };
const LEAVE_TIMEOUT_MS = 1000;

// One peer connection and the tracks it made for itself (the low-resolution clone).
function closeLink(link) {
  if (!link) return;
  link.pc.close();
  link.clones.forEach((track) => track.stop());
}

export class LivePublisher extends ReconnectingConnection {
  // url: the WHIP endpoint; token: the attempt's upload token; onStatus({status, detail}) with
  // status connecting | live | retrying | refused | stopped. start({camera, screen}) publishes
  // those MediaStreams (screen may be null); the camera goes at full and at low resolution.
  // rtcConfig: the RTCPeerConnection configuration (ICE servers, transport policy).
  constructor({ url, token, onStatus, rtcConfig }) {
    super(onStatus, "status", "live");
    this.url = url;
    this.token = token;
    this.rtcConfig = rtcConfig;
    this.camera = null;
    this.screen = null;
    this.link = null;
    this.retiring = [];
    this.location = null;
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
    this.halt();
    window.removeEventListener("offline", this.onOffline);
    window.removeEventListener("online", this.onOnline);
    window.removeEventListener("pagehide", this.onPageHide);
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

  // The tracks to send, as [stream name, track]; the low-resolution clone belongs to `link`.
  // The camera's stream may carry the microphone ("audio").
  liveTracks(link) {
    const tracks = [];
    const cam = this.camera && this.camera.getVideoTracks().find((t) => t.readyState === "live");
    if (cam) {
      const low = cam.clone();
      link.clones.push(low);
      tracks.push(["camera", cam], ["camera_low", low]);
      const mic = this.camera.getAudioTracks().find((t) => t.readyState === "live");
      if (mic) tracks.push(["audio", mic]);
    }
    const scr = this.screen && this.screen.getVideoTracks().find((t) => t.readyState === "live");
    if (scr) tracks.push(["screen", scr]);
    return tracks;
  }

  async connect({ keepCurrent = false } = {}) {
    const generation = this.nextAttempt();
    if (keepCurrent && this.link) this.retiring.push(this.link);
    else closeLink(this.link);
    const link = { pc: peerConnection(this.rtcConfig), clones: [] };
    this.link = link;
    const { pc } = link;
    // A newer connect() or a stop() took over while this one waited: it has closed `link`.
    const superseded = () => this.superseded(generation);
    const tracks = this.liveTracks(link);
    if (!tracks.length) {
      this.closeConnection(false);
      this.report("retrying", "no camera");
      return; // replaceStreams() brings the next attempt
    }
    this.reportAttempt();
    try {
      for (const [name, track] of tracks) {
        if (name === "audio") {
          pc.addTransceiver(track, { direction: "sendonly" });
          continue;
        }
        if (name === "camera_low") await track.applyConstraints(LOW_RESOLUTION).catch(() => {});
        const transceiver = pc.addTransceiver(track, { direction: "sendonly" });
        pinCodecs(transceiver, RTCRtpSender);
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
      this.watch(pc, generation);
      const streams = tracks.map(([name]) => name).filter((name) => name !== "audio").join(",");
      const location = await negotiate(pc, `${this.url}?streams=${streams}`,
                                       { Authorization: `Bearer ${this.token}` }, superseded);
      if (location) this.location = location;
    } catch (err) {
      this.failed(err, generation);
    }
  }

  // The new connection is up: the one it replaces can go (the server switched over).
  connected() {
    this.retiring.forEach(closeLink);
    this.retiring = [];
  }

  reconnect() {
    if (navigator.onLine === false) return; // the "online" event brings the next attempt
    this.connect();
  }

  // The candidate leaves: tell the server (keepalive, so it is sent as the page goes away).
  deleteSession() {
    if (!this.location) return null;
    const url = this.location;
    this.location = null;
    return fetch(url, { method: "DELETE", keepalive: true, headers: { Authorization: `Bearer ${this.token}` } })
      .catch(() => {});
  }

  // A dropped connection is being repaired: its session is forgotten without a DELETE, which
  // would tell the server the candidate left.
  closeConnection(dropped) {
    if (dropped) this.location = null;
    closeLink(this.link);
    this.link = null;
    this.retiring.forEach(closeLink);
    this.retiring = [];
  }
}
