"""Where media lives on disk, and how it gets there without ever being half-written.

All paths kept in the database are relative to the storage folder, and generated here only.
"""

import contextlib
import errno
import itertools
import mmap
import os
import threading
from datetime import datetime
from pathlib import Path

from proctor_app.config import config


def storage_root() -> Path:
    return config.storage_dir


def absolute(relative: str) -> Path:
    """The file behind a stored relative path; refuses anything that would leave the storage folder.

    Checked by its text: the storage folder holds only what the server wrote (no links), and
    resolving each part would cost a system call per folder level on every chunk.
    """
    if not relative or relative.startswith("/") or any(
            part in ("", ".", "..") for part in relative.split("/")):
        raise ValueError(f"path outside storage: {relative!r}")
    return storage_root() / relative


def attempt_raw_dir(attempt_id: int, started: datetime) -> str:
    return f"raw/{started:%Y/%m}/{attempt_id}"


def raw_chunk_path(attempt_id: int, started: datetime, stream: str, segment: int, seq: int) -> str:
    """raw/YYYY/MM/<attempt>/<stream>/<segment>/<seq>, the month being the attempt's start."""
    return f"{attempt_raw_dir(attempt_id, started)}/{stream}/{segment}/{seq:08d}"


def processed_dir(attempt_id: int, started: datetime) -> str:
    return f"processed/{started:%Y/%m}/{attempt_id}"


def snapshot_path(attempt_id: int, started: datetime, seq: int) -> str:
    return f"snapshots/{started:%Y/%m}/{attempt_id}/{seq:08d}.jpg"


def open_folder(folder: str | Path) -> int:
    """A descriptor of the folder (to lock it, or fsync what was renamed into it), made if missing."""
    try:
        return os.open(folder, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        os.makedirs(folder, exist_ok=True)
        return os.open(folder, os.O_RDONLY | os.O_CLOEXEC)


_temp_numbers = itertools.count()
# Bodies this large skip the page cache (O_DIRECT): copying a 237 kB chunk into the page cache
# cost more CPU than creating, fsyncing and renaming its file together, and nothing reads a chunk
# again until its recording is processed. Direct I/O wants block-aligned memory and lengths, so
# a body passes through a page-aligned buffer of each thread's, a piece at a time.
DIRECT_MIN_BYTES = 64 * 1024
DIRECT_PIECE_BYTES = 1024 * 1024
_BLOCK = 4096
_aligned = threading.local()
_direct_refused: set[int] = set()  # devices whose file system refuses O_DIRECT (EINVAL)


def _write_all(fd: int, data: memoryview) -> None:
    while data:
        data = data[os.write(fd, data):]


def _write_direct(fd: int, data: bytes) -> None:
    """`data` in whole blocks, the last one padded with zeros, then the padding cut off again."""
    buffer = getattr(_aligned, "buffer", None)
    if buffer is None:
        buffer = _aligned.buffer = mmap.mmap(-1, DIRECT_PIECE_BYTES)
    body = memoryview(data)
    for start in range(0, len(body), DIRECT_PIECE_BYTES):
        piece = body[start:start + DIRECT_PIECE_BYTES]
        blocks = -(-len(piece) // _BLOCK) * _BLOCK
        buffer[:len(piece)] = piece
        buffer[len(piece):blocks] = bytes(blocks - len(piece))
        with memoryview(buffer) as aligned:
            _write_all(fd, aligned[:blocks])
    os.ftruncate(fd, len(data))


def _create(name: str, folder_fd: int, size: int) -> tuple[int, bool]:
    """The new temp file's descriptor, and whether it writes around the page cache."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC
    if size >= DIRECT_MIN_BYTES and not (_direct_refused and os.fstat(folder_fd).st_dev in _direct_refused):
        try:
            return os.open(name, flags | os.O_DIRECT, 0o640, dir_fd=folder_fd), True
        except OSError as exc:
            if exc.errno != errno.EINVAL:
                raise
            _direct_refused.add(os.fstat(folder_fd).st_dev)
    return os.open(name, flags, 0o640, dir_fd=folder_fd), False


def write_durably(relative: str, data: bytes) -> Path:
    """Temp file in the target folder, fsync, rename over the target, fsync the folder.

    Plain os calls on the folder's descriptor, as few as it takes: hundreds of chunks a second
    pass through here, and every system call hands the GIL to another thread and back.
    """
    path = absolute(relative)
    tmp = f".{path.name}.{os.getpid()}-{next(_temp_numbers)}.tmp"
    folder_fd = open_folder(path.parent)
    try:
        fd, direct = _create(tmp, folder_fd, len(data))
        try:
            try:
                if direct:
                    _write_direct(fd, data)
                else:
                    _write_all(fd, memoryview(data))
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, path.name, src_dir_fd=folder_fd, dst_dir_fd=folder_fd)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp, dir_fd=folder_fd)
            raise
        os.fsync(folder_fd)
    finally:
        os.close(folder_fd)
    return path
