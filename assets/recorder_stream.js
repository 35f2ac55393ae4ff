// The captured devices of an exam recording: the camera with the microphone, or the screen.
// A DeviceStream acquires its MediaStream, notices when a track ends, re-acquires the camera by
// itself (a screen share needs the candidate's click: retry()), and tells the candidate what
// went wrong. What is recorded from the stream is its recorder's job (recorder_session.js):
// begin(reason) starts a segment from `media` (throws if it cannot), end() finishes it.

import { t } from "$/public/i18n.js";

// H.264 first (Chromium records it as video/x-matroska;codecs=avc1,opus; processing copies it
// without re-encoding), then VP9, VP8 WebM, and MP4 for Safari. With audio: the camera's
// microphone, or the sound a screen share carries when the browser offers it.
const WITH_AUDIO_TYPES = [
  "video/x-matroska;codecs=avc1,opus", "video/webm;codecs=h264,opus", "video/webm;codecs=vp9,opus",
  "video/webm;codecs=vp8,opus", "video/webm", "video/mp4;codecs=avc1,mp4a.40.2", "video/mp4",
];
const VIDEO_ONLY_TYPES = [
  "video/x-matroska;codecs=avc1", "video/webm;codecs=h264", "video/webm;codecs=vp9",
  "video/webm;codecs=vp8", "video/webm", "video/mp4;codecs=avc1", "video/mp4",
];
const CAMERA_FRAME_RATE = 15;
const REACQUIRE_MS = 5000;
const FIRST_FRAME_WAIT_MS = 3000;

// The recording format for a stream with or without audio; throws where the browser records none.
export function pickMimeType(withAudio) {
  const candidates = withAudio ? WITH_AUDIO_TYPES : VIDEO_ONLY_TYPES;
  const type = typeof MediaRecorder === "undefined" ? null
    : candidates.find((candidate) => MediaRecorder.isTypeSupported(candidate));
  if (!type) throw failure("NotSupportedError", "no supported recording format");
  return type;
}

// "640x480" -> {width: {ideal: 640}, height: {ideal: 480}}
function size(resolution) {
  const [width, height] = String(resolution).split("x").map(Number);
  return { width: { ideal: width }, height: { ideal: height } };
}

function failure(name, message) {
  const err = new Error(message);
  err.name = name;
  return err;
}

// What the candidate is told when a device or the recorder fails.
function explain(err, kind) {
  const screen = kind === "screen";
  switch (err?.name) {
    case "NotAllowedError":
    case "SecurityError":
      return screen ? t("Access to screen sharing was refused. Allow it in the browser, then press Retry.")
        : t("Access to the camera and microphone was refused. Allow it in the browser, then press Retry.");
    case "NotFoundError":
    case "OverconstrainedError":
      return screen ? t("No screen was found. Connect one, then press Retry.")
        : t("No camera or microphone was found. Connect one, then press Retry.");
    case "NotReadableError":
    case "AbortError":
      return screen ? t("Screen sharing is in use by another program. Close it, then press Retry.")
        : t("The camera or microphone is in use by another program. Close it, then press Retry.");
    case "NotSupportedError":
      return t("This browser cannot record here. Use a current Chrome, Edge, Firefox or Safari.");
    case "NotWholeScreen":
      return t("Share your entire screen, not a window or a tab. Press Retry.");
    case "TrackEnded":
      return screen
        ? t("Screen sharing stopped. Share your entire screen again to continue.")
        : t("The camera or microphone was disconnected. Reconnect it; recording resumes by itself.");
    default:
      return screen ? t("Recording the screen failed ({error}). Press Retry.", { error: err?.name || err })
        : t("Recording the camera failed ({error}). Press Retry.", { error: err?.name || err });
  }
}

function detachedVideo(media) {
  const video = document.createElement("video");
  Object.assign(video, { muted: true, playsInline: true, srcObject: media });
  video.play().catch(() => {});
  return video;
}

// The video once it shows a frame, or null when none came in time.
async function firstFrame(video) {
  if (!video.videoWidth) {
    await new Promise((resolve) => {
      video.addEventListener("loadeddata", resolve, { once: true });
      setTimeout(resolve, FIRST_FRAME_WAIT_MS);
    });
  }
  return video.videoWidth ? video : null;
}

// The camera for snapshots when no camera stream is recorded (live video only, or recording off):
// video only, acquired at the first snapshot and kept until the exam ends.
export class StillCamera {
  constructor(resolution) {
    this.resolution = resolution;
    this.media = null;
    this.video = null;
  }

  async frameSource() {
    const live = this.media?.getVideoTracks().some((track) => track.readyState === "live");
    if (!live) {
      this.release();
      if (!navigator.mediaDevices) throw failure("NotSupportedError", "no mediaDevices");
      this.media = await navigator.mediaDevices.getUserMedia({ video: size(this.resolution), audio: false });
      this.video = detachedVideo(this.media);
    }
    return firstFrame(this.video);
  }

  release() {
    this.media?.getTracks().forEach((track) => track.stop());
    if (this.video) this.video.srcObject = null;
    this.media = this.video = null;
  }
}

export function describe(err) {
  return `${err?.name || "Error"}: ${err?.message || err}`.slice(0, 300);
}

export class DeviceStream {
  // session: the ExamRecording (props, event(), publish()); makeRecorder(stream): its recorder.
  constructor(session, kind, makeRecorder) {
    this.session = session;
    this.kind = kind;
    // idle | acquiring | recording | failed | lost | stopped
    this.state = "idle";
    this.message = "";
    this.media = null;
    this.preview = null;
    this.everRecorded = false;
    this.lostSince = 0;
    this.recorder = makeRecorder(this);
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
      // The screen's sound where the browser offers it (Chrome and Edge: the tab's, or the
      // system's on Windows and ChromeOS, if the candidate ticks it); otherwise video only.
      audio: true, systemAudio: "include",
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
    // A screen share's sound may end on its own (its tab closed): the screen goes on recording.
    const watched = this.kind === "screen" ? this.media.getVideoTracks() : this.media.getTracks();
    for (const track of watched) {
      track.addEventListener("ended", () => this.lost(track), { once: true });
    }
    try {
      await this.recorder.begin(reason);
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

  async lost(track) {
    if (this.state !== "recording") return;
    const device = this.kind === "screen" ? "screen" : track.kind === "audio" ? "microphone" : "camera";
    this.session.event(`${device}_lost`, { stream: this.kind, segment: this.recorder.segment?.number,
                                           label: track.label });
    this.state = "lost";
    this.lostSince = Date.now();
    this.message = explain(failure("TrackEnded", "ended"), this.kind);
    this.session.publish();
    await this.recorder.end();
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
    this.preview ??= detachedVideo(this.media);
    return firstFrame(this.preview);
  }

  // Whether the stream carries sound: the microphone, or the screen's shared audio.
  get hasAudio() {
    return Boolean(this.media?.getAudioTracks().some((track) => track.readyState === "live"));
  }

  async stop() {
    const wasRecording = this.state === "recording";
    this.state = "stopped";
    clearTimeout(this.retryTimer);
    await this.recorder.end();
    this.release();
    if (wasRecording) this.session.event("recording_stopped", { stream: this.kind });
  }
}
