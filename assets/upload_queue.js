// The durable upload queue of one attempt: persist first, then send, forget only when acknowledged.
//
// Every chunk, snapshot and proctoring event is written to IndexedDB before its upload starts and
// deleted only after the server answered that it holds it; a reload or a browser restart finds the
// rest there and sends it. Failed uploads are retried with exponential backoff and jitter; nothing
// is sent while the browser is offline. When IndexedDB refuses a write (quota), the item is kept
// in memory and the problem is reported as an event: data is never dropped for lack of storage.
// The only items given up are those the server refuses for good (too large, conflicting, upload
// window closed); each is reported with its cause. A revoked token (the candidate lost access)
// stops all sending, keeping everything here, until a page load brings a new token. The queue asks
// for persistent storage (navigator.storage.persist()), so that a browser under storage pressure
// does not evict chunks not yet uploaded; whether it was granted is in `persistence` once `ready`
// resolves.
import { t } from "$/public/i18n.js";
import { getBackendURL } from "$/utils/state";

const DB_NAME = "proctor-recorder";
const DB_VERSION = 1;
const BACKOFF_BASE_MS = 1000;
const BACKOFF_CAP_MS = 30_000;
const REQUEST_TIMEOUT_MS = 60_000;
const EVENT_BATCH_MS = 2000;
const EVENT_BATCH_MAX = 100;
// A damaged body (hash mismatch) is re-read and re-sent this often before it is reported lost.
const MAX_HASH_MISMATCHES = 3;
// Refused tokens are retried this seldom: a new token (a reload) may come in the meantime.
const AUTH_RETRY_MS = 60_000;

// Answers after which the same request may succeed later; any other 4xx is final.
const TRANSIENT = new Set([404, 408, 425, 429]);

function promised(request) {
  return new Promise((resolve, reject) => {
    request.onsuccess = () => resolve(request.result);
    request.onerror = () => reject(request.error);
  });
}

function committed(tx) {
  return new Promise((resolve, reject) => {
    tx.oncomplete = () => resolve();
    tx.onerror = () => reject(tx.error);
    tx.onabort = () => reject(tx.error || new DOMException("Transaction aborted", "AbortError"));
  });
}

function openDatabase() {
  return new Promise((resolve, reject) => {
    const request = indexedDB.open(DB_NAME, DB_VERSION);
    request.onupgradeneeded = () => {
      const db = request.result;
      // By attempt, oldest first: a reload lists what is queued without reading the bodies.
      db.createObjectStore("uploads", { keyPath: "id" }).createIndex("queued", ["attemptId", "createdAt"]);
      db.createObjectStore("events", { keyPath: "id" }).createIndex("attempt", "attemptId");
      // Segment and snapshot numbers handed out, so a reload never reuses one still queued.
      db.createObjectStore("counters", { keyPath: "id" });
    };
    request.onsuccess = () => resolve(request.result);
    request.onerror = () => reject(request.error);
    request.onblocked = () => reject(new DOMException("IndexedDB is blocked", "InvalidStateError"));
  });
}

// Exponential, with "equal jitter": between half and all of the step, never above the cap, so a
// crowd of browsers that lost the server together does not come back in step.
function backoffMs(failures) {
  const step = Math.min(BACKOFF_CAP_MS, BACKOFF_BASE_MS * 2 ** Math.max(0, failures - 1));
  return Math.round(step / 2 + (Math.random() * step) / 2);
}

// Storage the browser may not evict under pressure, asked once per page; granted silently or not
// at all by Chromium (site engagement), by a prompt in Firefox.
async function askPersistentStorage() {
  if (!navigator.storage?.persist) return { persisted: false, error: "not supported by this browser" };
  try {
    const persisted = await navigator.storage.persist();
    const { quota = 0, usage = 0 } = await navigator.storage.estimate?.() ?? {};
    return { persisted, quota_mb: Math.round(quota / 2 ** 20), usage_mb: Math.round(usage / 2 ** 20) };
  } catch (err) {
    return { persisted: false, error: `${err?.name || "Error"}: ${err?.message || err}`.slice(0, 300) };
  }
}

export async function sha256Hex(buffer) {
  const digest = await crypto.subtle.digest("SHA-256", buffer);
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
}

const queues = new Map();

// One queue per attempt and page, shared by every mount of the recorder.
export function queueFor(attemptId) {
  if (!queues.has(attemptId)) queues.set(attemptId, new UploadQueue(attemptId));
  return queues.get(attemptId);
}

export class UploadQueue {
  constructor(attemptId) {
    this.attemptId = attemptId;
    this.token = "";
    this.db = null;
    // Waiting uploads, oldest first: {id, createdAt, body?} (body only when not in IndexedDB).
    this.items = [];
    this.events = [];
    this.failures = 0;
    this.failingSince = 0;
    this.hashMismatches = new Map();
    // Numbers handed out, also when IndexedDB cannot keep them.
    this.memoryCounters = new Map();
    this.acked = 0;
    this.lastEventSend = 0;
    this.storageError = "";
    // {persisted: bool, quota_mb, usage_mb} or {persisted: false, error}: what the browser granted.
    this.persistence = null;
    this.authRefused = false;
    // The server's message once it revoked the token: nothing is sent with it any more.
    this.revoked = "";
    this.listeners = new Set();
    this.ready = this.open();
    this.running = false;
    this.wakeUp = null;
    window.addEventListener("online", () => this.kick());
  }

