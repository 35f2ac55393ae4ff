"""What proctors and reviewers read about an attempt: its events as sentences, the proctor's
alerts, and what the attempt page's player plays.

The one source of these texts: the proctor grid, the attempt page and the API's event listing
all call `describe_event`. Every text is a plain string here (the translations wrap them later).
Events carry what the browser or the server put in their data; anything missing or of an
unexpected type is left out rather than shown as "None".
"""

from collections.abc import Callable
from dataclasses import dataclass

from proctor_app.services.review import format_clock

STREAM_NAMES = {"camera": "Camera", "camera_low": "Camera (small)", "screen": "Screen"}
SEGMENT_REASONS = {
    "start": "{stream} recording started",
    "page_load": "{stream} recording started again after the page was reloaded",
    "rotation": "{stream} recording continued in a new part",
    "recorder_error": "{stream} recording restarted after a recorder error",
    "device_regained": "{stream} recording resumed: the device is back",
    "retry": "{stream} recording started on a retry",
}
LIVE_LOST = {
    "publisher_left": "Live video ended: the candidate's page closed its connection",
    "no_frames": "Live video lost: no picture is arriving",
}
VIDEO_CODECS = {"avc1": "H.264", "h264": "H.264", "vp8": "VP8", "vp9": "VP9", "av01": "AV1",
                "opus": "Opus audio", "mp4a": "AAC audio"}
NAVIGATIONS = {"navigate": "opened the page", "reload": "reloaded the page",
               "back_forward": "came back to the page with Back or Forward", "prerender": "prerendered"}
# Labels of the data fields shown as detail lines; fields not named here are shown by their key.
DETAIL_LABELS = {
    "stream": "Stream", "segment": "Recording part", "label": "Device", "reason": "Reason",
    "stage": "Failed while", "error": "Error", "error_name": "Error", "message": "Message",
    "status": "Server answer", "item": "Upload", "failures": "Failed tries",
    "cause": "Cause", "camera": "Camera", "microphone": "Microphone", "text": "Consent text",
    "streams": "Streams", "required": "Recording required", "audio": "With sound",
}
MAX_DETAIL_CHARS = 300


@dataclass(frozen=True)
class EventText:
    sentence: str
    details: list[str]


def _stream(data: dict) -> str:
    stream = data.get("stream")
    return STREAM_NAMES.get(stream, str(stream).replace("_", " ").capitalize()) if stream else "Recording"


def _number(data: dict, key: str) -> float | None:
    value = data.get(key)
    return value if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _seconds(ms: float | None) -> str:
    return f"{ms / 1000:.0f} s" if ms is not None else ""


def _streams(value) -> str:
    if not isinstance(value, list) or not value:
        return ""
    names = [STREAM_NAMES.get(s, str(s)).lower() for s in value if s != "camera_low"]
    return " and ".join(names)


def video_format(mime_type: str) -> str:
    """"video/x-matroska;codecs=avc1,opus" -> "H.264 with Opus audio (Matroska)"."""
    container, _, params = mime_type.partition(";")
    codecs = [VIDEO_CODECS.get(c.strip().split(".")[0].lower(), c.strip())
              for c in params.partition("codecs=")[2].split(",") if c.strip()]
    kind = {"video/webm": "WebM", "video/x-matroska": "Matroska", "video/mp4": "MP4"}.get(
        container.strip().lower(), container.strip())
    return f"{' with '.join(codecs)} ({kind})" if codecs else kind


def _clock_offset(ms) -> str:
    if not isinstance(ms, (int, float)) or isinstance(ms, bool):
        return ""
    if ms == 0:
        return "The browser's clock matches the server's"
    side = "behind" if ms > 0 else "ahead of"  # the offset is the server's time minus the browser's
    return f"The browser's clock is {abs(ms):.0f} ms {side} the server's"


def _segment_started(data: dict) -> EventText:
    template = SEGMENT_REASONS.get(data.get("reason"), "{stream} recording started")
    details = []
    if isinstance(data.get("mime_type"), str) and data["mime_type"]:
        details.append(f"Video format: {video_format(data['mime_type'])}")
    if data.get("audio") is False:
        details.append("Without sound")
    if isinstance(data.get("segment"), int):
        details.append(f"Recording part {data['segment'] + 1}")
    navigation = NAVIGATIONS.get(data.get("navigation"))
    if navigation:
        details.append(f"Before this, the candidate {navigation}")
    return EventText(template.format(stream=_stream(data)), details)


def _device_lost(device: str) -> Callable[[dict], EventText]:
    def text(data: dict) -> EventText:
        details = [f"Device: {data['label']}"] if data.get("label") else []
        return EventText(f"{device} lost", details)
    return text


def _device_regained(device: str) -> Callable[[dict], EventText]:
    def text(data: dict) -> EventText:
        after = _seconds(_number(data, "after_ms"))
        return EventText(f"{device} back after {after}" if after else f"{device} back", [])
    return text


