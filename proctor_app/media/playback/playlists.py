"""HLS playlists as text (RFC 8216): read a media playlist's segments, write a master playlist,
and rewrite every URI in one (to signed links). Pure: no files, no HTTP."""

import re
from collections.abc import Callable
from dataclasses import dataclass

_MAP_URI = re.compile(r'(#EXT-X-MAP:.*?URI=")([^"]*)(")')


class PlaylistError(ValueError):
    """Text that is not the HLS playlist it should be."""


@dataclass(frozen=True)
class MediaPlaylist:
    init_uri: str
    segments: list[tuple[float, str]]  # (duration in seconds, URI) in order
    target_duration_s: int

    @property
    def duration_s(self) -> float:
        return sum(d for d, _ in self.segments)


@dataclass(frozen=True)
class Variant:
    uri: str
    bandwidth: int  # peak bits per second
    average_bandwidth: int
    width: int
    height: int
    codecs: str
    frame_rate: float


def parse_media_playlist(text: str) -> MediaPlaylist:
    """A VOD media playlist with an init segment (fMP4): raises PlaylistError otherwise."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines or lines[0] != "#EXTM3U":
        raise PlaylistError("not an HLS playlist (no #EXTM3U)")
    if "#EXT-X-ENDLIST" not in lines:
        raise PlaylistError("the playlist has no end (#EXT-X-ENDLIST)")
    init, target, segments, duration = "", 0, [], None
    for line in lines[1:]:
        if line.startswith("#EXT-X-TARGETDURATION:"):
            target = int(line.partition(":")[2])
        elif match := _MAP_URI.match(line):
            init = match[2]
        elif line.startswith("#EXTINF:"):
            duration = float(line.partition(":")[2].partition(",")[0])
        elif not line.startswith("#"):
            if duration is None:
                raise PlaylistError(f"segment {line!r} has no #EXTINF")
            segments.append((duration, line))
            duration = None
    if not (init and segments and target):
        raise PlaylistError("the playlist lacks its init segment, its segments or its target duration")
    if any(d > target + 0.5 for d, _ in segments):
        raise PlaylistError("a segment is longer than the target duration")
    return MediaPlaylist(init, segments, target)


def master_playlist(variants: list[Variant]) -> str:
    """A master playlist listing the variants (lowest first, as players expect no order)."""
    lines = ["#EXTM3U", "#EXT-X-VERSION:7", "#EXT-X-INDEPENDENT-SEGMENTS"]
    for v in sorted(variants, key=lambda v: v.height):
        lines.append(f"#EXT-X-STREAM-INF:BANDWIDTH={v.bandwidth},AVERAGE-BANDWIDTH={v.average_bandwidth},"
                     f"RESOLUTION={v.width}x{v.height},FRAME-RATE={v.frame_rate:.3f},"
                     f'CODECS="{v.codecs}"')
        lines.append(v.uri)
    return "\n".join(lines) + "\n"


def variant_uris(text: str) -> list[str]:
    """The URIs a master playlist lists."""
    return [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")]


def rewrite_uris(text: str, link: Callable[[str], str]) -> str:
    """Every URI of a master or media playlist (variants, init segment, segments) as `link(uri)`."""
    out = []
    for line in text.splitlines():
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            out.append(link(stripped))
        else:
            out.append(_MAP_URI.sub(lambda m: f"{m[1]}{link(m[2])}{m[3]}", line))
    return "\n".join(out) + "\n"
