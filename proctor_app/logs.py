"""Logging of every process (app, ingest processes, worker, CLI), configured once at start.

One line per record: time, level, logger, the attempt id when there is one, the message; JSON lines
with PROCTOR_LOG_FORMAT=json. The attempt id comes from `extra={"attempt_id": ...}` or from the
`current_attempt` context variable, which code working for one attempt sets (it follows into tasks
and `asyncio.to_thread`).
"""

import json
import logging
import os
import sys
import time
from contextvars import ContextVar
from datetime import datetime, timezone

current_attempt: ContextVar[int | None] = ContextVar("current_attempt", default=None)

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s%(attempt)s %(message)s"


class _AttemptFilter(logging.Filter):
    """Gives every record `attempt_id` (from `extra` or the context) and its text form."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "attempt_id", None) is None:
            record.attempt_id = current_attempt.get()
        record.attempt = f" attempt={record.attempt_id}" if record.attempt_id is not None else ""
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = {"time": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds"),
                "level": record.levelname, "logger": record.name, "message": record.getMessage()}
        if record.attempt_id is not None:
            line["attempt_id"] = record.attempt_id
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)


def log_formatter(json_lines: bool) -> logging.Formatter:
    if json_lines:
        return JsonFormatter()
    text = logging.Formatter(TEXT_FORMAT)
    text.converter = time.gmtime  # UTC, like every time the app stores
    text.default_time_format, text.default_msec_format = "%Y-%m-%dT%H:%M:%S", "%s.%03dZ"
    return text


def configure_logging(level: int = logging.INFO) -> None:
    """The app's loggers (`proctor_app.*`) to stderr at `level`; idempotent. Other libraries'
    loggers (Reflex, granian) keep their own set-up."""
    app_log = logging.getLogger("proctor_app")
    if any(getattr(h, "proctor_handler", False) for h in app_log.handlers):
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.proctor_handler = True
    handler.addFilter(_AttemptFilter())
    handler.setFormatter(log_formatter(os.environ.get("PROCTOR_LOG_FORMAT", "").lower() == "json"))
    app_log.addHandler(handler)
    app_log.setLevel(level)
    app_log.propagate = False


class Throttled:
    """Logs one record per key per `every_s` (with how many were held back since), so a burst of
    the same refusal is one line a minute, not thousands."""

    def __init__(self, logger: logging.Logger, every_s: float = 60.0, monotonic=time.monotonic):
        self.logger, self.every_s, self.monotonic = logger, every_s, monotonic
        self._last: dict[str, float] = {}
        self._held: dict[str, int] = {}

    def warning(self, key: str, message: str, *args, **kwargs) -> None:
        now = self.monotonic()
        last = self._last.get(key)
        if last is not None and now - last < self.every_s:
            self._held[key] = self._held.get(key, 0) + 1
            return
        held = self._held.pop(key, 0)
        self._last[key] = now
        if held:
            message += f" (and {held} more like it in the last {now - last:.0f} s)"
        self.logger.warning(message, *args, **kwargs)
