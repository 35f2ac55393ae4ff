"""The HLS ladder of a playable MP4, made after it (a job of its own) so it never delays it.

Renditions up to the source's height (never upscaled): the ladder's heights below it, each
encoded with libx264 with a keyframe every 2 s (GOP_S, as the MP4's encode), and the source's own
height on top, by stream copy when its keyframes already fall every 2 s (else encoded too). One
ffmpeg run decodes the MP4 once for all of them; fMP4 segments of 2 s, a media playlist each, then
a master playlist with BANDWIDTH/RESOLUTION/CODECS measured on the segments. Built in a work folder
that replaces the ladder's folder whole, so a reader sees the old ladder or the new one.
"""

import asyncio
import os
import secrets
import shutil
from dataclasses import dataclass
from pathlib import Path

import av
import ffmpeg

from proctor_app.db import SessionFactory
from proctor_app.media.playback.playlists import MediaPlaylist, PlaylistError, Variant, master_playlist, parse_media_playlist
from proctor_app.media.processing.ffmpeg import ProgressFn, run_ffmpeg
from proctor_app.media.processing.graphs import GOP_S, X264_PARAMS, X264_PRESET
from proctor_app.media.processing.mp4 import probe_mp4
from proctor_app.media.storage import storage
from proctor_app.media.storage.layout import HLS_MASTER, hls_dir, rendition_files
from proctor_app.models import Attempt, Recording, RecordingStatus

LADDER_HEIGHTS = (360, 480, 720, 1080)
# Bitrate caps of the encoded renditions (kbit/s); the quality is CRF's below them.
MAXRATE_KBPS = {360: 600, 480: 1000, 720: 2000, 1080: 4000}
HLS_CRF = 26
# A copied top rendition needs keyframes every GOP_S (one frame late at most).
KEYFRAME_SLACK_S = 0.1
DURATION_TOLERANCE_S = 1.0
AUDIO_CODECS = {"aac": "mp4a.40.2", "opus": "opus"}


class HlsError(RuntimeError):
    pass


@dataclass(frozen=True)
class Rendition:
    width: int
    height: int
    copy: bool  # the source's video as it is

    @property
    def name(self) -> str:
        return f"{self.height}p"


def _even(n: float) -> int:
    return max(2, int(round(n / 2)) * 2)


def plan_ladder(width: int, height: int, copy_top: bool) -> list[Rendition]:
    """The ladder's heights below the source's, then the source's own height on top."""
    lower = [Rendition(_even(width * h / height), h, False) for h in LADDER_HEIGHTS if h < height]
    return lower + [Rendition(width, height, copy_top)]


def _maxrate_kbps(height: int) -> int:
    return next((rate for h, rate in sorted(MAXRATE_KBPS.items()) if height <= h), max(MAXRATE_KBPS.values()))


@dataclass(frozen=True)
class Source:
    width: int
    height: int
    fps: float
    duration_s: float
    audio_codec: str  # "" without audio
    keyframes_every_gop: bool
    b_frames: bool


def probe_source(mp4: Path) -> Source:
    tables = probe_mp4(mp4)  # sample tables: keyframe spacing without demuxing
    with av.open(str(mp4)) as container:
        if not container.streams.video:
            raise HlsError(f"{mp4.name} has no video")
        video = container.streams.video[0]
        audio = container.streams.audio[0] if container.streams.audio else None
        duration = container.duration / 1e6 if container.duration else tables.end_s
        return Source(video.codec_context.width, video.codec_context.height, tables.fps, duration,
                      audio.codec_context.name if audio else "",
                      tables.video_codec == "h264" and tables.max_keyframe_gap_s <= GOP_S + KEYFRAME_SLACK_S,
                      bool(video.codec_context.has_b_frames))


def ladder_graph(mp4: Path, work: Path, source: Source, renditions: list[Rendition]):
    """One ffmpeg run: the source decoded once, split to each encoded rendition; the copied one
    and every rendition's audio taken as they are."""
    inp = ffmpeg.input(str(mp4))
    encoded = [r for r in renditions if not r.copy]
    splitter = inp.video.filter_multi_output("split", len(encoded)) if len(encoded) > 1 else None
    scaled = iter([splitter.stream(i) for i in range(len(encoded))] if splitter else [inp.video])
    outputs = []
    for r in renditions:
        playlist, init, pattern = rendition_files(r.name)
        hls = {"f": "hls", "hls_time": GOP_S, "hls_playlist_type": "vod", "hls_segment_type": "fmp4",
               "hls_flags": "independent_segments", "hls_fmp4_init_filename": init,
               "hls_segment_filename": str(work / pattern)}
        if source.audio_codec:
            hls["acodec"] = "copy"
        if r.copy:
            video, codec = inp.video, {"vcodec": "copy"}
        else:
            maxrate = _maxrate_kbps(r.height)
            video = next(scaled).filter("scale", r.width, r.height)
            codec = {"vcodec": "libx264", "preset": X264_PRESET, "crf": HLS_CRF, "pix_fmt": "yuv420p",
                     "x264-params": X264_PARAMS, "maxrate": f"{maxrate}k", "bufsize": f"{2 * maxrate}k",
                     # the same cut points as the MP4's encode, so every rendition's segments align
                     "force_key_frames": f"expr:gte(t,n_forced*{GOP_S})"}
            if not source.b_frames:
                # B-frames delay presentation times by frames: the renditions would start later
                # than a copied top one without them, and a quality switch would jump.
                codec["bf"] = 0
        streams = [video, inp.audio] if source.audio_codec else [video]
        outputs.append(ffmpeg.output(*streams, str(work / playlist), **codec, **hls))
    return ffmpeg.merge_outputs(*outputs)


