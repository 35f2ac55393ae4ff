// React wrappers around the live video modules, for Reflex (proctor_app/components/live.py).
import { Fragment, createElement as h, useEffect, useRef, useState } from "react";
import { LivePublisher } from "./live_publish.js";
import { LiveViewer } from "./live_view.js";

// Handlers from Reflex change identity on every render; the connection must not.
function useLatest(value) {
  const ref = useRef(value);
  ref.current = value;
  return ref;
}

// A new object on every render: compared by content, so only a real change reconnects.
function configKey(rtcConfig) {
  return JSON.stringify(rtcConfig || {});
}

// A <video> playing one live stream; re-attaches by itself. onState({state, detail}). When the
// server refuses it (the viewer's access changed: signed out, deactivated, unassigned), it stops
// and says so under the video instead of trying again. With `audio`, the attempt's sound is
// received and played too (muted otherwise).
export function LiveVideo({ src, rtcConfig, audio, onState, id, className, style }) {
  const videoRef = useRef(null);
  const onStateRef = useLatest(onState);
  const [refused, setRefused] = useState("");
  const config = configKey(rtcConfig);
  useEffect(() => {
    if (!src) return undefined;
    setRefused("");
    const viewer = new LiveViewer({
      url: src,
      video: videoRef.current,
      onState: (s) => {
        if (s.state === "refused") setRefused(s.detail || "refused");
        onStateRef.current?.(s);
      },
      rtcConfig: JSON.parse(config),
      audio: Boolean(audio),
    });
    viewer.start();
    return () => viewer.stop();
  }, [src, config, audio]);
  const video = h("video", {
    ref: videoRef, id, className, autoPlay: true, muted: !audio, playsInline: true,
    "data-live-src": src, "data-refused": refused ? "true" : undefined,
    style: { width: "100%", aspectRatio: "4 / 3", background: "#111", objectFit: "contain", ...style },
  });
  if (!refused) return video;
  return h(Fragment, null, video,
    h("div", { className: "live-refused", role: "alert", title: refused,
               style: { color: "var(--red-11)", fontSize: "var(--font-size-2)" } },
      /^40[13]\b/.test(refused)
        ? "Live view closed: your access changed. Reload the page to see what you may watch."
        : `Live view ended (${refused}).`));
}

const CAMERA = { video: { width: { ideal: 640 }, height: { ideal: 480 }, frameRate: { ideal: 15 } } };
const CAMERA_RETRY_MS = [1000, 2000, 5000, 10000];

// The screen share the recorder (recorder_stream.js) captured: one browser prompt serves both.
function recorderScreen() {
  const media = window.proctorRecorder?.streams?.screen?.media;
  return media && media.getVideoTracks().some((t) => t.readyState === "live") ? media : null;
}

// Publishes the camera, and with `screen` the recorder's screen share, while mounted. Renders
// nothing. onStatus({status, detail}).
export function LivePublish({ url, token, screen, audio, rtcConfig, onStatus }) {
  const onStatusRef = useLatest(onStatus);
  const config = configKey(rtcConfig);
  useEffect(() => {
    if (!url || !token) return undefined;
    let cancelled = false;
    let camera = null;
    let cameraTimer = null;
    let cameraFailures = 0;
    let started = false;
    const publisher = new LivePublisher({
      url, token, onStatus: (s) => onStatusRef.current?.(s), rtcConfig: JSON.parse(config),
    });
    const screenStream = () => (screen ? recorderScreen() : null);
    let published = null;

    // The camera is our own capture, so a failure here never touches the recording's.
    const acquireCamera = async () => {
      try {
        const stream = await navigator.mediaDevices.getUserMedia({ ...CAMERA, audio: Boolean(audio) });
        if (cancelled) {
          stream.getTracks().forEach((t) => t.stop());
          return;
        }
        cameraFailures = 0;
        camera = stream;
        stream.getVideoTracks()[0].addEventListener("ended", () => {
          if (!cancelled) cameraTimer = setTimeout(acquireCamera, CAMERA_RETRY_MS[0]);
        });
        published = screenStream();
        if (started) {
          publisher.replaceStreams({ camera, screen: published });
        } else {
          started = true;
          publisher.start({ camera, screen: published });
        }
      } catch (err) {
        if (cancelled) return;
        onStatusRef.current?.({ status: "retrying", detail: `camera: ${err?.name || err}` });
        const delay = CAMERA_RETRY_MS[Math.min(cameraFailures++, CAMERA_RETRY_MS.length - 1)];
        cameraTimer = setTimeout(acquireCamera, delay);
      }
    };
    // The recorder shows every change of its state on its status element (#recorder-state); a
    // screen share that started, ended or was shared again is published on a new connection.
    const screenWatch = new MutationObserver(() => {
      const current = screenStream();
      if (started && current !== published) {
        published = current;
        publisher.replaceStreams({ camera, screen: current });
      }
    });
    // The recorder's element may mount after this one: watch the page for it.
    if (screen) {
      screenWatch.observe(document.body, {
        subtree: true, attributes: true, attributeFilter: ["data-state", "data-recording"],
      });
    }
    acquireCamera();
    return () => {
      cancelled = true;
      clearTimeout(cameraTimer);
      screenWatch.disconnect();
      publisher.stop();
      camera?.getTracks().forEach((t) => t.stop());
    };
  }, [url, token, screen, audio, config]);
  return null;
}
