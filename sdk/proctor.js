// The embeddable recorder (/sdk/proctor.js): another site's exam page shows the consent, the
// device check and the recording indicator of one API session inside its own page, and records
// with the same modules as our own exam page (recorder_session.js, upload_queue.js): the same
// durable queue, events and snapshots.
//
//   import { mount } from "https://proctor.example/sdk/proctor.js";
//   const proctor = mount(document.getElementById("proctoring"), { token });
//   proctor.addEventListener("status", (e) => ...);   // e.detail: {state, recording, pending, error}
//   await proctor.end();                               // ends the session, resolves once uploaded
//
// Ended elsewhere (POST /api/v1/sessions/{id}/end, or the time is up), the page notices within
// seconds, stops and uploads the rest.
//
// `token` is the short-lived session token the integrator's server got from
// POST /api/v1/sessions/{id}/token. Every call is answered only for the origins the organisation
// allows; anywhere else the page shows an error and nothing is recorded.
import { measureClockOffset } from "$/public/clock_sync.js";
import { probeDevices } from "$/public/device_probe.js";
import { ExamRecording } from "$/public/recorder_session.js";
import { getBackendURL } from "$/utils/state";

const STATUS_TICK_MS = 1000;
// How soon the page notices that the session ended elsewhere (the integrator's API call, the time).
const WATCH_MS = 3000;

function element(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (name === "style") Object.assign(node.style, value);
    else node.setAttribute(name, value);
  }
  node.append(...children);
  return node;
}

async function call(path, body) {
  let response;
  try {
    // text/plain JSON: a simple request, so no preflight; the answer is readable only where the
    // organisation allows this page's origin.
    response = await fetch(new URL(path, getBackendURL()), {
      method: "POST", body: JSON.stringify(body), headers: { "Content-Type": "text/plain" }, cache: "no-store",
    });
  } catch {
    throw new Error("The proctoring service refused this page (its site is not allowed) or cannot be reached.");
  }
  const answer = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(answer.detail || `The proctoring service answered ${response.status}.`);
  return answer;
}

class Proctor extends EventTarget {
  constructor(root, token) {
    super();
    this.root = root;
    this.token = token;
    this.session = null;
    this.status = { state: "loading", recording: false, pending: 0, error: "" };
  }

  show(...nodes) {
    this.root.replaceChildren(...nodes);
  }

  report(changes) {
    Object.assign(this.status, changes);
    this.root.dataset.state = this.status.state;
    this.dispatchEvent(new CustomEvent("status", { detail: { ...this.status } }));
  }

  fail(error) {
    this.show(element("div", { id: "proctor-error", role: "alert", style: { color: "#b00020" } }, error.message));
    this.report({ state: "error", error: error.message });
  }

  async load() {
    try {
      const view = await call("/api/sdk/session", { token: this.token });
      if (view.recorder) this.record(view.recorder);
      else if (view.status === "not_started") this.consent(view);
      else this.report({ state: "ended" });
    } catch (err) {
      this.fail(err);
    }
  }

  consent(view) {
    const checkbox = element("input", { type: "checkbox", id: "proctor-consent-checkbox" });
    const accept = element("button", { id: "proctor-consent-accept", disabled: "" }, "Accept and continue");
    checkbox.addEventListener("change", () => (accept.disabled = !checkbox.checked));
    accept.addEventListener("click", () => this.check(view));
    this.show(element("div", { id: "proctor-consent" },
      element("strong", {}, "Recording and privacy"),
      element("ul", {}, ...view.consent.map((line) => element("li", {}, line))),
      element("label", {}, checkbox, " I have read this and I agree."), " ", accept));
    this.report({ state: "consent" });
  }

  check(view) {
    const video = element("video", { id: "proctor-preview", autoplay: "", playsinline: "", muted: "",
                                     style: { width: "320px", background: "#111" } });
    const bar = element("div", { id: "proctor-mic-level", style: { height: "6px", width: "0%", background: "#2e7d32" } });
    const outcome = element("div", { id: "proctor-device-status" }, view.uses_camera ? "Waiting for the camera and microphone..." : "");
    const start = element("button", { id: "proctor-start", disabled: "" }, "Start recording");
    let device = { ok: !view.uses_camera };
    const stop = view.uses_camera ? probeDevices(video, bar, (result) => {
      device = result;
      outcome.textContent = result.ok ? "Camera and microphone work." : result.error;
      start.disabled = view.required && !result.ok;
    }) : () => {};
    start.disabled = view.uses_camera && view.required;
    start.addEventListener("click", async () => {
      start.disabled = true;
      stop();
      try {
        const clock = await measureClockOffset().catch(() => null);
        const started = await call("/api/sdk/start", { token: this.token, consent: view.consent.join("\n"),
                                                       device, clock_offset_ms: clock?.offset_ms ?? null });
        if (started.recorder) this.record(started.recorder);
        else this.report({ state: "started" });
      } catch (err) {
        this.fail(err);
      }
    });
    this.show(element("div", { id: "proctor-check" }, view.uses_camera ? video : "", bar, outcome, start));
    this.report({ state: "check" });
  }

  record(props) {
    const indicator = element("span", { id: "proctor-indicator" });
    const uploads = element("span", { id: "proctor-uploads", style: { marginLeft: "1em", color: "#666" } });
    this.show(element("div", { id: "proctor-recording" }, indicator, uploads));
    const publish = () => {
      const session = this.session;
      const recording = session.phase === "recording" &&
        Object.values(session.streams).some((stream) => stream.state === "recording");
      const problems = Object.values(session.streams).map((stream) => stream.message).filter(Boolean).join(" ");
      indicator.textContent = recording ? "● Recording" : session.phase === "flushed" ? "Recording uploaded" : "Not recording";
      uploads.textContent = (problems ? `${problems} ` : "") +
        (session.queue.pending > 0 ? `${session.queue.pending} waiting to upload` : "All uploaded");
      this.report({ state: session.phase, recording, pending: session.queue.pending, acked: session.queue.acked });
    };
    this.session = new ExamRecording({ ...props, active: true, questionId: 0, answerKey: "", required: props.required }, publish);
    this.session.mount();
    this.ticker = setInterval(publish, STATUS_TICK_MS);
    this.watcher = setInterval(() => this.watch(), WATCH_MS);
  }

  async watch() {
    try {
      const { status } = await call("/api/sdk/status", { token: this.session.props.uploadToken });
      if (status !== "in_progress") await this.finish();
    } catch {
      // Offline or refused: the recorder's own queue reports what it cannot send.
    }
  }

  // After the end: stops recording; resolves once everything recorded here is uploaded.
  async finish() {
    clearInterval(this.watcher);
    if (this.finishing) return this.finishing;
    this.finishing = (async () => {
      if (this.session.phase === "recording") await this.session.stopAndFlush();
      else await this.session.flush();
      clearInterval(this.ticker);
      this.session.publish();
    })();
    return this.finishing;
  }

  // The candidate ends the session here: recording stops, the rest is uploaded.
  async end() {
    if (!this.session) return;
    await call("/api/sdk/end", { token: this.session.props.uploadToken }).catch((err) => this.report({ error: err.message }));
    await this.finish();
  }
}

export function mount(root, { token }) {
  const proctor = new Proctor(root, token);
  proctor.load();
  return proctor;
}