def _chunks_missing(data: dict) -> EventText:
    seqs = data.get("seqs") if isinstance(data.get("seqs"), list) else []
    count = len(seqs)
    what = f"{count} pieces" if count != 1 else "1 piece"
    details = [f"Cause: {data['cause']}"] if data.get("cause") else []
    return EventText(f"{what} of the {_stream(data).lower()} recording lost", details)


def _upload_rejected(data: dict) -> EventText:
    details = [f"Server answer: {data['status']}"] if data.get("status") else []
    details += [f"Message: {data[key]}" for key in ("message", "error") if data.get(key)]
    return EventText("The server refused an upload", details)


def _upload_recovered(data: dict) -> EventText:
    failures, ms = _number(data, "failures"), _number(data, "ms")
    sentence = "Uploads work again"
    if failures:
        sentence += f" after {failures:.0f} failed tries"
    if ms:
        sentence += f" over {_seconds(ms)}"
    return EventText(sentence, [f"Last error: {data['error']}"] if data.get("error") else [])


def _storage_persistence(data: dict) -> EventText:
    details = []
    if _number(data, "quota_mb") is not None:
        details.append(f"Space: {data.get('usage_mb', 0)} MB used of {data['quota_mb']} MB")
    if data.get("error"):
        details.append(f"Error: {data['error']}")
    if data.get("persisted"):
        return EventText("The browser keeps queued uploads even when short of space", details)
    return EventText("The browser may clear queued uploads when short of space", details)


def _exam_started(data: dict) -> EventText:
    offset = _clock_offset(data.get("clock_offset_ms"))
    return EventText("Exam started", [offset] if offset else [])


def _clock_synced(data: dict) -> EventText:
    details = [line for line in [_clock_offset(data.get("clock_offset_ms"))] if line]
    if _number(data, "rtt_ms") is not None:
        details.append(f"Round trip to the server: {data['rtt_ms']:.0f} ms")
    return EventText("Browser clock measured again", details)


def _device_check(passed: bool) -> Callable[[dict], EventText]:
    def text(data: dict) -> EventText:
        details = [f"{DETAIL_LABELS[key]}: {data[key]}" for key in ("camera", "microphone", "error_name")
                   if data.get(key)]
        if _number(data, "width") and _number(data, "height"):
            details.append(f"Picture: {data['width']}x{data['height']}")
        return EventText(f"Camera and microphone check {'passed' if passed else 'failed'}", details)
    return text


def _question(template: str, without_id: str) -> Callable[[dict], EventText]:
    def text(data: dict) -> EventText:
        question = data.get("question_id")
        return EventText(template.format(question=question) if question is not None else without_id, [])
    return text


def _submitted(auto: bool) -> Callable[[dict], EventText]:
    def text(data: dict) -> EventText:
        if data.get("status") == "expired":
            return EventText("Exam closed: the candidate never submitted and the time ran out long ago", [])
        return EventText("Exam submitted automatically at the deadline" if auto else "Exam submitted", [])
    return text


def _live_lost(data: dict) -> EventText:
    return EventText(LIVE_LOST.get(data.get("reason"), "Live video lost"), [])


def _live_restored(data: dict) -> EventText:
    after = _number(data, "after_s")
    return EventText(f"Live video back after {after:.0f} s" if after is not None else "Live video back",
                     _stream_lines(data))


def _stream_lines(data: dict) -> list[str]:
    streams = _streams(data.get("streams"))
    return [f"Streams: {streams}"] if streams else []


def _recording_started(data: dict) -> EventText:
    streams = _streams(data.get("streams"))
    details = ["The exam requires the recording"] if data.get("required") else []
    return EventText(f"Recording turned on: {streams}" if streams else "Recording turned on", details)


def _recording_failed(data: dict) -> EventText:
    details = [f"Reason: {data['reason']}"] if data.get("reason") else []
    if data.get("stage"):
        details.append(f"Failed while: {str(data['stage']).replace('_', ' ')}")
    if data.get("required"):
        details.append("The exam requires this recording")
    return EventText(f"{_stream(data)} recording could not start", details)


def _simple(sentence: str) -> Callable[[dict], EventText]:
    return lambda data: EventText(sentence, [])


def _with_error(sentence: str) -> Callable[[dict], EventText]:
    return lambda data: EventText(sentence, [f"Error: {data['error']}"] if data.get("error") else [])


def _per_stream(template: str) -> Callable[[dict], EventText]:
    return lambda data: EventText(template.format(stream=_stream(data)), [])


