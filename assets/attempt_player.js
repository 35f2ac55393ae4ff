// Review player for one attempt: its recordings side by side in sync, speed, 5 s steps,
// keyboard shortcuts, and a timeline of events (click to seek, hover for a thumbnail).
// Times on the timeline are seconds since the attempt started; each video starts at its
// `offset` on that timeline. The first video leads, the others follow it.
// Anything on the page with a data-seek-s attribute (event list, snapshots) seeks on click.
// A recording with an HLS ladder plays it through hls.js, with a quality menu (Auto or one
// height); without a ladder, where MSE is missing, or after a fatal HLS error it plays the MP4.
import Hls from "hls.js";
import { createElement as h, useCallback, useEffect, useRef, useState } from "react";

const SPEEDS = [0.5, 1, 1.5, 2, 4, 8, 16];
const STEP_S = 5;
const SEVERITY_COLORS = { info: "#3b82f6", warning: "#f59e0b", critical: "#dc2626" };
const SYNC_EVERY_MS = 250;
const BUTTON_STYLE = { padding: "2px 10px", border: "1px solid var(--gray-7)", borderRadius: "4px",
  background: "var(--gray-2)", cursor: "pointer", minWidth: "4em" };

function clock(seconds) {
  const whole = Math.max(0, Math.floor(seconds || 0));
  const hours = Math.floor(whole / 3600);
  const mm = String(Math.floor((whole % 3600) / 60));
  const ss = String(whole % 60).padStart(2, "0");
  return hours ? `${hours}:${mm.padStart(2, "0")}:${ss}` : `${mm}:${ss}`;
}

function clamp(value, lo, hi) {
  return Math.min(Math.max(value, lo), hi);
}

function isTyping(target) {
  const tag = (target && target.tagName) || "";
  return ["INPUT", "TEXTAREA", "SELECT"].includes(tag) || (target && target.isContentEditable);
}

// hls.js keeps 30 s ahead by default: at 16x that is under 2 s of wall time.
const HLS_CONFIG = { maxBufferLength: 60, maxMaxBufferLength: 120 };

// One recording's <video>: HLS when it has a ladder (and the browser has MSE), else the MP4.
// The element carries data-player-source ("hls" or "mp4") and, with HLS, data-level-height
// (the height playing now), for the page and its tests.
function RecordingVideo({ video, muted, onElement, onClick }) {
  const element = useRef(null);
  const hlsRef = useRef(null);
  const [levels, setLevels] = useState([]);
  const [choice, setChoice] = useState(-1);
  const [playingHeight, setPlayingHeight] = useState(0);
  const [source, setSource] = useState("mp4");

  useEffect(() => {
    const el = element.current;
    if (!el) return undefined;
    if (!video.hls || !Hls.isSupported()) {
      el.src = video.src;
      setSource("mp4");
      return undefined;
    }
    const hls = new Hls(HLS_CONFIG);
    hlsRef.current = hls;
    const fallBack = () => {
      // Keep the position: the MP4 is the same timeline.
      const at = el.currentTime;
      hls.destroy();
      hlsRef.current = null;
      setLevels([]);
      setSource("mp4");
      el.src = video.src;
      el.currentTime = at;
    };
    hls.on(Hls.Events.MANIFEST_PARSED, (_event, data) => {
      setLevels(data.levels.map((level, index) => ({ index, height: level.height })));
    });
    hls.on(Hls.Events.LEVEL_SWITCHED, (_event, data) => {
      setPlayingHeight(hls.levels[data.level] ? hls.levels[data.level].height : 0);
    });
    hls.on(Hls.Events.ERROR, (_event, data) => { if (data.fatal) fallBack(); });
    setSource("hls");
    hls.loadSource(video.hls);
    hls.attachMedia(el);
    return () => {
      hls.destroy();
      hlsRef.current = null;
    };
  }, [video.hls, video.src]);

  const chooseLevel = (value) => {
    const index = parseInt(value, 10);
    setChoice(index);
    // currentLevel switches now (drops what is buffered); -1 gives the choice back to ABR.
    if (hlsRef.current) hlsRef.current.currentLevel = index;
  };

  return h("figure", { style: { flex: 1, margin: 0 } },
    h("video", {
      ref: (el) => { element.current = el; onElement(el); },
      id: `player-video-${video.stream}`, poster: video.poster || undefined,
      preload: "auto", playsInline: true, muted,
      "data-player-source": source, "data-level-height": playingHeight || undefined,
      style: { width: "100%", background: "#000", borderRadius: "4px" },
      onClick,
    }),
    h("figcaption", { style: { fontSize: "0.85em", color: "var(--gray-11)", display: "flex", gap: "8px" } },
      video.stream,
      levels.length > 0 && h("label", null, "Quality ",
        h("select", { id: `player-quality-${video.stream}`, value: String(choice),
          onChange: (e) => chooseLevel(e.target.value) },
          h("option", { value: "-1" }, choice === -1 && playingHeight ? `Auto (${playingHeight}p)` : "Auto"),
          levels.map((level) => h("option", { key: level.index, value: String(level.index) },
            `${level.height}p`))))));
}

