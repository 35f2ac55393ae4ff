// Exam recording in the candidate's browser: camera (with microphone) and, where the exam asks,
// the screen; a JPEG snapshot every N seconds; the proctoring events the page can see.
//
// Each MediaRecorder instance is a segment: its chunks, concatenated in seq order, are one
// self-contained stream (later chunks alone do not decode). A reload, a re-acquired device, a
// recorder error and the periodic rotation each start a new segment. Chunks are timed on the
// server-corrected clock (performance.now() from the last sync, so a changed computer clock changes
// nothing) and go through the durable queue in upload_queue.js.
//
// It shows the recording indicator, the upload status and, after the submit, the upload progress
// itself: they must keep working while the network (and with it the page's server connection) is
// down. The page hears through onStatus({state, recording, blocked, message, warning, flushed})
// when one of those changes, for what needs the server; window.proctorRecorder.retry() re-acquires
// failed devices (a click handler calls it, so a screen share gets the candidate's gesture).
import { createElement as h, useEffect, useRef, useState } from "react";
import { measureClockOffset } from "$/public/exam_clock.js";
import { queueFor, sha256Hex } from "$/public/upload_queue.js";

// H.264 first (Chromium records it as video/x-matroska;codecs=avc1,opus; processing copies it
// without re-encoding), then VP9, VP8 WebM, and MP4 for Safari.
const CAMERA_TYPES = [
  "video/x-matroska;codecs=avc1,opus", "video/webm;codecs=h264,opus", "video/webm;codecs=vp9,opus",
  "video/webm;codecs=vp8,opus", "video/webm", "video/mp4;codecs=avc1,mp4a.40.2", "video/mp4",
];
const SCREEN_TYPES = [
  "video/x-matroska;codecs=avc1", "video/webm;codecs=h264", "video/webm;codecs=vp9",
  "video/webm;codecs=vp8", "video/webm", "video/mp4;codecs=avc1", "video/mp4",
];
const CAMERA_FRAME_RATE = 15;

// "640x480" -> {width: {ideal: 640}, height: {ideal: 480}}
function size(resolution) {
  const [width, height] = String(resolution).split("x").map(Number);
  return { width: { ideal: width }, height: { ideal: height } };
}
const AUDIO_BITS_PER_SECOND = 32_000;
const SEGMENT_ROTATE_MS = 20 * 60_000;
const REACQUIRE_MS = 5000;
const CLOCK_RESYNC_MS = 2 * 60_000;
const FIRST_SNAPSHOT_MS = 3000;
const SNAPSHOT_QUALITY = 0.8;
const FIRST_FRAME_WAIT_MS = 3000;
// Uploads waiting longer than this are shown to the candidate; quicker ones are just traffic.
const BACKLOG_AFTER_MS = 2500;
const STATUS_TICK_MS = 1000;

function pickMimeType(candidates) {
  if (typeof MediaRecorder === "undefined") return null;
  return candidates.find((type) => MediaRecorder.isTypeSupported(type)) ?? null;
}

function failure(name, message) {
  const err = new Error(message);
  err.name = name;
  return err;
}

// What the candidate is told when a device or the recorder fails.
function explain(err, kind) {
  const device = kind === "screen" ? "screen sharing" : "the camera and microphone";
  switch (err?.name) {
    case "NotAllowedError":
    case "SecurityError":
      return `Access to ${device} was refused. Allow it in the browser, then press Retry.`;
    case "NotFoundError":
    case "OverconstrainedError":
      return `No ${kind === "screen" ? "screen" : "camera or microphone"} was found. Connect one, then press Retry.`;
    case "NotReadableError":
    case "AbortError":
      return `${kind === "screen" ? "Screen sharing" : "The camera or microphone"} is in use by another program. Close it, then press Retry.`;
    case "NotSupportedError":
      return "This browser cannot record here. Use a current Chrome, Edge, Firefox or Safari.";
    case "NotWholeScreen":
      return "Share your entire screen, not a window or a tab. Press Retry.";
    case "TrackEnded":
      return kind === "screen"
        ? "Screen sharing stopped. Share your entire screen again to continue."
        : "The camera or microphone was disconnected. Reconnect it; recording resumes by itself.";
    default:
      return `Recording ${kind === "screen" ? "the screen" : "the camera"} failed (${err?.name || err}). Press Retry.`;
  }
}

