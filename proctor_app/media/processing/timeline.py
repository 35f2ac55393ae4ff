"""A recording's segments on the exam's timeline: what covers which time, where the gaps are and
why, and whether one segment can be copied as it is. Pure functions over what probing found.

Exam time t is seconds since the attempt started; a segment's media time 0 sits at its offset_s.
"""

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from proctor_app.media.jobs.errors import PermanentError

# Holes up to this long are not filled (nor counted as gaps); the "longer than a second".
FILL_MIN_S = 1.0
# A copied video must stay seekable: a browser decodes from the keyframe before a seek target.
MAX_KEYFRAME_GAP_S = 10.0
COPY_AUDIO = {"opus", "aac"}

CAUSE_NOT_UPLOADED = "nothing uploaded for this time (offline, reload or recorder stopped)"
CAUSE_MISSING = "chunks missing"
CAUSE_DAMAGED = "chunks damaged on disk"
CAUSE_UNDECODABLE = "undecodable data"
CAUSE_NO_HEADER = "segment start missing: the rest of the segment cannot be decoded"
CAUSE_NO_MEDIA = "no media received"


class FinalizeError(PermanentError):
    """Processing that cannot succeed by trying again (the message says why)."""



@dataclass
class Gap:
    start_s: float
    end_s: float
    cause: str

    def as_json(self) -> dict:
        return {"start_s": round(self.start_s, 3), "end_s": round(self.end_s, 3), "cause": self.cause}


@dataclass
class Probe:
    """What demuxing a segment (no decoding) tells: streams, media time span, holes, keyframes."""

    video_codec: str = ""
    width: int = 0
    height: int = 0
    fps: float = 0.0
    audio_codec: str = ""
    channels: int = 0
    start_s: float = 0.0
    end_s: float = 0.0
    holes: list[tuple[float, float]] = field(default_factory=list)
    max_keyframe_gap_s: float = 0.0


@dataclass
class Source:
    """One segment's bytes and where they sit on the exam's timeline."""

    number: int
    offset_s: float  # exam time of the segment's media time 0
    wall_end_s: float  # exam time of its last chunk's end, as the browser reported it
    mime: str
    files: list[Path]  # in seq order; check_chunks drops those not matching their SHA-256
    sha256: list[str]
    missing: bool  # seqs absent below the highest one stored
    damaged: bool = False
    probe: Probe | None = None

    @property
    def start_s(self) -> float:
        return self.offset_s + self.probe.start_s

    @property
    def end_s(self) -> float:
        return self.offset_s + self.probe.end_s

    @property
    def hole_cause(self) -> str:
        """Why a hole inside this segment is there."""
        if self.damaged:
            return CAUSE_DAMAGED
        return CAUSE_MISSING if self.missing else CAUSE_UNDECODABLE



def seconds_between(moment: datetime, origin: datetime) -> float:
    return (moment - origin).total_seconds()


def plan_gaps(sources: list[Source], total_s: float) -> list[Gap]:
    """Every stretch of the exam longer than FILL_MIN_S that no usable media covers, with cause."""
    gaps, covered_to = [], 0.0
    for src in sorted(sources, key=lambda s: s.start_s):
        if src.start_s - covered_to > FILL_MIN_S:
            gaps.append(Gap(covered_to, min(src.start_s, total_s), CAUSE_NOT_UPLOADED))
        for a, b in src.probe.holes:
            gaps.append(Gap(max(0.0, src.offset_s + a), min(total_s, src.offset_s + b), src.hole_cause))
        covered_to = max(covered_to, src.end_s)
    if total_s - covered_to > FILL_MIN_S:
        gaps.append(Gap(covered_to, total_s, CAUSE_NOT_UPLOADED))
    return [g for g in gaps if g.end_s > g.start_s]


def may_copy(sources: list[Source], total_s: float) -> bool:
    """What the rows tell before any byte is read: worth starting a copy while checking."""
    if len(sources) != 1:
        return False
    src = sources[0]
    return (not src.missing and ("avc1" in src.mime or "h264" in src.mime)
            and abs(src.offset_s) <= FILL_MIN_S and abs(total_s - src.wall_end_s) <= 2 * FILL_MIN_S)


def copyable(sources: list[Source], total_s: float) -> bool:
    """One clean, seekable H.264 segment that already spans the exam: no re-encoding needed."""
    if len(sources) != 1:
        return False
    src = sources[0]
    p = src.probe
    return (p.video_codec == "h264" and not src.missing and not src.damaged and not p.holes
            and (not p.audio_codec or p.audio_codec in COPY_AUDIO)
            and p.max_keyframe_gap_s <= MAX_KEYFRAME_GAP_S
            and abs(src.start_s) <= FILL_MIN_S and abs(total_s - src.end_s) <= FILL_MIN_S)



def blame_lost(gaps: list[Gap], lost: list[Gap]) -> list[Gap]:
    """Time where a segment was recorded but cannot be read is that segment's fault."""
    for gap in gaps:
        for dead in lost:
            if gap.cause == CAUSE_NOT_UPLOADED and dead.start_s < gap.end_s and dead.end_s > gap.start_s:
                gap.cause = dead.cause
    return gaps

