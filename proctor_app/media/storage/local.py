"""The local storage folder, and how files get there without ever being half-written."""

import contextlib
import errno
import hashlib
import itertools
import mmap
import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

from proctor_app import platform
from proctor_app.config import config
from proctor_app.platform import O_DIRECT, Folder


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


def _create(name: str, folder: Folder, size: int) -> tuple[int, bool]:
    """The new temp file's descriptor, and whether it writes around the page cache."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
    if O_DIRECT and size >= DIRECT_MIN_BYTES and not (_direct_refused and folder.device() in _direct_refused):
        try:
            return folder.open(name, flags | O_DIRECT), True
        except OSError as exc:
            if exc.errno != errno.EINVAL:
                raise
            _direct_refused.add(folder.device())
    return folder.open(name, flags), False


def write_file_durably(path: Path, data: bytes) -> Path:
    """Temp file in the target folder, fsync, rename over the target, fsync the folder.

    Plain os calls on the folder's descriptor, as few as it takes: hundreds of chunks a second
    pass through here, and every system call hands the GIL to another thread and back.
    """
    tmp = f".{path.name}.{os.getpid()}-{next(_temp_numbers)}.tmp"
    folder = Folder(path.parent)
    try:
        fd, direct = _create(tmp, folder, len(data))
        try:
            try:
                if direct:
                    _write_direct(fd, data)
                else:
                    _write_all(fd, memoryview(data))
                os.fsync(fd)
            finally:
                os.close(fd)
            folder.replace(tmp, path.name)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                folder.unlink(tmp)
            raise
        folder.sync()
    finally:
        folder.close()
    return path


class LocalStorage:
    """A folder on this machine (by default the configured one, looked up when used)."""

    def __init__(self, root: Callable[[], Path] = lambda: config.storage_dir):
        self._root = root

    def root(self) -> Path:
        return self._root()

    def absolute(self, relative: str) -> Path:
        """The file behind a stored relative path; refuses anything that would leave the folder.

        Checked by its text: the folder holds only what the server wrote (no links), and resolving
        each part would cost a system call per folder level on every chunk.
        """
        if not relative or relative.startswith("/") or any(
                part in ("", ".", "..") for part in relative.split("/")):
            raise ValueError(f"path outside storage: {relative!r}")
        return self._root() / relative

    def write_durably(self, relative: str, data: bytes) -> Path:
        return write_file_durably(self.absolute(relative), data)

    def locked_folder(self, folder: str | Path) -> contextlib.AbstractContextManager[None]:
        """Held by one writer at a time, across threads and processes (an flock on the folder)."""
        return platform.locked_folder(folder)

    def files_under(self, folder: str) -> Iterator[tuple[str, int]]:
        """(relative path, bytes) of every file below a stored folder; links are not followed."""
        try:
            entries = list(os.scandir(self.absolute(folder) if folder else self._root()))
        except (FileNotFoundError, NotADirectoryError):
            return
        for entry in entries:
            relative = f"{folder}/{entry.name}" if folder else entry.name
            try:
                if entry.is_dir(follow_symlinks=False):
                    yield from self.files_under(relative)
                else:
                    yield relative, entry.stat(follow_symlinks=False).st_size
            except FileNotFoundError:
                continue

    def delete_file(self, path: str | Path) -> int | None:
        try:
            size = os.lstat(path).st_size
            os.unlink(path)
        except FileNotFoundError:
            return None
        return size

    def delete_folder(self, top: str | Path) -> Iterator[int]:
        """Symbolic links are deleted, not what they point to. A folder already gone yields nothing."""
        try:
            entries = list(os.scandir(top))
        except FileNotFoundError:
            return
        for entry in entries:
            if entry.is_dir(follow_symlinks=False):
                yield from self.delete_folder(entry.path)
            elif (size := self.delete_file(entry.path)) is not None:
                yield size
        os.rmdir(top)


def file_sha256(path: Path) -> str:
    """The SHA-256 of a file's bytes, hex; raises OSError when it cannot be read."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()
