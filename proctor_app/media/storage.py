"""Where media lives on disk, and how it gets there without ever being half-written.

All paths kept in the database are relative to the storage folder, and generated here only.
"""

import os
import secrets
from datetime import datetime
from pathlib import Path

from proctor_app.config import config


def storage_root() -> Path:
    return config.storage_dir


def absolute(relative: str) -> Path:
    """The file behind a stored relative path; refuses anything that would leave the storage folder."""
    root = storage_root().resolve()
    path = (root / relative).resolve()
    if root not in path.parents:
        raise ValueError(f"path outside storage: {relative!r}")
    return path


def attempt_raw_dir(attempt_id: int, started: datetime) -> str:
    return f"raw/{started:%Y/%m}/{attempt_id}"


def raw_chunk_path(attempt_id: int, started: datetime, stream: str, segment: int, seq: int) -> str:
    """raw/YYYY/MM/<attempt>/<stream>/<segment>/<seq>, the month being the attempt's start."""
    return f"{attempt_raw_dir(attempt_id, started)}/{stream}/{segment}/{seq:08d}"


def processed_dir(attempt_id: int, started: datetime) -> str:
    return f"processed/{started:%Y/%m}/{attempt_id}"


def snapshot_path(attempt_id: int, started: datetime, seq: int) -> str:
    return f"snapshots/{started:%Y/%m}/{attempt_id}/{seq:08d}.jpg"


def write_durably(relative: str, data: bytes) -> Path:
    """Temp file in the target folder, fsync, rename over the target, fsync the folder."""
    path = absolute(relative)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o640)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    return path