def _avc1_codec(init: Path) -> str:
    """RFC 6381 codec string of the H.264 in an init segment: from its avcC box."""
    data = init.read_bytes()
    at = data.find(b"avcC")
    if at < 0 or len(data) < at + 8:
        raise HlsError(f"{init.name} holds no H.264 configuration")
    profile, compat, level = data[at + 5], data[at + 6], data[at + 7]
    return f"avc1.{profile:02x}{compat:02x}{level:02x}"


def _variant(work: Path, r: Rendition, source: Source) -> Variant:
    """The rendition's playlist checked against its files, measured for the master playlist."""
    playlist_name, init_name, _ = rendition_files(r.name)
    try:
        playlist: MediaPlaylist = parse_media_playlist((work / playlist_name).read_text())
    except (OSError, PlaylistError) as exc:
        raise HlsError(f"{r.name}: {exc}") from exc
    if playlist.init_uri != init_name:
        raise HlsError(f"{r.name}: init segment {playlist.init_uri!r}")
    if abs(playlist.duration_s - source.duration_s) > DURATION_TOLERANCE_S:
        raise HlsError(f"{r.name}: lasts {playlist.duration_s:.2f} s, the MP4 {source.duration_s:.2f} s")
    rates = [(work / uri).stat().st_size * 8 / max(duration, 0.1) for duration, uri in playlist.segments]
    total_bits = sum((work / uri).stat().st_size * 8 for _, uri in playlist.segments)
    codecs = _avc1_codec(work / init_name)
    if source.audio_codec:
        codecs += f",{AUDIO_CODECS.get(source.audio_codec, source.audio_codec)}"
    return Variant(playlist_name, round(max(rates)), round(total_bits / max(playlist.duration_s, 0.1)),
                   r.width, r.height, codecs, source.fps)


async def make_ladder(mp4: Path, folder: Path, on_progress: ProgressFn | None = None) -> list[Rendition]:
    """The ladder of `mp4` in `folder` (replaced whole); returns its renditions."""
    # A work folder of this run's own: a job handed on as stale may still be running elsewhere.
    work = folder.with_name(f".{folder.name}.work-{secrets.token_hex(4)}")
    work.mkdir(parents=True)
    try:
        source = await asyncio.to_thread(probe_source, mp4)
        renditions = plan_ladder(source.width, source.height, source.keyframes_every_gop)
        await run_ffmpeg(ladder_graph(mp4, work, source, renditions), source.duration_s, on_progress)
        variants = await asyncio.to_thread(lambda: [_variant(work, r, source) for r in renditions])
        (work / HLS_MASTER).write_text(master_playlist(variants))
        shutil.rmtree(folder, ignore_errors=True)
        try:
            os.replace(work, folder)
        except OSError:  # another run of the same MP4 put its ladder there meanwhile: as good
            if not (folder / HLS_MASTER).exists():
                raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return renditions


def _ladder_to_make(db_scope: SessionFactory, recording_id: int) -> tuple[str, str] | None:
    """(MP4, HLS folder) of a playable recording without a ladder, else None."""
    with db_scope() as db:
        rec = db.get(Recording, recording_id)
        attempt = rec and db.get(Attempt, rec.attempt_id)
        if (rec is None or attempt.media_expired_at is not None or rec.hls_path or not rec.mp4_path
                or rec.status not in (RecordingStatus.completed, RecordingStatus.partial)):
            return None
        return rec.mp4_path, hls_dir(rec.mp4_path.rsplit("/", 1)[0], rec.stream)


def _save_ladder(db_scope: SessionFactory, recording_id: int, mp4_path: str, master: str) -> bool:
    with db_scope() as db:
        rec = db.get(Recording, recording_id)
        # Processed again meanwhile (another MP4) or expired: this ladder is not its own.
        if rec is None or rec.mp4_path != mp4_path or rec.status == RecordingStatus.expired:
            return False
        rec.hls_path = master
        db.add(rec)
        return True


async def make_hls(db_scope: SessionFactory, recording_id: int, on_progress: ProgressFn | None = None) -> bool:
    """The ladder of a playable recording that has none; its row then names the master
    playlist. Returns whether one was made."""
    todo = await asyncio.to_thread(_ladder_to_make, db_scope, recording_id)
    if todo is None:
        return False
    mp4_path, folder = todo
    await make_ladder(storage.absolute(mp4_path), storage.absolute(folder), on_progress)
    return await asyncio.to_thread(_save_ladder, db_scope, recording_id, mp4_path, f"{folder}/{HLS_MASTER}")
