import reflex as rx


class ExamRecorder(rx.NoSSRComponent):
    """Records the exam's streams and uploads them through a durable queue (assets/recorder_view.js
    with recorder_session.js and recorder_stream.js, assets/upload_queue.js). Shows the recording
    indicator and upload status.

    Records while `active`; when `active` turns false it stops and flushes what is queued. Mounted
    with `active` false it only flushes what an earlier page left in the browser. Reports through
    on_status: {state, recording, pending, offline, blocked, message, warning, flushed, progress}.
    """

    library = "$/public/recorder_view.js"
    tag = "ExamRecorder"

    attempt_id: rx.Var[int]
    upload_token: rx.Var[str]
    streams: rx.Var[list[str]]  # "camera", "screen"
    required: rx.Var[bool]
    active: rx.Var[bool]
    # The first segment number per stream and snapshot seq the server has not seen.
    next_segment: rx.Var[dict[str, int]]
    next_snapshot_seq: rx.Var[int]
    # The admin's recording settings (defaults in services/settings.py): the browser has no others.
    chunk_interval_s: rx.Var[int]
    camera_bitrate_kbps: rx.Var[int]
    screen_bitrate_kbps: rx.Var[int]
    snapshot_interval_s: rx.Var[int]
    camera_resolution: rx.Var[str]  # "640x480"
    screen_resolution: rx.Var[str]
    screen_frame_rate: rx.Var[int]
    clock_offset_ms: rx.Var[int]  # server minus client, until the recorder has measured it itself
    # The question on screen and its answer: each chunk notes what was viewed and answered during it.
    question_id: rx.Var[int]
    answer_key: rx.Var[str]
    # The page's language and its texts (assets/i18n.js), for what the recorder shows itself.
    lang: rx.Var[str]
    messages: rx.Var[dict[str, str]]
    on_status: rx.EventHandler[rx.event.passthrough_event_spec(dict)]


exam_recorder = ExamRecorder.create


class ExamTabGuard(rx.NoSSRComponent):
    """One exam page per attempt (assets/exam_tab_guard.js): holds the browser's lock on the exam
    and reports through on_event whether this page may record ("claim") or another has the exam
    open ("blocked", "lost")."""

    library = "$/public/exam_tab_guard.js"
    tag = "ExamTabGuard"

    on_event: rx.EventHandler[rx.event.passthrough_event_spec(dict)]


exam_tab_guard = ExamTabGuard.create
