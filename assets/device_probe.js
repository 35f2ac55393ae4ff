// The camera and microphone check without its view: asks for both, plays the camera into `video`,
// draws the microphone level into `bar`, and reports through report({ok, error, error_name, width,
// height, camera, microphone}). Used by the exam page (device_check.js) and the SDK (sdk/proctor.js).
import { t } from "$/public/i18n.js";

const FIRST_FRAME_TIMEOUT_MS = 10_000;

function explain(err) {
  switch (err?.name) {
    case "NotAllowedError":
    case "SecurityError":
      return t("Camera or microphone access was denied. Allow both in the browser (the camera icon in the address bar), then press Retry.");
    case "NotFoundError":
    case "OverconstrainedError":
      return t("No camera or microphone was found. Connect them, then press Retry.");
    case "NotReadableError":
    case "AbortError":
      return t("The camera or microphone is in use by another program. Close that program, then press Retry.");
    case "NotSupportedError":
      return t("This browser cannot use a camera here. Use a current Chrome, Edge or Firefox over https.");
    case "NoPictureError":
      return t("The camera gives no picture. Check that it is not covered or switched off, then press Retry.");
    default:
      return t("The camera or microphone could not be started ({error}). Press Retry.", { error: err?.name || err });
  }
}

function failure(name) {
  const err = new Error(name);
  err.name = name;
  return err;
}

function firstFrame(video) {
  return new Promise((resolve, reject) => {
    if (video.videoWidth > 0) return resolve();
    const timer = setTimeout(() => reject(failure("NoPictureError")), FIRST_FRAME_TIMEOUT_MS);
    video.addEventListener("loadeddata", () => (clearTimeout(timer), resolve()), { once: true });
  });
}

// Root mean square of the microphone signal, 0..1, drawn into the meter bar without re-rendering.
function startLevelMeter(stream, bar) {
  const context = new AudioContext();
  const analyser = context.createAnalyser();
  analyser.fftSize = 1024;
  context.createMediaStreamSource(stream).connect(analyser);
  const samples = new Float32Array(analyser.fftSize);
  let frame = 0;
  const draw = () => {
    analyser.getFloatTimeDomainData(samples);
    const rms = Math.sqrt(samples.reduce((sum, s) => sum + s * s, 0) / samples.length);
    const level = Math.min(1, rms * 4);
    bar.style.width = `${Math.round(level * 100)}%`;
    bar.dataset.level = level.toFixed(3);
    bar.dataset.peak = Math.max(Number(bar.dataset.peak || 0), level).toFixed(3);
    frame = requestAnimationFrame(draw);
  };
  context.resume().catch(() => {});
  draw();
  return () => {
    cancelAnimationFrame(frame);
    context.close();
  };
}

// Runs one check; the returned function stops it and releases the devices.
export function probeDevices(video, bar, report) {
  let stream = null;
  let stopMeter = null;
  let cancelled = false;
  const tell = (result) => !cancelled && report(result);
  (async () => {
    try {
      if (!navigator.mediaDevices?.getUserMedia) throw failure("NotSupportedError");
      stream = await navigator.mediaDevices.getUserMedia({ video: true, audio: true });
      if (cancelled) return;
      video.muted = true;
      video.srcObject = stream;
      await video.play();
      await firstFrame(video);
      if (cancelled) return;
      stopMeter = startLevelMeter(stream, bar);
      const [camera] = stream.getVideoTracks();
      const [microphone] = stream.getAudioTracks();
      for (const track of stream.getTracks()) {
        track.addEventListener("ended", () =>
          tell({ ok: false, error: track.kind === "video" ? t("The camera was disconnected. Press Retry.") : t("The microphone was disconnected. Press Retry."), error_name: "TrackEnded" }));
      }
      tell({ ok: true, error: "", error_name: "", width: video.videoWidth, height: video.videoHeight,
             camera: camera?.label || "", microphone: microphone?.label || "" });
    } catch (err) {
      tell({ ok: false, error: explain(err), error_name: err?.name || "Error" });
    }
  })();
  return () => {
    cancelled = true;
    stopMeter?.();
    stream?.getTracks().forEach((track) => track.stop());
  };
}