function describe(err) {
  return `${err?.name || "Error"}: ${err?.message || err}`.slice(0, 300);
}

class StreamRecorder {
  constructor(session, kind) {
    this.session = session;
    this.kind = kind;
    // idle | acquiring | recording | failed | lost | stopped
    this.state = "idle";
    this.message = "";
    this.media = null;
    this.segment = null;
    this.preview = null;
    this.everRecorded = false;
    this.lostSince = 0;
    this.viewed = new Set(session.questionId ? [session.questionId] : []);
    this.answered = new Set();
  }

  get props() {
    return this.session.props;
  }

  async acquire() {
    if (!navigator.mediaDevices) throw failure("NotSupportedError", "no mediaDevices");
    const props = this.props;
    if (this.kind === "camera") {
      return navigator.mediaDevices.getUserMedia({
        video: { ...size(props.cameraResolution), frameRate: { ideal: CAMERA_FRAME_RATE } }, audio: true,
      });
    }
    const media = await navigator.mediaDevices.getDisplayMedia({
      video: { ...size(props.screenResolution), frameRate: { ideal: props.screenFrameRate, max: props.screenFrameRate },
               displaySurface: "monitor" },
      audio: false,
    });
    // A shared window or tab would hide everything else the candidate does.
    const surface = media.getVideoTracks()[0]?.getSettings().displaySurface;
    if (surface && surface !== "monitor") {
      media.getTracks().forEach((track) => track.stop());
      throw failure("NotWholeScreen", `shared a ${surface}`);
    }
    return media;
  }

  async start(reason) {
    clearTimeout(this.retryTimer);
    this.state = "acquiring";
    this.session.publish();
    try {
      this.media = await this.acquire();
    } catch (err) {
      return this.fail(err, "device");
    }
    if (this.state === "stopped") return this.release();
    if (this.kind === "camera") this.frameSource();
    for (const track of this.media.getTracks()) {
      track.addEventListener("ended", () => this.lost(track), { once: true });
    }
    try {
      await this.startSegment(reason);
    } catch (err) {
      this.release();
      return this.fail(err, "recorder");
    }
    if (this.lostSince) {
      this.session.event(`${this.kind}_regained`, { stream: this.kind, after_ms: Date.now() - this.lostSince });
      this.lostSince = 0;
    }
    this.state = "recording";
    this.message = "";
    this.everRecorded = true;
    this.session.publish();
  }

  async startSegment(reason) {
    const mimeType = pickMimeType(this.kind === "screen" ? SCREEN_TYPES : CAMERA_TYPES);
    if (!mimeType) throw failure("NotSupportedError", "no supported recording format");
    const bitrate = this.kind === "screen" ? this.props.screenBitrateKbps : this.props.cameraBitrateKbps;
    const recorder = new MediaRecorder(this.media, {
      mimeType, videoBitsPerSecond: bitrate * 1000, audioBitsPerSecond: AUDIO_BITS_PER_SECOND,
    });
    const number = await this.session.queue.nextNumber(`segment/${this.kind}`,
                                                       this.props.nextSegment?.[this.kind] ?? 0);
    const segment = { number, recorder, nextSeq: 0, lastEnd: 0, chain: Promise.resolve() };
    segment.stopped = new Promise((resolve) => recorder.addEventListener("stop", resolve, { once: true }));
    recorder.addEventListener("dataavailable", (e) => this.onData(segment, e.data));
    recorder.addEventListener("error", (e) => this.onRecorderError(segment, e.error || e));
    recorder.start(this.props.chunkIntervalS * 1000);
    segment.lastEnd = this.session.now();
    const previous = this.segment;
    this.segment = segment;
    this.session.event("segment_started", {
      stream: this.kind, segment: number, mime_type: recorder.mimeType || mimeType,
      reason: reason === "start" && number > 0 ? "page_load" : reason,
      navigation: performance.getEntriesByType("navigation")[0]?.type || "",
    });
    clearTimeout(this.rotateTimer);
    this.rotateTimer = setTimeout(() => this.rotate(), SEGMENT_ROTATE_MS);
    // The new recorder runs before the old one stops, so a rotation leaves no hole.
    if (previous) await this.finish(previous);
  }

