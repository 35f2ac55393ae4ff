// Pre-exam device check: asks for camera and microphone, shows a live preview and a level meter,
// and reports the outcome through onResult({ok, error, error_name, width, height, camera, microphone}).
// Changing the `round` prop runs the check again (the Retry button).
import { createElement as h, useEffect, useRef } from "react";

const FIRST_FRAME_TIMEOUT_MS = 10_000;

function explain(err) {
  switch (err?.name) {
    case "NotAllowedError":
    case "SecurityError":
      return "Camera or microphone access was denied. Allow both in the browser (the camera icon in the address bar), then press Retry.";
    case "NotFoundError":
    case "OverconstrainedError":
      return "No camera or microphone was found. Connect them, then press Retry.";
    case "NotReadableError":
    case "AbortError":
      return "The camera or microphone is in use by another program. Close that program, then press Retry.";
    case "NotSupportedError":
      return "This browser cannot use a camera here. Use a current Chrome, Edge or Firefox over https.";
    case "NoPictureError":
      return "The camera gives no picture. Check that it is not covered or switched off, then press Retry.";
    default:
      return `The camera or microphone could not be started (${err?.name || err}). Press Retry.`;
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

export function DeviceCheck({ round, onResult }) {
  const videoRef = useRef(null);
  const barRef = useRef(null);

  useEffect(() => {
    let stream = null;
    let stopMeter = null;
    let cancelled = false;
    const report = (result) => !cancelled && onResult?.(result);
    (async () => {
      try {
        if (!navigator.mediaDevices?.getUserMedia) throw failure("NotSupportedError");
        stream = await navigator.mediaDevices.getUserMedia({ video: true, audio: true });
        if (cancelled) return;
        const video = videoRef.current;
        video.muted = true;
        video.srcObject = stream;
        await video.play();
        await firstFrame(video);
        if (cancelled) return;
        stopMeter = startLevelMeter(stream, barRef.current);
        const [camera] = stream.getVideoTracks();
        const [microphone] = stream.getAudioTracks();
        for (const track of stream.getTracks()) {
          track.addEventListener("ended", () =>
            report({ ok: false, error: `The ${track.kind === "video" ? "camera" : "microphone"} was disconnected. Press Retry.`, error_name: "TrackEnded" }));
        }
        report({ ok: true, error: "", error_name: "", width: video.videoWidth, height: video.videoHeight,
                 camera: camera?.label || "", microphone: microphone?.label || "" });
      } catch (err) {
        report({ ok: false, error: explain(err), error_name: err?.name || "Error" });
      }
    })();
    return () => {
      cancelled = true;
      stopMeter?.();
      stream?.getTracks().forEach((track) => track.stop());
    };
  }, [round]);

  return h(
    "div",
    { style: { display: "flex", flexDirection: "column", gap: "0.5rem", maxWidth: "360px" } },
    h("video", {
      ref: videoRef,
      id: "device-preview",
      autoPlay: true,
      playsInline: true,
      muted: true,
      style: { width: "100%", aspectRatio: "4 / 3", background: "#111", borderRadius: "6px" },
    }),
    h(
      "div",
      { "aria-label": "Microphone level", style: { height: "8px", background: "var(--gray-4)", borderRadius: "4px", overflow: "hidden" } },
      h("div", { ref: barRef, id: "mic-level", style: { height: "100%", width: "0%", background: "var(--green-9)" } }),
    ),
  );
}
