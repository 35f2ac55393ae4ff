"""The storage path layout, the one place that knows it: ingest writes by it, processing and
retention find an attempt's files by it.

<kind>/<YYYY>/<MM>/<attempt id>/..., the month being the attempt's start:
raw/.../<stream>/<segment>/<seq>, processed/.../<stream>.mp4 (and posters, sprites, previews),
processed/.../<stream>_hls/ (the HLS ladder: master.m3u8, <height>p.m3u8, <height>p_init.mp4,
<height>p_<n>.m4s), snapshots/.../<seq>.jpg.
"""

import re
from datetime import datetime

_ATTEMPT_FILE = re.compile(r"(?:raw|processed|snapshots)/(\d{4})/(\d{2})/(\d+)/", re.ASCII)


def attempt_raw_dir(attempt_id: int, started: datetime) -> str:
    return f"raw/{started:%Y/%m}/{attempt_id}"


def raw_chunk_path(attempt_id: int, started: datetime, stream: str, segment: int, seq: int) -> str:
    """raw/YYYY/MM/<attempt>/<stream>/<segment>/<seq>, seq padded to 8 digits."""
    return f"{attempt_raw_dir(attempt_id, started)}/{stream}/{segment}/{seq:08d}"


def processed_dir(attempt_id: int, started: datetime) -> str:
    return f"processed/{started:%Y/%m}/{attempt_id}"


def hls_dir(processed: str, stream: str) -> str:
    """The HLS ladder's folder of a stream, in its attempt's processed folder (`processed_dir`)."""
    return f"{processed}/{stream}_hls"


HLS_MASTER = "master.m3u8"
# Every name in an HLS folder: the master, and per rendition its playlist, init and segments.
HLS_FILE_NAME = re.compile(r"master\.m3u8|\d{2,4}p(?:\.m3u8|_init\.mp4|_\d{5,}\.m4s)", re.ASCII)


def rendition_files(name: str) -> tuple[str, str, str]:
    """(playlist, init segment, ffmpeg's segment pattern) of the rendition `name` ("480p")."""
    return f"{name}.m3u8", f"{name}_init.mp4", f"{name}_%05d.m4s"


def snapshot_dir(attempt_id: int, started: datetime) -> str:
    return f"snapshots/{started:%Y/%m}/{attempt_id}"


def snapshot_path(attempt_id: int, started: datetime, seq: int) -> str:
    return f"{snapshot_dir(attempt_id, started)}/{seq:08d}.jpg"


def attempt_folders(attempt_id: int, started: datetime | None) -> list[str]:
    """Every folder that holds files of the attempt (none before it started)."""
    if started is None:
        return []
    return [attempt_raw_dir(attempt_id, started), processed_dir(attempt_id, started),
            snapshot_dir(attempt_id, started)]


def attempt_of_path(relative: str) -> tuple[str, int] | None:
    """("YYYY-MM", attempt id) of a path in an attempt's folders, else None."""
    match = _ATTEMPT_FILE.match(relative)
    return (f"{match[1]}-{match[2]}", int(match[3])) if match else None
