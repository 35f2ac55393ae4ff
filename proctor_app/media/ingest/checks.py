"""What an upload is, and when it is well-formed: numbers, client times, hashes, metadata. Every
check runs before anything is written."""

import hashlib
import json
import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from proctor_app.media.ingest.errors import IngestError
from proctor_app.models import StreamKind, utcnow

# Numbers beyond these are no recording's: the path layout pads seq to 8 digits.
MAX_SEGMENT = 99_999
MAX_SEQ = 99_999_999
MAX_SNAPSHOT_BYTES = 4 * 1024 * 1024
MAX_META_BYTES = 4096
# Per stream of an attempt: segments (a recorder restart, a reload each) and stored bytes.
MAX_SEGMENTS_PER_STREAM = 1000
# The recorder's audio (recorder_session.js AUDIO_BITS_PER_SECOND), the headroom over the highest
# bitrate it can be set to, and a fixed allowance (container headers, a short exam's first chunks).
AUDIO_KBPS = 32
QUOTA_HEADROOM = 3
QUOTA_SLACK_BYTES = 1024 * 1024
# Client times further than this from the server's clock are not believed.
MAX_CLOCK_SKEW = timedelta(days=1)
_SHA256_HEX = re.compile(r"[0-9a-f]{64}")
_MIME = re.compile(r"(video|audio)/[\w.+-]+(;[\w\s=,.+\"-]*)?", re.ASCII)


def stream_quota_bytes(recorded_s: float, video_kbps: int) -> int:
    """The most bytes one stream of an attempt may store: what `recorded_s` seconds at the highest
    video bitrate plus audio make, with headroom, plus the fixed allowance."""
    return int(max(0.0, recorded_s) * (video_kbps + AUDIO_KBPS) * 1000 / 8 * QUOTA_HEADROOM) + QUOTA_SLACK_BYTES


def parse_index(text: str, name: str, maximum: int) -> int:
    """A path number (segment, seq, attempt): plain decimal digits within range, else 400."""
    if not text.isascii() or not text.isdigit() or len(text) > 12 or int(text) > maximum:
        raise IngestError(400, f"bad_{name}", f"The {name} must be a number from 0 to {maximum}.")
    return int(text)


def parse_client_ms(text: str | None, name: str, now: datetime | None = None) -> datetime:
    """An epoch-milliseconds time on the server-corrected client clock, believable or 400."""
    now = now or utcnow()
    try:
        value = datetime.fromtimestamp(int(text) / 1000, tz=timezone.utc)
    except (TypeError, ValueError, OverflowError, OSError):
        raise IngestError(400, f"bad_{name}", f"{name} must be epoch milliseconds.") from None
    if abs(value - now) > MAX_CLOCK_SKEW:
        raise IngestError(400, f"bad_{name}", f"{name} is too far from the server's clock.")
    return value


def check_sha256(claimed: str | None, body: bytes) -> str:
    claimed = (claimed or "").strip().lower()
    if not _SHA256_HEX.fullmatch(claimed):
        raise IngestError(400, "bad_sha256", "X-Content-SHA256 must be 64 hex digits.")
    actual = hashlib.sha256(body).hexdigest()
    if actual != claimed:
        raise IngestError(400, "sha256_mismatch",
                          "The body does not match its SHA-256: it was damaged on the way.")
    return actual



@dataclass(frozen=True)
class ChunkUpload:
    attempt_id: int
    stream: str
    segment: int
    seq: int
    body: bytes
    sha256: str | None
    start_ms: str | None
    end_ms: str | None
    mime_type: str | None
    meta: str | None  # JSON: {"questions_viewed": [ids], "questions_answered": [ids]}


@dataclass(frozen=True)
class ChunkAck:
    status: str  # "stored" or "already_stored"
    stream: str
    segment: int
    seq: int
    # What the server holds of the segment: 0..contiguous_seq all stored (-1: not even seq 0).
    contiguous_seq: int
    chunk_count: int

    def as_json(self) -> dict:
        return {"status": self.status, "stream": self.stream, "segment": self.segment,
                "seq": self.seq, "contiguous_seq": self.contiguous_seq, "chunk_count": self.chunk_count}


def _parse_meta(text: str | None) -> dict:
    if not text:
        return {}
    if len(text) > MAX_META_BYTES:
        raise IngestError(400, "bad_meta", f"Chunk metadata is limited to {MAX_META_BYTES} bytes.")
    try:
        meta = json.loads(text)
    except ValueError:
        raise IngestError(400, "bad_meta", "Chunk metadata must be JSON.") from None
    if not isinstance(meta, dict):
        raise IngestError(400, "bad_meta", "Chunk metadata must be a JSON object.")
    clean = {}
    for key in ("questions_viewed", "questions_answered"):
        ids = meta.get(key, [])
        if not isinstance(ids, list) or not all(isinstance(i, int) and not isinstance(i, bool)
                                                for i in ids):
            raise IngestError(400, "bad_meta", f"{key} must be a list of question ids.")
        clean[key] = sorted(set(ids))
    return clean


def check_chunk(upload: ChunkUpload, now: datetime, max_bytes: int) -> tuple[str, datetime, datetime, str, dict]:
    """(sha256, start, end, mime type, metadata) of a well-formed chunk; raises IngestError."""
    if upload.stream not in StreamKind.__members__:
        raise IngestError(400, "bad_stream", "The stream must be camera or screen.")
    if not 0 <= upload.segment <= MAX_SEGMENT:
        raise IngestError(400, "bad_segment", f"The segment must be from 0 to {MAX_SEGMENT}.")
    if not 0 <= upload.seq <= MAX_SEQ:
        raise IngestError(400, "bad_seq", f"The seq must be from 0 to {MAX_SEQ}.")
    if not upload.body:
        raise IngestError(400, "empty_body", "A chunk has at least one byte.")
    if len(upload.body) > max_bytes:
        raise IngestError(413, "too_large", "The chunk is larger than the configured limit.")
    mime = (upload.mime_type or "").strip()
    if len(mime) > 100 or not _MIME.fullmatch(mime):
        raise IngestError(400, "bad_mime_type", "Content-Type must be the recording's video or audio type.")
    start = parse_client_ms(upload.start_ms, "start_ms", now)
    end = parse_client_ms(upload.end_ms, "end_ms", now)
    if end < start:
        raise IngestError(400, "bad_end_ms", "A chunk cannot end before it starts.")
    return check_sha256(upload.sha256, upload.body), start, end, mime, _parse_meta(upload.meta)

