// Pre-exam device check: asks for camera and microphone, shows a live preview and a level meter,
// and reports the outcome through onResult({ok, error, error_name, width, height, camera, microphone}).
// Changing the `round` prop runs the check again (the Retry button).
import { createElement as h, useEffect, useRef } from "react";
import { probeDevices } from "$/public/device_probe.js";
import { t, useMessages } from "$/public/i18n.js";

export function DeviceCheck({ round, messages, onResult }) {
  useMessages(messages);
  const videoRef = useRef(null);
  const barRef = useRef(null);

  useEffect(() => probeDevices(videoRef.current, barRef.current, (result) => onResult?.(result)), [round]);

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
      // A picture of the sound level (role "img": a meter would announce every change).
      { role: "img", "aria-label": t("Microphone level"), style: { height: "8px", background: "var(--gray-4)", borderRadius: "4px", overflow: "hidden" } },
      h("div", { ref: barRef, id: "mic-level", style: { height: "100%", width: "0%", background: "var(--green-9)" } }),
    ),
  );
}
