"""Durable writes into the storage folder: exact bytes on disk, whatever the size and file system."""

import dataclasses
import errno
import os
import random
from pathlib import Path

import pytest

from proctor_app.media.storage import local, storage

SIZES = [1, 4095, 4096, local.DIRECT_MIN_BYTES - 1, local.DIRECT_MIN_BYTES, 237_000, 300_001,
         local.DIRECT_PIECE_BYTES, 3 * local.DIRECT_PIECE_BYTES + 5]


def _storage_in(folder: Path, monkeypatch) -> None:
    monkeypatch.setattr(local, "config", dataclasses.replace(local.config, storage_dir=folder))


def _written_back(relative: str, data: bytes) -> bytes:
    path = storage.write_durably(relative, data)
    assert path == storage.absolute(relative)
    assert not [name for name in os.listdir(path.parent) if name.endswith(".tmp")]
    return path.read_bytes()


@pytest.mark.parametrize("size", SIZES)
def test_write_durably_stores_exactly_the_bytes_and_leaves_no_temp_file(tmp_path, monkeypatch, size):
    _storage_in(tmp_path, monkeypatch)
    data = random.randbytes(size)
    assert _written_back(f"raw/2026/11/1/camera/0/{size:08d}", data) == data


def test_a_smaller_body_after_a_larger_one_carries_nothing_of_it(tmp_path, monkeypatch):
    # Large bodies pass through a reused block-aligned buffer on their way around the page cache.
    _storage_in(tmp_path, monkeypatch)
    assert _written_back("raw/big", b"\xee" * (2 * local.DIRECT_PIECE_BYTES + 1)) == \
        b"\xee" * (2 * local.DIRECT_PIECE_BYTES + 1)
    assert _written_back("raw/a", b"\xaa" * 300_001) == b"\xaa" * 300_001
    assert _written_back("raw/b", b"\x55" * 70_001) == b"\x55" * 70_001
    assert _written_back("raw/a", b"\x11" * 65_536) == b"\x11" * 65_536  # replaced whole


def test_a_file_system_that_refuses_direct_io_gets_the_same_bytes(tmp_path, monkeypatch):
    # No file system at hand here refuses O_DIRECT (tmpfs takes it since Linux 6.6), so the refusal
    # such a one gives (EINVAL at open) is injected.
    _storage_in(tmp_path, monkeypatch)
    monkeypatch.setattr(local, "_direct_refused", set())
    real_open, direct_opens = os.open, []

    def open_refusing_direct_io(path, flags, *args, **kwargs):
        if flags & os.O_DIRECT:
            direct_opens.append(path)
            raise OSError(errno.EINVAL, "Invalid argument")
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", open_refusing_direct_io)
    for size in SIZES:
        data = random.randbytes(size)
        assert _written_back(f"raw/{size}", data) == data
    assert len(direct_opens) == 1  # asked once per file system, then written through the cache