TEXTS: dict[str, Callable[[dict], EventText]] = {
    # The exam, from the server.
    "consent_accepted": lambda data: EventText(
        "Recording consent accepted", [f"Consent text: {data['text']}"] if data.get("text") else []),
    "exam_started": _exam_started,
    "clock_synced": _clock_synced,
    "device_check_passed": _device_check(True),
    "device_check_failed": _device_check(False),
    "question_viewed": _question("Question {question} viewed", "A question viewed"),
    "answer_saved": _question("Answer to question {question} saved", "An answer saved"),
    "submitted": _submitted(False),
    "auto_submitted": _submitted(True),
    "ended_by_api": _simple("Ended through the API"),
    # Live video, from the relay.
    "live_connected": lambda data: EventText("Live video connected", _stream_lines(data)),
    "live_lost": _live_lost,
    "live_restored": _live_restored,
    # The browser.
    "tab_hidden": _simple("Left the exam tab"),
    "tab_visible": _simple("Back on the exam tab"),
    "window_blur": _simple("Switched away from the exam window"),
    "window_focus": _simple("Back in the exam window"),
    "fullscreen_exit": _simple("Left full screen"),
    "fullscreen_enter": _simple("Entered full screen"),
    "offline": _simple("The browser lost its network connection"),
    "online": _simple("The browser is back online"),
    "camera_lost": _device_lost("Camera"),
    "camera_regained": _device_regained("Camera"),
    "microphone_lost": _device_lost("Microphone"),
    "microphone_regained": _device_regained("Microphone"),
    "screen_lost": _device_lost("Screen sharing"),
    "screen_regained": _device_regained("Screen sharing"),
    "recording_started": _recording_started,
    "recording_failed": _recording_failed,
    "recording_stopped": _per_stream("{stream} recording stopped"),
    "segment_started": _segment_started,
    "recorder_error": _with_error("The browser's recorder reported an error"),
    "upload_retry": _with_error("An upload failed; the browser tries again"),
    "upload_recovered": _upload_recovered,
    "upload_rejected": _upload_rejected,
    "storage_quota": _with_error("The browser's storage is full"),
    "chunks_missing": _chunks_missing,
    "uploads_flushed": _simple("Everything recorded was uploaded"),
    "snapshot_failed": _with_error("A snapshot could not be taken"),
    "storage_persistence": _storage_persistence,
}


def _detail_lines(data: dict) -> list[str]:
    """Every data field as "Label: value", for events without a text of their own."""
    lines = []
    for key, value in data.items():
        if value is None or value == "" or value == [] or value == {}:
            continue
        if isinstance(value, list):
            value = ", ".join(str(v) for v in value)
        elif isinstance(value, bool):
            value = "yes" if value else "no"
        label = DETAIL_LABELS.get(key, key.replace("_", " ").capitalize())
        lines.append(f"{label}: {value}")
    return lines


def _clip(line: str) -> str:
    return line if len(line) <= MAX_DETAIL_CHARS else line[:MAX_DETAIL_CHARS - 3] + "..."


def describe_event(kind: str, data: dict | None) -> EventText:
    """The event as a sentence, and its details as lines (shown behind a disclosure)."""
    data = data if isinstance(data, dict) else {}
    text = TEXTS.get(kind)
    if text is None:  # a kind without a text of its own (e.g. from an integration): its name
        return EventText(kind.replace("_", " ").capitalize(), [_clip(line) for line in _detail_lines(data)])
    found = text(data)
    return EventText(found.sentence, [_clip(line) for line in found.details])


# The attempt page: what the player area plays, and the live edge of an attempt in progress.
PLAYING_FINAL = "Playing the final recording."
PLAYING_UPLOADED = ("Playing what was uploaded so far: up to {clock} into the exam. "
                    "The rest is on its way from the candidate's browser.")
NOTHING_UPLOADED_YET = "Nothing has been uploaded yet: the player appears once the first pieces arrive."
NO_PLAYABLE_RECORDING = "There is no playable recording for this attempt."
UPLOADING = "Uploading: {start} to {end} ({length} s) is still on its way from the browser."


def player_caption(final: bool, uploaded_to_s: list[float], in_progress: bool) -> str:
    """final: the processed recording plays; uploaded_to_s: how far each recording that is still
    being uploaded reaches (seconds into the exam)."""
    if final:
        return PLAYING_FINAL
    if uploaded_to_s:
        return PLAYING_UPLOADED.format(clock=format_clock(max(uploaded_to_s)))
    return NOTHING_UPLOADED_YET if in_progress else NO_PLAYABLE_RECORDING


def uploading_from(start_s: float, exam_s: float) -> str:
    return UPLOADING.format(start=format_clock(start_s), end=format_clock(exam_s),
                            length=f"{max(0.0, exam_s - start_s):.0f}")


# The proctor's alerts.
ALERT_RECONNECTING = "{candidate}: live video dropped, reconnecting"
ALERT_OFFLINE = "{candidate}: live video offline"
ALERT_EVENT = "{candidate}: {sentence}"
ALERT_TOAST_TITLE = "Proctor alert"
ALERT_NOT_OPEN = "That alert is not one of your open alerts."


def feed_alert(candidate: str, status: str) -> str:
    return (ALERT_OFFLINE if status == "offline" else ALERT_RECONNECTING).format(candidate=candidate)


def event_alert(candidate: str, kind: str, data: dict | None) -> str:
    return ALERT_EVENT.format(candidate=candidate, sentence=describe_event(kind, data).sentence)
