// The recording session of one exam attempt in the candidate's browser: the segments and chunks
// of each captured stream (recorder_stream.js), a JPEG snapshot every N seconds, the proctoring
// events the page can see, and the flush of what is left once the exam ends. Snapshots and events
// are their own capture: they run with or without recorded streams (live video only, recording
// off), from the recorded camera when there is one, else from a camera of their own.
//
// Each MediaRecorder instance is a segment: its chunks, concatenated in seq order, are one
// self-contained stream (later chunks alone do not decode). A reload, a re-acquired device, a
// recorder error and the periodic rotation each start a new segment. Chunks are timed on the
// server-corrected clock (performance.now() from the last sync, so a changed computer clock changes
// nothing) and go through the durable queue in upload_queue.js.
import { measureClockOffset } from "$/public/clock_sync.js";
import { t } from "$/public/i18n.js";
import { DeviceStream, StillCamera, describe, pickMimeType } from "$/public/recorder_stream.js";
import { queueFor, sha256Hex } from "$/public/upload_queue.js";

const AUDIO_BITS_PER_SECOND = 32_000;
const SEGMENT_ROTATE_MS = 20 * 60_000;
const CLOCK_RESYNC_MS = 2 * 60_000;
const FIRST_SNAPSHOT_MS = 3000;
const SNAPSHOT_QUALITY = 0.8;

// The segments of one stream, and what each chunk notes of the questions viewed and answered.
class SegmentRecorder {
  constructor(session, stream) {
    this.session = session;
    this.stream = stream;
    this.kind = stream.kind;
    this.segment = null;
    this.viewed = new Set(session.questionId ? [session.questionId] : []);
    this.answered = new Set();
  }

  get props() {
    return this.session.props;
  }

  async begin(reason) {
    const mimeType = pickMimeType(this.stream.hasAudio);
    const bitrate = this.kind === "screen" ? this.props.screenBitrateKbps : this.props.cameraBitrateKbps;
    const recorder = new MediaRecorder(this.stream.media, {
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
      stream: this.kind, segment: number, mime_type: recorder.mimeType || mimeType, audio: this.stream.hasAudio,
      reason: reason === "start" && number > 0 ? "page_load" : reason,
      navigation: performance.getEntriesByType("navigation")[0]?.type || "",
    });
    clearTimeout(this.rotateTimer);
    this.rotateTimer = setTimeout(() => this.rotate(), SEGMENT_ROTATE_MS);
    // The new recorder runs before the old one stops, so a rotation leaves no hole.
    if (previous) await this.finish(previous);
  }

  // Finishes the current segment, if any: its last chunk is queued when this resolves.
  async end() {
    const segment = this.segment;
    this.segment = null;
    if (segment) await this.finish(segment);
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
    if (this.stream.state !== "recording") return;
    try {
      await this.begin("rotation");
    } catch (err) {
      this.session.event("recorder_error", { stream: this.kind, error: describe(err), during: "rotation" });
    }
  }

  async onRecorderError(segment, err) {
    this.session.event("recorder_error", { stream: this.kind, segment: segment.number, error: describe(err) });
    if (this.segment !== segment || this.stream.state !== "recording") return;
    try {
      await this.begin("recorder_error");
    } catch (restartErr) {
      this.segment = null;
      await this.finish(segment);
      this.stream.release();
      this.stream.fail(restartErr, "recorder");
    }
  }
}

export class ExamRecording {
  // publish(): called whenever what the candidate and the page see may have changed.
  constructor(props, publish) {
    this.props = props;
    this.publish = publish;
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
    this.queue.ready.then(() => {
      if (this.queue.storageError) this.onQueue({ type: "storage", error: this.queue.storageError });
      if (this.props.active) this.event("storage_persistence", this.queue.persistence);
    });
    this.listen();
    this.syncClock();
    const clockTimer = setInterval(() => this.syncClock(), CLOCK_RESYNC_MS);
    this.cleanups.push(() => clearInterval(clockTimer));
    if (this.props.active) this.startRecording();
    else this.flush();
  }

  unmount() {
    this.cleanups.forEach((cleanup) => cleanup());
    clearTimeout(this.snapshotTimer);
    this.stillCamera?.release();
    // The queue lives on with the page and keeps sending what the stopped recorders hand it.
    Object.values(this.streams).forEach((stream) => stream.stop());
  }

  update(props) {
    const before = this.props;
    this.props = props;
    this.queue.setToken(props.uploadToken);
    if (props.questionId !== before.questionId) {
      this.questionId = props.questionId;
      Object.values(this.streams).forEach((stream) => stream.recorder.viewed.add(props.questionId));
    } else if (props.answerKey !== before.answerKey) {
      Object.values(this.streams).forEach((stream) => stream.recorder.answered.add(props.questionId));
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
        this.storageWarning = t("The browser's storage is full: keep this page open until the upload has finished.");
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
    for (const kind of this.props.streams) {
      this.streams[kind] = new DeviceStream(this, kind, (stream) => new SegmentRecorder(this, stream));
    }
    if (this.props.snapshotIntervalS > 0) this.scheduleSnapshot(FIRST_SNAPSHOT_MS);
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
    this.stillCamera?.release();
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

  // The recorded camera's picture while it records; without a recorded camera, a camera of the
  // snapshots' own. Null (nothing taken) while the recorded camera is down: its loss is an event.
  async snapshotSource() {
    const camera = this.streams.camera;
    if (camera) return camera.state === "recording" ? camera.frameSource() : null;
    this.stillCamera ??= new StillCamera(this.props.cameraResolution);
    try {
      const video = await this.stillCamera.frameSource();
      if (!video) throw new Error("the camera showed no picture");
      this.snapshotFailure = "";
      return video;
    } catch (err) {
      const failure = describe(err);
      if (failure !== this.snapshotFailure) this.event("snapshot_failed", { error: failure });
      this.snapshotFailure = failure;
      return null;
    }
  }

  async snapshot() {
    const video = await this.snapshotSource();
    if (!video || this.phase !== "recording") return;
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
}
