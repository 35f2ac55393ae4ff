"""Poster and thumbnail sprite of a playable recording, made after the MP4 so they never delay it."""

import math
import os
from pathlib import Path

import ffmpeg

from proctor_app.db import SessionFactory
from proctor_app.media.processing.ffmpeg import run_ffmpeg
from proctor_app.media.storage import storage
from proctor_app.models import Recording

# The review page's sprite: one row of thumbnails, SPRITE_WIDTH px wide, one every N seconds;
# a JPEG is at most 65535 px wide, so long videos get a longer interval.
SPRITE_WIDTH = 160
SPRITE_MIN_INTERVAL_S = 5
SPRITE_MAX_TILES = 400
POSTER_AT_S = 1.0
# JPEG is full-range YUV; ffmpeg's JPEG encoder refuses a browser's limited-range frames as they are.
JPEG_PIX_FMT = "yuvj420p"


def sprite_interval(duration_s: float) -> int:
    return max(SPRITE_MIN_INTERVAL_S, math.ceil(duration_s / SPRITE_MAX_TILES))


def sprite_name(stream: str, interval_s: int) -> str:
    """The name the review page reads the layout from (services/review.py sprite_layout)."""
    return f"{stream}_sprite_{interval_s}s_{SPRITE_WIDTH}w.jpg"


async def make_poster(mp4: Path, out: Path, duration_s: float) -> None:
    tmp = out.with_name(f".{out.name}.tmp.jpg")
    at = min(POSTER_AT_S, duration_s / 2)
    await run_ffmpeg(ffmpeg.input(str(mp4), ss=f"{at:.3f}")
                     .filter("scale", "iw", "ih", out_range="full").filter("format", JPEG_PIX_FMT)
                     .output(str(tmp), vframes=1, **{"q:v": 4}), 0)
    os.replace(tmp, out)


async def make_sprite(mp4: Path, out: Path, duration_s: float, interval_s: int) -> None:
    """One row of keyframe thumbnails (outputs have a keyframe every few seconds)."""
    tiles = max(1, math.ceil(duration_s / interval_s))
    tmp = out.with_name(f".{out.name}.tmp.jpg")
    graph = (ffmpeg.input(str(mp4), skip_frame="nokey")
             # fps emits nothing for a lone keyframe at EOF: pad with clones of the last one.
             .filter("tpad", stop_mode="clone", stop_duration=f"{duration_s:.3f}")
             .filter("fps", f"1/{interval_s}")
             .filter("scale", SPRITE_WIDTH, -2, out_range="full").filter("format", JPEG_PIX_FMT)
             .filter("tile", f"{tiles}x1")
             .output(str(tmp), vframes=1, an=None, **{"q:v": 5}))
    await run_ffmpeg(graph, 0)
    os.replace(tmp, out)



async def make_thumbnails(db_scope: SessionFactory, recording_id: int) -> None:
    """Poster and sprite of a playable recording; its row gets their paths."""
    with db_scope() as db:
        rec = db.get(Recording, recording_id)
        if rec is None or not rec.mp4_path or not rec.duration_s:
            return
        mp4, duration, stream = storage.absolute(rec.mp4_path), rec.duration_s, rec.stream
        folder = rec.mp4_path.rsplit("/", 1)[0]
    interval = sprite_interval(duration)
    poster_rel = f"{folder}/{stream}_poster.jpg"
    sprite_rel = f"{folder}/{sprite_name(stream, interval)}"
    await make_poster(mp4, storage.absolute(poster_rel), duration)
    await make_sprite(mp4, storage.absolute(sprite_rel), duration, interval)
    # A rerun with another duration names its sprite differently: keep only the current one.
    for old in storage.absolute(folder).glob(f"{stream}_sprite_*"):
        if old.name != Path(sprite_rel).name:
            old.unlink(missing_ok=True)
    with db_scope() as db:
        rec = db.get(Recording, recording_id)
        rec.poster_path, rec.sprite_path = poster_rel, sprite_rel
        db.add(rec)

