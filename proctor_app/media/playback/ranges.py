"""Serving stored media over HTTP with byte ranges (RFC 9110, section 14): seeking in a <video>
element needs them. Plain Python: the HTTP route turns a ServePlan into a response."""

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO


CONTENT_TYPES = {
    ".mp4": "video/mp4",
    ".m4s": "video/iso.segment",  # an HLS fMP4 segment
    ".webm": "video/webm",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".png": "image/png",
    ".webp": "image/webp",
}
READ_BLOCK = 256 * 1024
_RANGE_SPEC = re.compile(r"(\d*)-(\d*)", re.ASCII)


def content_type(path: str | Path) -> str:
    return CONTENT_TYPES.get(Path(path).suffix.lower(), "application/octet-stream")


class RangeNotSatisfiable(ValueError):
    """A Range header that is malformed or lies wholly past the end of the file."""


@dataclass(frozen=True)
class ByteRange:
    start: int
    end: int  # inclusive, as in Content-Range

    @property
    def length(self) -> int:
        return self.end - self.start + 1


def parse_range(header: str | None, size: int) -> ByteRange | None:
    """The one byte range asked for, or None to send the whole file.

    Units other than bytes and requests for several ranges are answered with the whole file,
    which RFC 9110 allows; malformed or unsatisfiable byte ranges raise RangeNotSatisfiable.
    """
    if header is None:
        return None
    unit, sep, specs = header.partition("=")
    if not sep:
        raise RangeNotSatisfiable(header)
    if unit.strip().lower() != "bytes":
        return None
    ranges = [_one_range(spec.strip(), size) for spec in specs.split(",")]
    return ranges[0] if len(ranges) == 1 else None


def _one_range(spec: str, size: int) -> ByteRange:
    match = _RANGE_SPEC.fullmatch(spec)
    if match is None or match.group(1) == match.group(2) == "":
        raise RangeNotSatisfiable(spec)
    first, last = match.groups()
    if first == "":  # suffix range: the last N bytes
        suffix = int(last)
        if suffix == 0 or size == 0:
            raise RangeNotSatisfiable(spec)
        return ByteRange(max(0, size - suffix), size - 1)
    start = int(first)
    end = size - 1 if last == "" else int(last)
    if end < start or start >= size:
        raise RangeNotSatisfiable(spec)
    return ByteRange(start, min(end, size - 1))


class FileBody:
    """`length` bytes of an open file from `start`, in blocks; closes the file when done or closed."""

    def __init__(self, handle: BinaryIO, start: int, length: int):
        self._handle, self._left = handle, length
        handle.seek(start)

    def __iter__(self) -> Iterator[bytes]:
        return self

    def __next__(self) -> bytes:
        block = self._handle.read(min(READ_BLOCK, self._left)) if self._left > 0 else b""
        if not block:
            self.close()
            raise StopIteration
        self._left -= len(block)
        return block

    def close(self) -> None:
        self._handle.close()


@dataclass
class ServePlan:
    status: int  # 200, 206 or 416
    headers: dict[str, str]
    body: FileBody | None = None


def serve_file(path: Path, range_header: str | None = None, if_range: str | None = None,
               length: int | None = None) -> ServePlan:
    """Status, headers and body for a GET of `path` (of its first `length` bytes: a file being
    appended to, whose whole part ends there). Raises FileNotFoundError when it is gone.

    The file is opened before its size is read, so a file replaced or deleted meanwhile is
    still served whole and consistent from the open handle.
    """
    handle = open(path, "rb")
    try:
        stat = os.fstat(handle.fileno())
        size = stat.st_size if length is None else min(stat.st_size, length)
        etag = f'"{size:x}-{stat.st_mtime_ns:x}"'
        headers = {"Accept-Ranges": "bytes", "ETag": etag, "Content-Type": content_type(path)}
        # If-Range with another version's tag (or a date): the client's bytes are stale, send all.
        if if_range is not None and if_range.strip() != etag:
            range_header = None
        try:
            wanted = parse_range(range_header, size)
        except RangeNotSatisfiable:
            handle.close()
            return ServePlan(416, {"Accept-Ranges": "bytes", "Content-Range": f"bytes */{size}",
                                   "Content-Length": "0"})
        if wanted is None:
            headers["Content-Length"] = str(size)
            return ServePlan(200, headers, FileBody(handle, 0, size))
        headers["Content-Range"] = f"bytes {wanted.start}-{wanted.end}/{size}"
        headers["Content-Length"] = str(wanted.length)
        return ServePlan(206, headers, FileBody(handle, wanted.start, wanted.length))
    except BaseException:
        handle.close()
        raise