  onData(segment, blob) {
    if (!blob || blob.size === 0) return;
    const seq = segment.nextSeq++;
    const start = segment.lastEnd;
    const end = this.session.now();
    segment.lastEnd = end;
    const meta = { questions_viewed: [...this.viewed], questions_answered: [...this.answered] };
    this.viewed = new Set(this.session.questionId ? [this.session.questionId] : []);
    this.answered = new Set();
    const mime = segment.recorder.mimeType;
    segment.chain = segment.chain.then(() => this.enqueue(segment.number, seq, blob, start, end, mime, meta));
  }

  async enqueue(number, seq, blob, start, end, mime, meta) {
    const queue = this.session.queue;
    try {
      const body = await blob.arrayBuffer();
      await queue.put(`chunk/${this.kind}/${number}/${seq}`,
                      `/api/attempts/${queue.attemptId}/streams/${this.kind}/segments/${number}/chunks/${seq}`,
                      {
                        "Content-Type": mime,
                        "X-Content-SHA256": await sha256Hex(body),
                        "X-Chunk-Start-Ms": String(Math.round(start)),
                        "X-Chunk-End-Ms": String(Math.round(end)),
                        "X-Chunk-Meta": JSON.stringify(meta),
                      }, body);
    } catch (err) {
      this.session.event("chunks_missing", { stream: this.kind, segment: number, seqs: [seq],
                                             cause: `the browser could not read the chunk (${describe(err)})` });
    }
  }

  async finish(segment) {
    clearTimeout(this.rotateTimer);
    if (segment.recorder.state !== "inactive") segment.recorder.stop();
    await segment.stopped;
    await segment.chain;
  }

  async rotate() {
    if (this.state !== "recording") return;
    try {
      await this.startSegment("rotation");
    } catch (err) {
      this.session.event("recorder_error", { stream: this.kind, error: describe(err), during: "rotation" });
    }
  }

  async onRecorderError(segment, err) {
    this.session.event("recorder_error", { stream: this.kind, segment: segment.number, error: describe(err) });
    if (this.segment !== segment || this.state !== "recording") return;
    try {
      await this.startSegment("recorder_error");
    } catch (restartErr) {
      this.segment = null;
      await this.finish(segment);
      this.release();
      this.fail(restartErr, "recorder");
    }
  }

  async lost(track) {
    if (this.state !== "recording") return;
    const device = this.kind === "screen" ? "screen" : track.kind === "audio" ? "microphone" : "camera";
    this.session.event(`${device}_lost`, { stream: this.kind, segment: this.segment?.number, label: track.label });
    this.state = "lost";
    this.lostSince = Date.now();
    this.message = explain(failure("TrackEnded", "ended"), this.kind);
    this.session.publish();
    const segment = this.segment;
    this.segment = null;
    if (segment) await this.finish(segment);
    this.release();
    // A camera comes back by itself (plugged in, permission given again); a screen share needs a click.
    if (this.kind === "camera") this.retryTimer = setTimeout(() => this.start("device_regained"), REACQUIRE_MS);
  }

  fail(err, stage) {
    if (this.state === "stopped") return;
    const wasLost = Boolean(this.lostSince);
    this.state = wasLost ? "lost" : "failed";
    this.message = explain(err, this.kind);
    if (!this.everRecorded && !this.reportedFailure) {
      this.reportedFailure = true;
      this.session.event("recording_failed", { stream: this.kind, stage, reason: describe(err),
                                               required: Boolean(this.props.required) });
    }
    if (wasLost && this.kind === "camera") {
      this.retryTimer = setTimeout(() => this.start("device_regained"), REACQUIRE_MS);
    }
    this.session.publish();
  }

  release() {
    this.media?.getTracks().forEach((track) => track.stop());
    this.media = null;
    if (this.preview) this.preview.srcObject = null;
    this.preview = null;
  }

  // A detached, muted <video> of the camera, playing from acquisition on, for snapshots.
  async frameSource() {
    if (!this.media) return null;
    if (!this.preview) {
      this.preview = document.createElement("video");
      Object.assign(this.preview, { muted: true, playsInline: true, srcObject: this.media });
      this.preview.play().catch(() => {});
    }
    const video = this.preview;
    if (!video.videoWidth) {
      await new Promise((resolve) => {
        video.addEventListener("loadeddata", resolve, { once: true });
        setTimeout(resolve, FIRST_FRAME_WAIT_MS);
      });
    }
    return video.videoWidth ? video : null;
  }

