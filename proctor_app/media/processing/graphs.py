"""The ffmpeg graphs (built with ffmpeg-python) that turn a recording's segments into one MP4:
a stream copy of one clean segment, or every segment placed on a black canvas as long as the exam
and encoded with libx264 + AAC."""

from pathlib import Path

import ffmpeg

from proctor_app.media.processing.formats import pinned_input_options
from proctor_app.media.processing.timeline import CAUSE_NOT_UPLOADED, Gap, Probe, Source

GOP_S = 2
X264_PRESET = "veryfast"
# The cheapest motion search on top: measured on the benchmark's webcam-like clip, 30% less CPU
# than plain veryfast for 6% more bytes (superfast: 25% less CPU, 85% more bytes).
X264_PARAMS = "me=dia:subme=1"
X264_CRF = 26
AAC_BITRATE = "64k"


def _concat_input(src: Source, work: Path):
    """A segment's usable chunk files as one ffmpeg input (concatf: no joined copy on disk), read
    by the demuxer of its declared type, opening files only (formats.py)."""
    listing = work / f"segment-{src.number}.txt"
    listing.write_text("".join(f"{path}\n" for path in src.files))
    return ffmpeg.input(f"concatf:{listing}", **pinned_input_options(src.mime))


def copy_graph(src: Source, work: Path, out: Path):
    # ffmpeg's default selection: the video and, if there is one, the audio track.
    return _concat_input(src, work).output(str(out), c="copy", movflags="+faststart", f="mp4")


def _even(n: float) -> int:
    return max(2, int(round(n / 2)) * 2)


def timeline_graph(sources: list[Source], gaps: list[Gap], total_s: float, work: Path, out: Path):
    """Segments overlaid on black at their exam times; gaps black and silent; libx264 + AAC."""
    with_video = [s for s in sources if s.probe.video_codec]
    first = with_video[0].probe if with_video else Probe(width=640, height=480, fps=15)
    w, h = _even(first.width), _even(first.height)
    fps = min(60, max(1, round(first.fps or 15)))
    channels = min(2, max((s.probe.channels for s in sources), default=0))
    layout = "stereo" if channels == 2 else "mono"
    video = ffmpeg.input(f"color=c=black:s={w}x{h}:r={fps}:d={total_s:.3f}", f="lavfi")
    video = video.filter("format", "yuv420p")
    audio_parts = []
    ordered = sorted(sources, key=lambda s: s.start_s)
    for i, src in enumerate(ordered):
        # A segment keeps the exam time up to where the next one starts (clocks may overlap).
        lo = max(0.0, src.start_s)
        hi = min(total_s, ordered[i + 1].start_s if i + 1 < len(ordered) else total_s)
        if hi <= lo:
            continue
        inp = _concat_input(src, work)
        if src.probe.video_codec:
            part = (inp["v:0"].filter("setpts", f"PTS+{src.offset_s:.6f}/TB")
                    .filter("trim", start=f"{lo:.6f}", end=f"{hi:.6f}")
                    .filter("scale", w, h, force_original_aspect_ratio="decrease")
                    .filter("pad", w, h, "(ow-iw)/2", "(oh-ih)/2")
                    .filter("setsar", 1).filter("format", "yuv420p"))
            video = ffmpeg.filter([video, part], "overlay", eof_action="pass", repeatlast=0)
        if channels and src.probe.audio_codec:
            audio_parts.append(
                inp["a:0"].filter("asetpts", f"PTS+{src.offset_s:.6f}/TB")
                .filter("atrim", start=f"{lo:.6f}", end=f"{hi:.6f}")
                # Pads silence from 0 and over holes, so amix adds every part at its exam time.
                .filter("aresample", 48000, **{"async": 1, "first_pts": 0})
                .filter("aformat", sample_fmts="fltp", channel_layouts=layout))
    for gap in gaps:
        # Over a hole inside a segment the overlay holds the last frame: cover it with black.
        if gap.cause != CAUSE_NOT_UPLOADED:
            black = ffmpeg.input(f"color=c=black:s={w}x{h}:r={fps}:d={gap.end_s - gap.start_s:.3f}",
                                 f="lavfi").filter("setpts", f"PTS+{gap.start_s:.6f}/TB")
            video = ffmpeg.filter([video, black], "overlay", eof_action="pass", repeatlast=0)
    outputs = [video]
    if audio_parts:
        audio = (audio_parts[0] if len(audio_parts) == 1 else
                 ffmpeg.filter(audio_parts, "amix", inputs=len(audio_parts), duration="longest",
                               normalize=0))
        outputs.append(audio.filter("apad", whole_dur=f"{total_s:.6f}")
                       .filter("atrim", end=f"{total_s:.6f}"))
    return ffmpeg.output(*outputs, str(out), f="mp4", t=f"{total_s:.6f}", movflags="+faststart",
                         vcodec="libx264", preset=X264_PRESET, crf=X264_CRF, pix_fmt="yuv420p",
                         **{"x264-params": X264_PARAMS},
                         force_key_frames=f"expr:gte(t,n_forced*{GOP_S})",
                         acodec="aac", audio_bitrate=AAC_BITRATE)

