"""What the media stages need from a storage backend (the local folder today)."""

from collections.abc import Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Protocol


class Storage(Protocol):
    def root(self) -> Path:
        """The folder every stored relative path starts from."""

    def absolute(self, relative: str) -> Path:
        """The file behind a stored relative path; ValueError for one leaving the storage folder."""

    def write_durably(self, relative: str, data: bytes) -> Path:
        """The bytes on disk before it returns: a crash leaves the old file or the new, whole."""

    def locked_folder(self, folder: str | Path) -> AbstractContextManager[None]:
        """Held by one writer at a time, across threads and processes."""

    def files_under(self, folder: str) -> Iterator[tuple[str, int]]:
        """(relative path, bytes) of every file below a stored folder ("" for all)."""

    def delete_file(self, path: str | Path) -> int | None:
        """Deletes one file: its size, or None when it was already gone."""

    def delete_folder(self, top: str | Path) -> Iterator[int]:
        """Deletes a folder with all in it; yields the size of each file deleted."""
