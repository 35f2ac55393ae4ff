// What the live publisher and viewer share: the WHIP/WHEP exchange with our server (POST the
// complete SDP offer, get 201 + Location + the answer), VP8 pinned on both legs (the relay passes
// frames through and cannot transcode), and the backoff of their reconnect loops.

const BACKOFF_MS = [1000, 2000, 4000, 8000, 15000];
const GATHER_TIMEOUT_MS = 2000;
// Chrome reports "disconnected" on short hiccups; give it this long to recover on its own.
export const DISCONNECTED_GRACE_MS = 3000;
// Refusals (token, session, attempt over, live video off) do not get better by retrying.
const REFUSALS = [401, 403, 404, 409, 415];

export class Refused extends Error {}

export function backoffDelay(failures) {
  const base = BACKOFF_MS[Math.min(failures, BACKOFF_MS.length - 1)];
  return base * (0.8 + 0.4 * Math.random());
}

export function pinVp8(transceiver, capabilities) {
  const codecs = capabilities.getCapabilities("video").codecs.filter(
    (c) => c.mimeType === "video/VP8" || c.mimeType === "video/rtx");
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

export function errorText(err) {
  return String(err && err.message ? err.message : err);
}
