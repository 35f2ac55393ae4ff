// The server's clock as the browser sees it, measured against /api/time: used by the exam
// countdown (exam_clock.js), the recorder (recorder_session.js) and the SDK (sdk/proctor.js).
import { getBackendURL } from "$/utils/state";

const SAMPLES = 3;

// NTP-style: offset = server - (t0 + t1) / 2, keeping the sample with the shortest round trip.
export async function measureClockOffset() {
  const url = new URL("/api/time", getBackendURL());
  let best = null;
  for (let i = 0; i < SAMPLES; i++) {
    const t0 = Date.now();
    const response = await fetch(url, { cache: "no-store", credentials: "same-origin" });
    const { server_ms } = await response.json();
    const t1 = Date.now();
    if (best === null || t1 - t0 < best.rtt_ms) {
      best = { offset_ms: Math.round(server_ms - (t0 + t1) / 2), rtt_ms: t1 - t0 };
    }
  }
  return best;
}
