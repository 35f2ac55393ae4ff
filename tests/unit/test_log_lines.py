"""The app's log lines: one per record with time, level, logger and the attempt id when there is
one (context variable or `extra`), text or JSON; refusals throttled to one line per kind a minute."""

import json
import logging
import re

import pytest

from proctor_app.logs import JsonFormatter, Throttled, _AttemptFilter, current_attempt, log_formatter
from tests.support.clock import FakeClock


class Lines(logging.Handler):
    def __init__(self, formatter):
        super().__init__()
        self.lines = []
        self.addFilter(_AttemptFilter())
        self.setFormatter(formatter)

    def emit(self, record):
        self.lines.append(self.format(record))


@pytest.fixture
def logger():
    log = logging.getLogger("proctor_app.test_lines")
    log.setLevel(logging.INFO)
    log.propagate = False
    yield log
    log.handlers.clear()


def test_text_lines_carry_time_level_logger_and_attempt(logger):
    handler = Lines(log_formatter(json_lines=False))
    logger.addHandler(handler)
    logger.info("no attempt here")
    token = current_attempt.set(42)
    try:
        logger.info("finalize of attempt started")
    finally:
        current_attempt.reset(token)
    logger.warning("given explicitly", extra={"attempt_id": 7})
    stamp = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"
    assert re.fullmatch(stamp + r" INFO proctor_app\.test_lines no attempt here", handler.lines[0])
    assert re.fullmatch(stamp + r" INFO proctor_app\.test_lines attempt=42 finalize of attempt started",
                        handler.lines[1])
    assert handler.lines[2].endswith("WARNING proctor_app.test_lines attempt=7 given explicitly")


def test_json_lines(logger):
    handler = Lines(JsonFormatter())
    logger.addHandler(handler)
    token = current_attempt.set(9)
    try:
        try:
            raise ValueError("boom")
        except ValueError:
            logger.exception("job %s failed", 3)
    finally:
        current_attempt.reset(token)
    line = json.loads(handler.lines[0])
    assert line["level"] == "ERROR" and line["logger"] == "proctor_app.test_lines"
    assert line["message"] == "job 3 failed" and line["attempt_id"] == 9
    assert "ValueError: boom" in line["exception"] and line["time"].endswith("+00:00")
    assert "\n" not in handler.lines[0]


def test_throttled_warnings_say_how_many_were_held_back(logger):
    handler = Lines(log_formatter(json_lines=False))
    logger.addHandler(handler)
    clock = FakeClock()
    refusals = Throttled(logger, every_s=60, monotonic=clock.monotonic)
    for _ in range(500):
        refusals.warning("503 server_busy", "upload refused: %s", "server_busy")
    refusals.warning("401 bad_token", "upload refused: %s", "bad_token")
    assert len(handler.lines) == 2
    clock.advance(61)
    refusals.warning("503 server_busy", "upload refused: %s", "server_busy")
    assert handler.lines[-1].endswith("upload refused: server_busy (and 499 more like it in the last 61 s)")