  async stop() {
    const wasRecording = this.state === "recording";
    this.state = "stopped";
    clearTimeout(this.retryTimer);
    const segment = this.segment;
    this.segment = null;
    if (segment) await this.finish(segment);
    this.release();
    if (wasRecording) this.session.event("recording_stopped", { stream: this.kind });
  }
}

class ExamRecording {
  constructor(props, report, show) {
    this.props = props;
    this.report = report;
    this.show = show;
    this.queue = queueFor(props.attemptId);
    // idle | recording | stopping | flushing | flushed
    this.phase = "idle";
    this.streams = {};
    this.cleanups = [];
    this.questionId = props.questionId || 0;
    this.storageWarning = "";
    this.reportedMissing = new Set();
    this.clock = { base: Date.now() + (props.clockOffsetMs || 0), perf: performance.now() };
  }

  // Epoch ms on the server's clock.
  now() {
    return this.clock.base + (performance.now() - this.clock.perf);
  }

  async syncClock() {
    try {
      const { offset_ms } = await measureClockOffset();
      this.clock = { base: Date.now() + offset_ms, perf: performance.now() };
    } catch {
      // Offline: keep counting from the last sync.
    }
  }

  // Resolves once the event is queued (persisted, or held in memory).
  event(kind, data = {}) {
    return this.queue.event(kind, data, this.now());
  }

  mount() {
    this.queue.setToken(this.props.uploadToken);
    this.queue.start();
    this.cleanups.push(this.queue.subscribe((what) => this.onQueue(what)));
    this.queue.ready.then(() => this.queue.storageError &&
                                this.onQueue({ type: "storage", error: this.queue.storageError }));
    this.listen();
    this.syncClock();
    const clockTimer = setInterval(() => this.syncClock(), CLOCK_RESYNC_MS);
    const statusTimer = setInterval(() => this.publish(), STATUS_TICK_MS);
    this.cleanups.push(() => clearInterval(clockTimer), () => clearInterval(statusTimer));
    if (this.props.active) this.startRecording();
    else this.flush();
  }

  unmount() {
    this.cleanups.forEach((cleanup) => cleanup());
    clearTimeout(this.snapshotTimer);
    // The queue lives on with the page and keeps sending what the stopped recorders hand it.
    Object.values(this.streams).forEach((stream) => stream.stop());
  }

  update(props) {
    const before = this.props;
    this.props = props;
    this.queue.setToken(props.uploadToken);
    if (props.questionId !== before.questionId) {
      this.questionId = props.questionId;
      Object.values(this.streams).forEach((stream) => stream.viewed.add(props.questionId));
    } else if (props.answerKey !== before.answerKey) {
      Object.values(this.streams).forEach((stream) => stream.answered.add(props.questionId));
    }
    if (before.active && !props.active && this.phase === "recording") this.stopAndFlush();
  }

  listen() {
    const on = (target, type, handler) => {
      target.addEventListener(type, handler);
      this.cleanups.push(() => target.removeEventListener(type, handler));
    };
    const whileRecording = (handler) => (e) => this.phase === "recording" && handler(e);
    on(document, "visibilitychange", whileRecording(() => this.event(document.hidden ? "tab_hidden" : "tab_visible")));
    on(window, "blur", whileRecording(() => this.event("window_blur")));
    on(window, "focus", whileRecording(() => this.event("window_focus")));
    on(document, "fullscreenchange", whileRecording(() =>
      this.event(document.fullscreenElement ? "fullscreen_enter" : "fullscreen_exit")));
    on(window, "offline", () => (this.event("offline"), this.publish()));
    on(window, "online", () => (this.event("online"), this.publish(), this.syncClock()));
    on(window, "beforeunload", (e) => {
      // A recorder also holds the seconds since its last chunk: leaving loses them.
      if (this.queue.pending > 0 || this.phase === "recording" || this.phase === "stopping") {
        e.preventDefault();
        e.returnValue = "";
      }
    });
  }

