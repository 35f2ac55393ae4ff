"""Where media lives on disk, and how it gets there without ever being half-written.

All paths kept in the database are relative to the storage folder, and generated here only.
"""

import contextlib
import itertools
import os
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


def write_durably(relative: str, data: bytes) -> Path:
    """Temp file in the target folder, fsync, rename over the target, fsync the folder.

    Plain os calls on the folder's descriptor, as few as it takes: hundreds of chunks a second
    pass through here, and every system call hands the GIL to another thread and back.
    """
    path = absolute(relative)
    tmp = f".{path.name}.{os.getpid()}-{next(_temp_numbers)}.tmp"
    folder_fd = open_folder(path.parent)
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o640, dir_fd=folder_fd)
        try:
            try:
                unwritten = memoryview(data)
                while unwritten:
                    unwritten = unwritten[os.write(fd, unwritten):]
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