export function AttemptPlayer({ videos = [], markers = [], gaps = [], timelineS = 0, sprite = {} }) {
  const elements = useRef([]);
  const timelineRef = useRef(null);
  const [position, setPosition] = useState(0);
  const [playing, setPlaying] = useState(false);
  const [rate, setRate] = useState(1);
  const [hover, setHover] = useState(null);
  const [spriteHeight, setSpriteHeight] = useState(0);
  const length = Math.max(timelineS || 0, 0.001);

  const lead = () => elements.current[0];
  const leadTime = () => (lead() ? lead().currentTime + videos[0].offset : 0);

  const seek = useCallback((seconds) => {
    const target = clamp(seconds, 0, length);
    elements.current.forEach((el, i) => {
      if (!el) return;
      const end = Number.isFinite(el.duration) ? el.duration : Infinity;
      el.currentTime = clamp(target - videos[i].offset, 0, end);
    });
    setPosition(target);
  }, [videos, length]);

  const togglePlay = useCallback(() => {
    const el = lead();
    if (!el) return;
    if (el.paused) el.play().catch(() => {});
    else el.pause();
  }, []);

  const step = useCallback((delta) => seek(leadTime() + delta), [seek]);

  const changeRate = useCallback((next) => {
    setRate(next);
    elements.current.forEach((el) => { if (el) el.playbackRate = next; });
  }, []);

  const shiftRate = useCallback((direction) => {
    const index = SPEEDS.indexOf(lead() ? lead().playbackRate : 1);
    changeRate(SPEEDS[clamp((index < 0 ? 1 : index) + direction, 0, SPEEDS.length - 1)]);
  }, [changeRate]);

  // Followers copy the lead's play state and rate, and jump back when they drift.
  useEffect(() => {
    const timer = setInterval(() => {
      const el = lead();
      if (!el) return;
      const now = leadTime();
      setPosition(now);
      setPlaying(!el.paused);
      const tolerance = 0.3 * Math.max(1, el.playbackRate / 2);
      elements.current.slice(1).forEach((follower, j) => {
        if (!follower) return;
        const wanted = now - videos[j + 1].offset;
        const inside = wanted >= 0 && (!Number.isFinite(follower.duration) || wanted < follower.duration);
        if (follower.playbackRate !== el.playbackRate) follower.playbackRate = el.playbackRate;
        if (inside && Math.abs(follower.currentTime - wanted) > tolerance) follower.currentTime = wanted;
        if (el.paused || !inside) { if (!follower.paused) follower.pause(); }
        else if (follower.paused) follower.play().catch(() => {});
      });
    }, SYNC_EVERY_MS);
    return () => clearInterval(timer);
  }, [videos]);

  useEffect(() => {
    const onKey = (event) => {
      if (isTyping(event.target) || event.ctrlKey || event.metaKey || event.altKey) return;
      const actions = {
        " ": togglePlay, k: togglePlay,
        ArrowLeft: () => step(-STEP_S), j: () => step(-STEP_S),
        ArrowRight: () => step(STEP_S), l: () => step(STEP_S),
        "<": () => shiftRate(-1), "[": () => shiftRate(-1),
        ">": () => shiftRate(1), "]": () => shiftRate(1),
        Home: () => seek(0),
      };
      const action = actions[event.key];
      if (!action) return;
      event.preventDefault();
      action();
    };
    const onSeekClick = (event) => {
      const item = event.target.closest && event.target.closest("[data-seek-s]");
      // A disclosure's summary (an event's details) opens and closes; it does not seek.
      if (!item || item.dataset.seekS === "" || event.target.closest("summary")) return;
      event.preventDefault();
      seek(parseFloat(item.dataset.seekS));
    };
    document.addEventListener("keydown", onKey);
    document.addEventListener("click", onSeekClick);
    return () => {
      document.removeEventListener("keydown", onKey);
      document.removeEventListener("click", onSeekClick);
    };
  }, [togglePlay, step, shiftRate, seek]);

  useEffect(() => {
    if (!sprite || !sprite.url) return;
    const image = new Image();
    image.onload = () => setSpriteHeight(image.naturalHeight);
    image.src = sprite.url;
  }, [sprite && sprite.url]);

  const timeAt = (clientX) => {
    const box = timelineRef.current.getBoundingClientRect();
    return clamp((clientX - box.left) / box.width, 0, 1) * length;
  };

  const thumbnail = () => {
    if (!hover || !sprite || !sprite.url || !spriteHeight) return null;
    const index = Math.max(0, Math.floor((hover.t - sprite.offset) / sprite.interval));
    return h("div", {
      id: "player-thumb",
      style: {
        position: "absolute", bottom: "44px", left: `calc(${(hover.t / length) * 100}% - ${sprite.width / 2}px)`,
        width: `${sprite.width}px`, height: `${spriteHeight}px`, border: "2px solid #111",
        backgroundImage: `url("${sprite.url}")`, backgroundPosition: `-${index * sprite.width}px 0`,
        backgroundRepeat: "no-repeat", pointerEvents: "none", zIndex: 5,
      },
    });
  };

  const percent = (seconds) => `${(clamp(seconds, 0, length) / length) * 100}%`;

  return h("div", { className: "attempt-player", style: { width: "100%" } },
    h("div", { style: { display: "flex", gap: "8px" } },
      videos.map((video, i) => h(RecordingVideo, {
        key: video.stream, video, muted: i > 0, onClick: togglePlay,
        onElement: (el) => { elements.current[i] = el; },
      }))),
    h("div", { style: { display: "flex", alignItems: "center", gap: "8px", margin: "8px 0" } },
      h("button", { id: "player-back", type: "button", style: BUTTON_STYLE, onClick: () => step(-STEP_S),
        title: "Back 5 s (J or Left)" }, "-5 s"),
      h("button", { id: "player-play", type: "button", style: BUTTON_STYLE, onClick: togglePlay,
        title: "Play or pause (Space or K)" }, playing ? "Pause" : "Play"),
      h("button", { id: "player-forward", type: "button", style: BUTTON_STYLE, onClick: () => step(STEP_S),
        title: "Forward 5 s (L or Right)" }, "+5 s"),
      h("label", null, "Speed ",
        h("select", { id: "player-speed", value: String(rate), onChange: (e) => changeRate(parseFloat(e.target.value)) },
          SPEEDS.map((s) => h("option", { key: s, value: String(s) }, `${s}x`)))),
      h("span", { id: "player-time", style: { fontVariantNumeric: "tabular-nums" } },
        `${clock(position)} / ${clock(timelineS)}`),
      h("span", { style: { fontSize: "0.8em", color: "var(--gray-11)" } },
        "Keys: Space or K play/pause, J/L or arrows step 5 s, < > speed, Home to start")),
    h("div", {
      id: "player-timeline", ref: timelineRef,
      style: { position: "relative", height: "36px", background: "var(--gray-4)", borderRadius: "4px", cursor: "pointer" },
      onClick: (e) => seek(timeAt(e.clientX)),
      onMouseMove: (e) => setHover({ t: timeAt(e.clientX) }),
      onMouseLeave: () => setHover(null),
    },
      gaps.map((gap, i) => h("div", {
        key: `gap-${i}`, className: "timeline-gap", title: `No recording ${clock(gap.start)}-${clock(gap.end)}`,
        style: { position: "absolute", top: 0, bottom: 0, left: percent(gap.start),
          width: `calc(${percent(gap.end)} - ${percent(gap.start)})`, background: "repeating-linear-gradient(45deg, #bbb 0 4px, transparent 4px 8px)" },
      })),
      markers.map((marker) => h("div", {
        key: `marker-${marker.id}`, className: "timeline-marker", "data-severity": marker.severity,
        "data-t": marker.t, title: marker.label,
        onClick: (e) => { e.stopPropagation(); seek(marker.t); },
        style: { position: "absolute", top: "4px", bottom: "4px", left: `calc(${percent(marker.t)} - 3px)`,
          width: "6px", borderRadius: "2px", background: SEVERITY_COLORS[marker.severity] || "#6b7280", zIndex: 2 },
      })),
      h("div", { id: "player-playhead", style: { position: "absolute", top: 0, bottom: 0, left: percent(position),
        width: "2px", background: "#111", zIndex: 3, pointerEvents: "none" } }),
      hover && h("div", { id: "player-hover-time", style: { position: "absolute", bottom: "38px",
        left: percent(hover.t), fontSize: "0.75em", background: "#111", color: "#fff", padding: "0 4px",
        borderRadius: "2px", pointerEvents: "none", zIndex: 6 } }, clock(hover.t)),
      thumbnail()));
}

// Calls onTick every `ms` milliseconds while it is on the page (progress polling).
export function EveryInterval({ ms = 2000, onTick }) {
  const callback = useRef(onTick);
  callback.current = onTick;
  useEffect(() => {
    const timer = setInterval(() => callback.current && callback.current(), ms);
    return () => clearInterval(timer);
  }, [ms]);
  return null;
}