  onQueue(what) {
    switch (what.type) {
      case "storage":
        if (this.storageWarning) break;  // heard both live and at mount
        this.storageWarning = "The browser's storage is full: keep this page open until the upload has finished.";
        this.event("storage_quota", { error: what.error });
        break;
      case "retrying":
        this.event("upload_retry", { error: what.error || "" });
        break;
      case "recovered":
        this.event("upload_recovered", { failures: what.failures, ms: what.ms, error: what.error || "" });
        break;
      case "dropped":
        this.event("upload_rejected", { item: what.id, status: what.status, error: what.error,
                                        message: what.message });
        break;
      case "ack":
        this.checkGaps(what.answer);
        break;
    }
    this.publish();
  }

  // Seqs below an acknowledged one that the server lacks and this browser no longer holds are
  // lost; say so once, with the cause, instead of leaving a silent hole.
  checkGaps(answer) {
    if (answer.stream === undefined || answer.seq <= answer.contiguous_seq + 1) return;
    const waiting = new Set(this.queue.items.map((item) => item.id));
    const missing = [];
    for (let seq = answer.contiguous_seq + 1; seq < answer.seq; seq++) {
      const id = `${this.queue.attemptId}/chunk/${answer.stream}/${answer.segment}/${seq}`;
      if (!waiting.has(id) && !this.reportedMissing.has(id)) {
        this.reportedMissing.add(id);
        missing.push(seq);
      }
    }
    if (missing.length) {
      this.event("chunks_missing", { stream: answer.stream, segment: answer.segment, seqs: missing,
                                     cause: "not on the server and no longer in this browser's queue" });
    }
  }

  async startRecording() {
    this.phase = "recording";
    this.event("recording_started", { streams: this.props.streams, required: Boolean(this.props.required) });
    for (const kind of this.props.streams) this.streams[kind] = new StreamRecorder(this, kind);
    if (this.streams.camera) this.scheduleSnapshot(FIRST_SNAPSHOT_MS);
    await Promise.all(Object.values(this.streams).map((stream) => stream.start("start")));
  }

  retry() {
    for (const stream of Object.values(this.streams)) {
      if (stream.state === "failed" || stream.state === "lost") stream.start("retry");
    }
  }

  async stopAndFlush() {
    this.phase = "stopping";
    clearTimeout(this.snapshotTimer);
    this.publish();
    await Promise.all(Object.values(this.streams).map((stream) => stream.stop()));
    await this.flush();
  }

  async flush() {
    await this.queue.ready;
    if (this.phase !== "stopping" && this.queue.pending === 0 && this.queue.events.length === 0) {
      this.publish();  // nothing recorded here and nothing left over: stay idle
      return;
    }
    this.phase = "flushing";
    this.flushFrom = this.queue.acked;
    this.publish();
    await this.queue.drained();
    await this.event("uploads_flushed", {});
    await this.queue.drained();
    this.phase = "flushed";
    this.publish();
  }

  scheduleSnapshot(ms) {
    this.snapshotTimer = setTimeout(async () => {
      await this.snapshot();
      if (this.phase === "recording") this.scheduleSnapshot(this.props.snapshotIntervalS * 1000);
    }, ms);
  }

  async snapshot() {
    const camera = this.streams.camera;
    const video = camera?.state === "recording" ? await camera.frameSource() : null;
    if (!video) return;
    try {
      const takenAt = this.now();
      const canvas = document.createElement("canvas");
      canvas.width = video.videoWidth;
      canvas.height = video.videoHeight;
      canvas.getContext("2d").drawImage(video, 0, 0);
      const blob = await new Promise((resolve) => canvas.toBlob(resolve, "image/jpeg", SNAPSHOT_QUALITY));
      const body = await blob.arrayBuffer();
      const seq = await this.queue.nextNumber("snapshot", this.props.nextSnapshotSeq || 0);
      await this.queue.put(`snapshot/${seq}`, `/api/attempts/${this.queue.attemptId}/snapshots/${seq}`,
                           { "Content-Type": "image/jpeg", "X-Content-SHA256": await sha256Hex(body),
                             "X-Taken-Ms": String(Math.round(takenAt)) }, body);
    } catch (err) {
      console.warn("snapshot failed", err);
    }
  }

