// Plays one live stream of an attempt: receive-only WebRTC from the server, in the WHEP shape
// (POST an SDP offer, get 201 + Location + the answer, DELETE to end), authorised by the
// login cookie. Re-attaches by itself with a new peer connection when the connection fails.
// The server keeps the viewer attached while the candidate reconnects, so a candidate's
// outage needs nothing here.

import { ReconnectingConnection, negotiate, peerConnection, pinCodecs } from "./webrtc_signal.js";

export class LiveViewer extends ReconnectingConnection {
  // url: the WHEP endpoint of one stream; video: the <video> element to play it in;
  // onState({state, detail}) with state connecting | playing | retrying | refused | stopped;
  // rtcConfig: the RTCPeerConnection configuration (ICE servers, transport policy); audio: also
  // receive the attempt's sound.
  constructor({ url, video, onState, rtcConfig, audio = false }) {
    super(onState, "state", "playing");
    this.url = url;
    this.rtcConfig = rtcConfig;
    this.audio = audio;
    this.video = video;
    this.pc = null;
    this.location = null;
  }

  start() {
    this.stopped = false;
    this.connect();
  }

  stop() {
    this.halt();
    this.closeConnection(true);
    this.report("stopped");
  }

  async connect() {
    const generation = this.nextAttempt();
    this.closeConnection(false);
    this.reportAttempt();
    const pc = peerConnection(this.rtcConfig);
    this.pc = pc;
    try {
      pinCodecs(pc.addTransceiver("video", { direction: "recvonly" }), RTCRtpReceiver,
                ["video/VP8", "video/H264"]);
      if (this.audio) pc.addTransceiver("audio", { direction: "recvonly" });
      const stream = new MediaStream();
      pc.addEventListener("track", (event) => {
        stream.addTrack(event.track);
        this.video.srcObject = stream;
        this.video.play().catch(() => {});
      });
      this.watch(pc, generation);
      const location = await negotiate(pc, this.url, {}, () => this.superseded(generation));
      if (location) this.location = location;
    } catch (err) {
      this.failed(err, generation);
    }
  }

  // Close the connection; when it is dropped or stopped, also end the session on the server
  // (DELETE): a retry makes a new one.
  closeConnection(endSession) {
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