  async open() {
    try {
      this.db = await openDatabase();
      const tx = this.db.transaction(["uploads", "events"], "readonly");
      const range = IDBKeyRange.bound([this.attemptId, -Infinity], [this.attemptId, Infinity]);
      const ids = await promised(tx.objectStore("uploads").index("queued").getAllKeys(range));
      // Left from an earlier page: old by definition, so they count as waiting.
      this.items.push(...ids.map((id) => ({ id, createdAt: 0 })));
      this.events.push(...await promised(tx.objectStore("events").index("attempt").getAll(this.attemptId)));
    } catch (err) {
      this.db = null;
      this.storageProblem(err);
    }
    this.persistence = await askPersistentStorage();
    this.changed();
  }

  // Listeners hear about every change of the counts and about acknowledgements.
  subscribe(listener) {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  changed(what = { type: "change" }) {
    for (const listener of this.listeners) listener(what);
  }

  setToken(token) {
    if (token && token !== this.token) {
      this.token = token;
      this.authRefused = false;
      this.revoked = "";
      this.kick();
    }
  }

  get pending() {
    return this.items.length;
  }

  // Items waiting longer than `ms`: what the candidate should be told about.
  backlog(ms, now = Date.now()) {
    return this.items.filter((item) => now - item.createdAt > ms).length;
  }

  // The next number for a counter (segment of a stream, snapshot), never below `floor` (what the
  // server already has) and never one handed out before in this browser.
  async nextNumber(name, floor) {
    await this.ready;
    const id = `${this.attemptId}/${name}`;
    let value = Math.max(floor, this.memoryCounters.get(id) ?? 0);
    if (this.db) {
      try {
        const tx = this.db.transaction("counters", "readwrite");
        const store = tx.objectStore("counters");
        const row = await promised(store.get(id));
        value = Math.max(value, row?.next ?? 0);
        store.put({ id, next: value + 1 });
        await committed(tx);
      } catch (err) {
        this.storageProblem(err);
      }
    }
    this.memoryCounters.set(id, value + 1);
    return value;
  }

  // `key` names the item within the attempt (chunk/camera/0/12, snapshot/3).
  async put(key, path, headers, body) {
    await this.ready;
    const id = `${this.attemptId}/${key}`;
    const item = { id, createdAt: Date.now() };
    if (!await this.persist("uploads", { id, attemptId: this.attemptId, createdAt: item.createdAt, path, headers, body })) {
      Object.assign(item, { path, headers, body });
    }
    this.items.push(item);
    this.changed();
    this.kick();
  }

  async event(kind, data = {}, at = Date.now()) {
    await this.ready;
    const event = { id: crypto.randomUUID(), attemptId: this.attemptId, kind, at: Math.round(at), data };
    await this.persist("events", event);
    this.events.push(event);
    this.kick();
  }

  async persist(store, record) {
    if (!this.db) return false;
    try {
      const tx = this.db.transaction(store, "readwrite");
      tx.objectStore(store).put(record);
      await committed(tx);
      return true;
    } catch (err) {
      this.storageProblem(err);
      return false;
    }
  }

  async forget(store, ids) {
    if (!this.db || ids.length === 0) return;
    try {
      const tx = this.db.transaction(store, "readwrite");
      for (const id of ids) tx.objectStore(store).delete(id);
      await committed(tx);
    } catch (err) {
      // Left in IndexedDB, the item is sent again after a reload and answered "already stored".
      console.warn("could not delete an acknowledged upload", err);
    }
  }

  // Reported once; stays set, so a recorder mounted later still learns of it.
  storageProblem(err) {
    if (this.storageError) return;
    this.storageError = `${err?.name || "Error"}: ${err?.message || err}`;
    this.changed({ type: "storage", error: this.storageError });
  }

  kick() {
    this.wakeUp?.();
  }

  sleep(ms) {
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      function done() {
        clearTimeout(timer);
        resolve();
      }
      this.wakeUp = done;
    });
  }

  start() {
    if (this.running) return;
    this.running = true;
    this.loop();
  }

  async loop() {
    await this.ready;
    while (this.running) {
      if (!navigator.onLine) {
        await this.sleep(BACKOFF_CAP_MS);
        continue;
      }
      if (this.revoked) {  // only a new token (setToken) ends this
        await this.sleep(AUTH_RETRY_MS);
        continue;
      }
      if (!this.token || this.authRefused) {
        await this.sleep(this.authRefused ? AUTH_RETRY_MS : EVENT_BATCH_MS);
        this.authRefused = false;
        continue;
      }
      const eventsDue = this.events.length > 0 &&
        (this.items.length === 0 || this.events.length >= EVENT_BATCH_MAX ||
         Date.now() - this.lastEventSend >= EVENT_BATCH_MS);
      if (!eventsDue && this.items.length === 0) {
        await this.sleep(EVENT_BATCH_MS);
        continue;
      }
      const item = eventsDue ? null : this.items[0];
      const outcome = item ? await this.send(item) : await this.sendEvents();
      if (outcome === "halt") continue;
      if (outcome === "retry" && item && this.items[0] === item) {
        // The server takes chunks in any order: one that keeps failing does not hold up the rest.
        this.items.push(this.items.shift());
      }
      if (outcome === "retry") {
        this.failures += 1;
        if (this.failures === 1) {
          this.failingSince = Date.now();
          this.changed({ type: "retrying", error: this.lastError });
        }
        await this.sleep(backoffMs(this.failures));
      } else if (this.failures > 0) {
        this.changed({ type: "recovered", failures: this.failures, ms: Date.now() - this.failingSince,
                       error: this.lastError });
        this.failures = 0;
      }
    }
  }

  async request(method, path, headers, body) {
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(), REQUEST_TIMEOUT_MS);
    try {
      const response = await fetch(new URL(path, getBackendURL()), {
        method, body, signal: controller.signal, cache: "no-store",
        headers: { ...headers, Authorization: `Bearer ${this.token}` },
      });
      let answer = {};
      try {
        answer = await response.json();
      } catch {
        // Not our JSON (a proxy's error page): the status alone decides.
      }
      return { status: response.status, answer };
    } catch (err) {
      return { status: 0, answer: { error: "network", message: String(err?.message || err) } };
    } finally {
      clearTimeout(timer);
    }
  }

  // What an answer means for an item: "ok" (stored), "retry" (keep it), "drop" (refused for good),
  // "halt" (keep it and everything else, send nothing more with this token).
  classify(status, answer) {
    if (status >= 200 && status < 300) return "ok";
    this.lastError = `${status || "network"} ${answer.error || ""}`.trim();
    if (answer.error === "token_revoked") {
      if (!this.revoked) {
        this.revoked = answer.message || t("Access to this attempt was withdrawn.");
        this.changed({ type: "revoked", message: this.revoked });
      }
      return "halt";
    }
    if (status === 401) {  // missing or expired token: the next page load brings a new one
      this.authRefused = true;
      return "retry";
    }
    if (status === 0 || status >= 500 || TRANSIENT.has(status) || answer.error === "sha256_mismatch") {
      return "retry";
    }
    return "drop";
  }

  async send(item) {
    let record = item.body ? item : null;
    if (!record) {
      try {
        record = await promised(this.db.transaction("uploads").objectStore("uploads").get(item.id));
      } catch (err) {
        this.lastError = `storage ${err?.name}`;
        return "retry";
      }
    }
    if (!record) {  // another tab of the same attempt sent it and deleted it
      this.remove(item);
      return "ok";
    }
    const { status, answer } = await this.request("PUT", record.path, record.headers, record.body);
    let outcome = this.classify(status, answer);
    if (answer.error === "sha256_mismatch") {
      const count = (this.hashMismatches.get(item.id) ?? 0) + 1;
      this.hashMismatches.set(item.id, count);
      if (count >= MAX_HASH_MISMATCHES) outcome = "drop";
    }
    if (outcome === "ok") {
      this.acked += 1;
      this.remove(item);
      this.changed({ type: "ack", id: item.id, answer });
    } else if (outcome === "drop") {
      this.remove(item);
      this.changed({ type: "dropped", id: item.id, status, error: answer.error || "",
                     message: answer.message || "" });
    }
    return outcome;
  }

  remove(item) {
    this.items = this.items.filter((other) => other !== item);
    this.forget("uploads", [item.id]);
    this.changed();
  }

  async sendEvents() {
    const batch = this.events.slice(0, EVENT_BATCH_MAX);
    this.lastEventSend = Date.now();
    const { status, answer } = await this.request(
      "POST", `/api/attempts/${this.attemptId}/events`, { "Content-Type": "application/json" },
      JSON.stringify({ events: batch.map(({ id, kind, at, data }) => ({ id, kind, at, data })) }));
    const outcome = this.classify(status, answer);
    if (outcome === "retry" || outcome === "halt") return outcome;
    if (outcome === "drop") {
      // Refused for good; events cannot report their own loss, so the console does.
      console.error("proctoring events refused", status, answer, batch);
    }
    const sent = new Set(batch.map((event) => event.id));
    this.events = this.events.filter((event) => !sent.has(event.id));
    await this.forget("events", [...sent]);
    this.changed();
    return "ok";
  }

  // Resolves once nothing is waiting, media or events.
  drained() {
    if (this.items.length === 0 && this.events.length === 0) return Promise.resolve();
    return new Promise((resolve) => {
      const unsubscribe = this.subscribe(() => {
        if (this.items.length === 0 && this.events.length === 0) {
          unsubscribe();
          resolve();
        }
      });
      this.kick();
    });
  }
}