  status() {
    const streams = Object.values(this.streams);
    const troubled = streams.filter((stream) => stream.state === "failed" || stream.state === "lost");
    const recordingPhase = this.phase === "recording";
    const offline = !navigator.onLine;
    const done = this.queue.acked - (this.flushFrom ?? this.queue.acked);
    return {
      state: this.phase,
      recording: recordingPhase && streams.some((stream) => stream.state === "recording"),
      blocked: recordingPhase && Boolean(this.props.required) && troubled.length > 0,
      message: troubled.map((stream) => stream.message).join(" "),
      warning: [!this.props.required && recordingPhase && troubled.length
                  ? "Recording is not working; the exam goes on without it." : "",
                this.storageWarning].filter(Boolean).join(" "),
      flushed: this.phase === "flushed",
      // Shown here only: uploads quicker than BACKLOG_AFTER_MS are just traffic.
      offline,
      pending: offline || !recordingPhase ? this.queue.pending : this.queue.backlog(BACKLOG_AFTER_MS),
      progress: Math.round((100 * done) / Math.max(1, done + this.queue.pending)),
    };
  }

  publish() {
    const status = this.status();
    this.show(status);
    const { offline, pending, progress, ...forThePage } = status;
    const key = JSON.stringify(forThePage);
    if (key !== this.lastReported) {
      this.lastReported = key;
      this.report(forThePage);
    }
  }
}

function settings(props) {
  return {
    ...props,
    streams: props.streams || [],
    chunkIntervalS: props.chunkIntervalS || 3,
    cameraBitrateKbps: props.cameraBitrateKbps || 600,
    screenBitrateKbps: props.screenBitrateKbps || 800,
    snapshotIntervalS: props.snapshotIntervalS || 60,
    cameraResolution: props.cameraResolution || "640x480",
    screenResolution: props.screenResolution || "1280x720",
    screenFrameRate: props.screenFrameRate || 5,
  };
}

const MUTED = { fontSize: "var(--font-size-2)", color: "var(--gray-11)" };

function Indicator({ status }) {
  return h("div", { id: "recording-indicator", style: { display: "flex", gap: "1rem", alignItems: "center" } },
    status.recording
      ? h("span", { style: { display: "flex", gap: "0.5rem", alignItems: "center", fontWeight: 500 } },
          h("span", { style: { width: "0.7em", height: "0.7em", borderRadius: "50%", background: "var(--red-9)" } }),
          "Recording")
      : h("span", { style: MUTED }, "Not recording"),
    h("span", { id: "upload-status", style: MUTED },
      status.offline ? "Offline. " : "",
      status.pending > 0 ? `${status.pending} waiting to upload` : "All uploaded"));
}

function FlushProgress({ status }) {
  const text = status.flushed
    ? "The recording is uploaded. You can leave this page."
    : `Uploading the rest of the recording: ${status.pending} left. Keep this page open.` +
      (status.offline ? " Offline: waiting for the network." : "");
  return h("div", { style: { display: "flex", flexDirection: "column", gap: "0.5rem" } },
    h("span", { id: status.flushed ? "flush-done" : "flush-pending" }, text),
    h("div", { id: "flush-progress", role: "progressbar", "aria-valuenow": status.progress,
               style: { height: "8px", background: "var(--gray-4)", borderRadius: "4px", overflow: "hidden" } },
      h("div", { style: { width: `${status.progress}%`, height: "100%", background: "var(--accent-9)" } })));
}

export function ExamRecorder(props) {
  const sessionRef = useRef(null);
  const propsRef = useRef(props);
  const [status, setStatus] = useState(null);
  propsRef.current = props;

  useEffect(() => {
    if (!props.attemptId || !props.uploadToken) return undefined;
    const session = new ExamRecording(settings(props), (report) => propsRef.current.onStatus?.(report),
                                      setStatus);
    sessionRef.current = session;
    window.proctorRecorder = session;
    session.mount();
    return () => {
      session.unmount();
      sessionRef.current = null;
      if (window.proctorRecorder === session) delete window.proctorRecorder;
    };
  }, [props.attemptId, Boolean(props.uploadToken)]);

  useEffect(() => {
    sessionRef.current?.update(settings(props));
  });

  const session = sessionRef.current;
  const view = !status || status.state === "idle" ? null
    : status.state === "recording" ? h(Indicator, { status }) : h(FlushProgress, { status });
  return h("div", { style: { marginBottom: view ? "1rem" : 0 } },
    // Read by tests and support: what the queue holds and has had acknowledged.
    h("span", { id: "recorder-state", hidden: true, "data-state": status?.state ?? "",
                "data-pending": session?.queue.pending ?? 0, "data-acked": session?.queue.acked ?? 0 }),
    view);
}
