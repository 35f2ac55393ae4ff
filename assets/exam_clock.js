// The exam countdown. The deadline comes from the server (epoch ms); the local clock is corrected
// by the offset measured here against /api/time, so a wrong computer clock changes nothing.
import { createElement as h, useEffect, useRef, useState } from "react";
import { measureClockOffset } from "$/public/clock_sync.js";

const TICK_MS = 250;
// Fired again while the server still sees time left (its clock is the authority).
const EXPIRE_RETRY_MS = 2000;
const WARN_BELOW_MS = 60_000;

function formatLeft(ms) {
  const total = Math.ceil(ms / 1000);
  const hours = Math.floor(total / 3600);
  const minutes = Math.floor((total % 3600) / 60);
  const seconds = String(total % 60).padStart(2, "0");
  return hours > 0 ? `${hours}:${String(minutes).padStart(2, "0")}:${seconds}` : `${minutes}:${seconds}`;
}

// deadlineMs 0: not started, the full duration is shown and nothing counts down.
export function ExamClock({ deadlineMs, durationS, label, onSync, onExpire }) {
  const [offset, setOffset] = useState(null);
  const [now, setNow] = useState(() => Date.now());
  const lastExpireRef = useRef(0);

  useEffect(() => {
    let cancelled = false;
    measureClockOffset()
      .then((sync) => !cancelled && (setOffset(sync.offset_ms), onSync?.(sync)))
      .catch(() => !cancelled && (setOffset(0), onSync?.({ offset_ms: null, rtt_ms: null })));
    const timer = setInterval(() => setNow(Date.now()), TICK_MS);
    return () => {
      cancelled = true;
      clearInterval(timer);
    };
  }, []);

  const counting = deadlineMs > 0 && offset !== null;
  const left = counting ? Math.max(0, deadlineMs - (now + offset)) : durationS * 1000;

  useEffect(() => {
    if (counting && left === 0 && now - lastExpireRef.current >= EXPIRE_RETRY_MS) {
      lastExpireRef.current = now;
      onExpire?.();
    }
  }, [counting, left, now]);

  return h(
    "span",
    {
      id: "exam-clock",
      "data-remaining-ms": left,
      "data-counting": counting ? "yes" : "no",
      role: "timer",
      "aria-label": label || "Time left",
      style: {
        fontVariantNumeric: "tabular-nums",
        fontWeight: 600,
        fontSize: "1.25rem",
        color: counting && left < WARN_BELOW_MS ? "var(--red-11)" : "inherit",
      },
    },
    formatLeft(left),
  );
}
