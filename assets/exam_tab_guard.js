// One exam page per attempt: a Web Lock per exam page path in this browser, so a second tab or window of
// the same exam learns at once that the exam is open elsewhere, and a page id (sessionStorage:
// kept across this tab's reloads, not shared with other tabs) that the server checks, which
// catches other browsers and devices. The page records and publishes only once it holds the
// exam (proctor_app/state/exam_recording.py, tab_event).
//
// onEvent({event, page_id, take_over}): "claim" when this tab holds the lock, "blocked" when
// another tab holds it, "lost" when another tab took it over. window.proctorTabGuard.takeOver()
// (the "Use this tab" button) moves the exam here: it takes the lock from the other tab, which
// stops, and tells the server to take the attempt from any other page.
import { useEffect, useRef } from "react";

// A reloading tab's old page lets go of the lock within this time.
const WAIT_FOR_LOCK_MS = 2500;
const PAGE_ID_KEY = "proctor-page-id";

function pageId() {
  let id = sessionStorage.getItem(PAGE_ID_KEY);
  if (!id) {
    id = crypto.randomUUID().replaceAll("-", "");
    sessionStorage.setItem(PAGE_ID_KEY, id);
  }
  return id;
}

class TabGuard {
  constructor(lockName, report) {
    this.lockName = lockName;
    this.report = report;
    this.pageId = pageId();
    this.held = false;
    this.release = null;
    this.closed = false;
  }

  start() {
    if (!navigator.locks) {  // no Web Locks (old browsers): the server's check alone
      this.report({ event: "claim", page_id: this.pageId, take_over: false });
      return;
    }
    this.acquire({ signal: AbortSignal.timeout(WAIT_FOR_LOCK_MS) }, false);
  }

  acquire(options, takeOver) {
    navigator.locks.request(this.lockName, options, () => {
      if (this.closed) return undefined;
      this.held = true;
      this.report({ event: "claim", page_id: this.pageId, take_over: takeOver });
      return new Promise((resolve) => { this.release = resolve; });
    }).catch(() => {
      if (this.closed) return;
      // Held and then broken: another tab stole it. Never held: another tab has it.
      this.report({ event: this.held ? "lost" : "blocked", page_id: this.pageId, take_over: false });
      this.held = false;
    });
  }

  takeOver() {
    if (this.held || !navigator.locks) {  // the other page is on another browser or device
      this.report({ event: "claim", page_id: this.pageId, take_over: true });
    } else {
      this.acquire({ steal: true }, true);
    }
  }

  stop() {
    this.closed = true;
    this.release?.();
  }
}

export function ExamTabGuard({ onEvent }) {
  const onEventRef = useRef(onEvent);
  onEventRef.current = onEvent;
  useEffect(() => {
    // The page's path names the exam (/candidate/exams/<id>, a launch page's own).
    const guard = new TabGuard(`proctor-exam:${window.location.pathname}`, (event) => onEventRef.current?.(event));
    window.proctorTabGuard = guard;
    guard.start();
    return () => {
      guard.stop();
      if (window.proctorTabGuard === guard) delete window.proctorTabGuard;
    };
  }, []);
  return null;
}
