// What the live publisher and viewer share: the WHIP/WHEP exchange with our server (POST the
// complete SDP offer, get 201 + Location + the answer), the codecs (the relay passes frames
// through and cannot transcode: our pages publish VP8, viewers take VP8 or H.264, whichever the
// publisher sends), and their reconnect loop with its backoff.

const BACKOFF_MS = [1000, 2000, 4000, 8000, 15000];
const GATHER_TIMEOUT_MS = 2000;
// Chrome reports "disconnected" on short hiccups; give it this long to recover on its own.
const DISCONNECTED_GRACE_MS = 3000;
// Refusals (token, session, attempt over, live video off, an offer the server cannot answer) do
// not get better by retrying.
const REFUSALS = [401, 403, 404, 409, 415, 422];

class Refused extends Error {}

const watchedTransports = new WeakSet();

function backoffDelay(failures) {
  const base = BACKOFF_MS[Math.min(failures, BACKOFF_MS.length - 1)];
  return base * (0.8 + 0.4 * Math.random());
}

// The page's RTCPeerConnection configuration (iceServers with TURN credentials minted by the
// server, iceTransportPolicy); none means host candidates only.
export function peerConnection(rtcConfig) {
  const config = rtcConfig && rtcConfig.iceServers ? rtcConfig : {};
  return new RTCPeerConnection({ iceServers: [], ...config });
}

// Offer only `mimeTypes` (and retransmission) on a video transceiver.
export function pinCodecs(transceiver, capabilities, mimeTypes = ["video/VP8"]) {
  const codecs = capabilities.getCapabilities("video").codecs.filter(
    (c) => mimeTypes.includes(c.mimeType) || c.mimeType === "video/rtx");
  transceiver.setCodecPreferences(codecs);
}

function gatheringDone(pc) {
  // The server takes no trickled candidates: the offer carries them all.
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

// Offer, POST, answer. Returns the session's Location, or null when `superseded()` turned true
// meanwhile; throws Refused for a final refusal and Error for anything worth retrying.
export async function negotiate(pc, url, headers, superseded) {
  await pc.setLocalDescription(await pc.createOffer());
  await gatheringDone(pc);
  if (superseded()) return null;
  const response = await fetch(url, {
    method: "POST",
    headers: { "Content-Type": "application/sdp", ...headers },
    credentials: "same-origin",
    body: pc.localDescription.sdp,
  });
  if (superseded()) return null;
  if (response.status !== 201) {
    const message = `${response.status} ${await response.text()}`;
    throw REFUSALS.includes(response.status) ? new Refused(message) : new Error(message);
  }
  const location = new URL(response.headers.get("Location"), window.location.href).href;
  await pc.setRemoteDescription({ type: "answer", sdp: await response.text() });
  return location;
}

function errorText(err) {
  return String(err && err.message ? err.message : err);
}

// The reconnect loop of a live connection. The server (aiortc) has no ICE restart, so every
// recovery is a new peer connection, after a backoff. Each connection attempt has a generation:
// a newer attempt, a drop or a stop makes the older one superseded, and it then leaves everything
// alone. Subclasses implement connect(), which begins with nextAttempt(), and
// closeConnection(dropped), dropped meaning the server session is given up for a retry.
export class ReconnectingConnection {
  // listener({[field]: state, detail}); connectedState: the state reported once connected.
  constructor(listener, field, connectedState) {
    this.listener = listener || (() => {});
    this.field = field;
    this.connectedState = connectedState;
    this.failures = 0;
    this.retryTimer = null;
    this.graceTimer = null;
    this.generation = 0;
    this.stopped = true;
  }

  report(state, detail = "") {
    try {
      this.listener({ [this.field]: state, detail });
    } catch (err) {
      console.warn(`live ${this.field} handler failed`, err);
    }
  }

  // Starts a connection attempt (a pending retry is then moot): returns its generation.
  nextAttempt() {
    clearTimeout(this.retryTimer);
    return ++this.generation;
  }

  superseded(generation) {
    return generation !== this.generation;
  }

  reportAttempt() {
    this.report(this.failures ? "retrying" : "connecting");
  }

  watch(pc, generation) {
    pc.addEventListener("connectionstatechange", () => this.onConnectionState(pc, generation));
  }

  onConnectionState(pc, generation) {
    if (this.superseded(generation)) return;
    clearTimeout(this.graceTimer);
    const state = pc.connectionState;
    if (state === "connected") {
      this.failures = 0;
      this.watchServerClose(pc, generation);
      this.connected();
      this.report(this.connectedState);
    } else if (state === "failed" || state === "closed") {
      this.drop(`connection ${state}`);
    } else if (state === "disconnected") {
      this.graceTimer = setTimeout(() => this.drop("connection lost"), DISCONNECTED_GRACE_MS);
    }
  }

  // The server ends a session (its access was revoked) by closing the DTLS transport, which the
  // connection state does not show (a closed transport counts as connected); its own state does.
  watchServerClose(pc, generation) {
    const transport = pc.getTransceivers()[0]?.receiver.transport;
    if (!transport || watchedTransports.has(transport)) return;
    watchedTransports.add(transport);
    transport.addEventListener("statechange", () => {
      if (transport.state === "closed" && !this.superseded(generation)) this.drop("closed by the server");
    });
  }

  // The new connection is up.
  connected() {}

  // A connection attempt failed: a refusal ends the loop, anything else is retried.
  failed(err, generation) {
    if (this.superseded(generation)) return;
    if (err instanceof Refused) {
      this.closeConnection(false);
      this.stopped = true;
      this.report("refused", err.message);
    } else {
      this.drop(errorText(err));
    }
  }

  // The connection is gone: close it and try again after a backoff.
  drop(reason) {
    if (this.stopped) return;
    this.generation++;
    this.closeConnection(true);
    const delay = backoffDelay(this.failures);
    this.failures++;
    this.report("retrying", reason);
    this.reconnectSoon(delay);
  }

  reconnectSoon(delay) {
    if (this.stopped) return;
    clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => this.reconnect(), delay);
  }

  reconnect() {
    this.connect();
  }

  // Ends the loop; the subclass closes the connection.
  halt() {
    this.stopped = true;
    this.generation++;
    clearTimeout(this.retryTimer);
    clearTimeout(this.graceTimer);
  }
}
