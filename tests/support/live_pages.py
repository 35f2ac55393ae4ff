"""The live pages in Chromium, for the browser tests: every peer connection a page makes, the
frames it decoded, the proctor's grid, a publishing candidate, the candidate's exam page up to
the start."""

from contextlib import contextmanager

from playwright.sync_api import expect

from tests.support.live_exams import LiveExam
from tests.support.pages import sign_in

# The candidate's side without the exam page: the publisher module on a page of the app's origin.
PUBLISH = """async ([url, token, withScreen]) => {
  const { LivePublisher } = await import("/live_publish.js");
  const camera = await navigator.mediaDevices.getUserMedia({ video: { width: 640, height: 480 } });
  const screen = withScreen ? await navigator.mediaDevices.getDisplayMedia({ video: true }) : null;
  window.liveStatus = [];
  window.publisher = new LivePublisher({ url, token, onStatus: (s) => window.liveStatus.push(s.status) });
  window.publisher.start({ camera, screen });
}"""
# Every RTCPeerConnection a page makes, with when it was made (for getStats and timings).
TRACK_PEER_CONNECTIONS = """
window.__pcs = [];
const NativePeerConnection = window.RTCPeerConnection;
window.RTCPeerConnection = function (...args) {
  const pc = new NativePeerConnection(...args);
  window.__pcs.push({ pc, created: performance.now() });
  return pc;
};
window.RTCPeerConnection.prototype = NativePeerConnection.prototype;
"""


@contextmanager
def context_maker(browser, base_url: str, timeout_ms: int):
    """Makes browser contexts for the live tests' candidates and proctors (camera allowed), all
    closed at the end; track_connections records every peer connection a page makes."""
    contexts = []

    def make(track_connections: bool = False, on=browser, base_url: str = base_url):
        ctx = on.new_context(base_url=base_url, permissions=["camera", "microphone"])
        ctx.set_default_timeout(timeout_ms)
        if track_connections:
            ctx.add_init_script(TRACK_PEER_CONNECTIONS)
        contexts.append(ctx)
        return ctx

    try:
        yield make
    finally:
        for ctx in contexts:
            ctx.close()
FRAMES_DECODED = """async () => {
  let frames = 0;
  for (const { pc } of window.__pcs) {
    if (pc.connectionState !== "connected") continue;
    (await pc.getStats()).forEach((r) => {
      if (r.type === "inbound-rtp" && r.kind === "video") frames += r.framesDecoded;
    });
  }
  return frames;
}"""
AUDIO_PACKETS = """async () => {
  let packets = 0;
  for (const { pc } of window.__pcs) {
    if (pc.connectionState !== "connected") continue;
    (await pc.getStats()).forEach((r) => {
      if (r.type === "inbound-rtp" && r.kind === "audio") packets += r.packetsReceived;
    });
  }
  return packets;
}"""
# The ICE candidate pair each connected peer connection uses: local and remote candidate types and
# the local relay candidate's protocol to the TURN server ("udp", "tcp"; null for other types).
SELECTED_PAIRS = """async () => {
  const pairs = [];
  for (const { pc } of window.__pcs) {
    if (pc.connectionState !== "connected") continue;
    const stats = await pc.getStats();
    stats.forEach((t) => {
      if (t.type !== "transport" || !t.selectedCandidatePairId) return;
      const pair = stats.get(t.selectedCandidatePairId);
      const local = stats.get(pair.localCandidateId), remote = stats.get(pair.remoteCandidateId);
      pairs.push({ local: local.candidateType, remote: remote.candidateType,
                   relayProtocol: local.relayProtocol || null });
    });
  }
  return pairs;
}"""


def open_grid(new_context, email: str):
    """new_context: the `new_context` fixture of the live browser tests."""
    page = new_context(track_connections=True).new_page()
    sign_in(page, email)
    page.goto("/proctor")
    return page


def start_publishing(new_context, live: LiveExam, screen: bool = False):
    """The attempt's live video from a context of its own, until live: (context, page)."""
    ctx = new_context()
    page = ctx.new_page()
    page.goto("/login")
    page.evaluate(PUBLISH, [live.publish_url, live.token, screen])
    page.wait_for_function("window.liveStatus.includes('live')")
    return ctx, page


def status_of(page, attempt_id: int):
    return page.locator(f"#status-{attempt_id}")


def tile_video_playing(page, attempt_id: int) -> None:
    page.wait_for_function(f"document.querySelector('#tile-{attempt_id} video')?.videoWidth > 0")


def take_exam_until_started(page, live: LiveExam) -> None:
    sign_in(page, live.candidate)
    page.goto(f"/candidate/exams/{live.exam_id}")
    page.locator("#consent-checkbox").click()
    page.locator("#consent-accept").click()
    expect(page.locator("#device-ok")).to_be_visible()
    page.locator("#start-exam").click()
    expect(page.locator("#question-prompt")).to_be_visible()
