// The exam recorder on the candidate's page (proctor_app/components/recorder.py): it runs the
// recording session (recorder_session.js) and shows the recording indicator, the upload status
// and, after the submit, the upload progress itself: they must keep working while the network
// (and with it the page's server connection) is down. The page hears through
// onStatus({state, recording, blocked, message, warning, flushed}) when one of those changes, for
// what needs the server; window.proctorRecorder.retry() re-acquires failed devices (a click
// handler calls it, so a screen share gets the candidate's gesture).
//
// Every setting comes from the server in the props (the admin settings and their defaults).
import { createElement as h, useEffect, useRef, useState } from "react";
import { formatCount, t, useMessages } from "$/public/i18n.js";
import { ExamRecording } from "$/public/recorder_session.js";

// Uploads waiting longer than this are shown to the candidate; quicker ones are just traffic.
const BACKLOG_AFTER_MS = 2500;
const STATUS_TICK_MS = 1000;

function statusOf(session) {
  const streams = Object.values(session.streams);
  const troubled = streams.filter((stream) => stream.state === "failed" || stream.state === "lost");
  const recordingPhase = session.phase === "recording";
  const offline = !navigator.onLine;
  const queue = session.queue;
  const done = queue.acked - (session.flushFrom ?? queue.acked);
  return {
    state: session.phase,
    recording: recordingPhase && streams.some((stream) => stream.state === "recording"),
    blocked: recordingPhase && Boolean(session.props.required) && troubled.length > 0,
    message: troubled.map((stream) => stream.message).join(" "),
    warning: [!session.props.required && recordingPhase && troubled.length
                ? t("Recording is not working; the exam goes on without it.") : "",
              session.storageWarning].filter(Boolean).join(" "),
    flushed: session.phase === "flushed",
    // Shown here only: uploads quicker than BACKLOG_AFTER_MS are just traffic.
    offline,
    // Shown next to the indicator: whether the screen recording has the screen's sound.
    screenAudio: session.streams.screen?.state === "recording" ? session.streams.screen.hasAudio : null,
    pending: offline || !recordingPhase ? queue.pending : queue.backlog(BACKLOG_AFTER_MS),
    // The server revoked the upload token: uploads stopped, what waits stays in this browser.
    revoked: queue.revoked,
    progress: Math.round((100 * done) / Math.max(1, done + queue.pending)),
  };
}

const MUTED = { fontSize: "var(--font-size-2)", color: "var(--gray-11)" };

function Revoked({ status }) {
  return h("div", { id: "upload-revoked", role: "alert", style: { color: "var(--red-11)" } },
    t("Uploads stopped: {reason}", { reason: status.revoked }),
    status.pending > 0 ? " " + t("{count} waiting upload(s) are kept in this browser.",
                                 { count: formatCount(status.pending) }) : "");
}

// One line's height whatever it shows, so the questions below never move when it changes.
const INDICATOR_ROW = { display: "flex", gap: "1rem", alignItems: "center", minHeight: "var(--line-height-3)" };

function Starting() {
  return h("div", { id: "recording-indicator", role: "status", style: INDICATOR_ROW },
    h("span", { style: MUTED }, t("Starting the recording...")));
}

function Indicator({ status }) {
  // A live region: recording stopping or the upload going offline is announced.
  return h("div", { id: "recording-indicator", role: "status", style: INDICATOR_ROW },
    status.recording
      ? h("span", { style: { display: "flex", gap: "0.5rem", alignItems: "center", fontWeight: 500 } },
          h("span", { style: { width: "0.7em", height: "0.7em", borderRadius: "50%", background: "var(--red-9)" } }),
          t("Recording"))
      : h("span", { style: MUTED }, t("Not recording")),
    status.screenAudio === null ? null
      : h("span", { id: "screen-audio", "data-shared": String(status.screenAudio), style: MUTED },
          status.screenAudio ? t("Screen sound shared") : t("Screen sound not shared")),
    h("span", { id: "upload-status", style: MUTED },
      status.offline ? t("Offline.") + " " : "",
      status.pending > 0 ? t("{count} waiting to upload", { count: formatCount(status.pending) }) : t("All uploaded")));
}

function FlushProgress({ status }) {
  const text = status.flushed
    ? t("The recording is uploaded. You can leave this page.")
    : t("Uploading the rest of the recording: {count} left. Keep this page open.", { count: formatCount(status.pending) }) +
      (status.offline ? " " + t("Offline: waiting for the network.") : "");
  return h("div", { style: { display: "flex", flexDirection: "column", gap: "0.5rem" } },
    h("span", { id: status.flushed ? "flush-done" : "flush-pending" }, text),
    h("div", { id: "flush-progress", role: "progressbar", "aria-valuenow": status.progress,
               "aria-labelledby": status.flushed ? "flush-done" : "flush-pending",
               style: { height: "8px", background: "var(--gray-4)", borderRadius: "4px", overflow: "hidden" } },
      h("div", { style: { width: `${status.progress}%`, height: "100%", background: "var(--accent-9)" } })));
}

export function ExamRecorder(props) {
  useMessages(props.messages, props.lang);
  const sessionRef = useRef(null);
  const propsRef = useRef(props);
  const [status, setStatus] = useState(null);
  propsRef.current = props;

  useEffect(() => {
    if (!props.attemptId || !props.uploadToken) return undefined;
    let lastReported = null;
    const session = new ExamRecording(props, () => {
      const shown = statusOf(session);
      setStatus(shown);
      const { offline, pending, progress, revoked, screenAudio, ...forThePage } = shown;
      const key = JSON.stringify(forThePage);
      if (key !== lastReported) {
        lastReported = key;
        propsRef.current.onStatus?.(forThePage);
      }
    });
    sessionRef.current = session;
    window.proctorRecorder = session;
    session.mount();
    const statusTimer = setInterval(() => session.publish(), STATUS_TICK_MS);
    return () => {
      clearInterval(statusTimer);
      session.unmount();
      sessionRef.current = null;
      if (window.proctorRecorder === session) delete window.proctorRecorder;
    };
  }, [props.attemptId, Boolean(props.uploadToken)]);

  useEffect(() => {
    sessionRef.current?.update(props);
  });

  const session = sessionRef.current;
  const view = !status || status.state === "idle" ? (props.active ? h(Starting) : null)
    : status.revoked ? h(Revoked, { status })
    : status.state === "recording" ? h(Indicator, { status }) : h(FlushProgress, { status });
  return h("div", { style: { marginBottom: view ? "1rem" : 0 } },
    // Read by tests and support: what the queue holds and has had acknowledged.
    h("span", { id: "recorder-state", hidden: true, "data-state": status?.state ?? "",
                "data-pending": session?.queue.pending ?? 0, "data-acked": session?.queue.acked ?? 0,
                "data-persisted": String(session?.queue.persistence?.persisted ?? ""),
                // The live publisher (live_components.js) watches it to publish the screen share.
                "data-screen": session?.streams.screen?.state ?? "" }),
    view);
}
