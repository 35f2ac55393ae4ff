"""The POSIX-only calls the app makes, in one place, each with a portable fallback, so the app
imports and runs where they are missing (Windows). Plain Python: media/ uses it too.

- file locks: `fcntl.flock` on the folder or lock file itself; without fcntl, `filelock` (msvcrt
  on Windows) on a lock file: the path itself, or for a folder one in the temp folder;
- direct I/O (`O_DIRECT`): without it, writes go through the page cache;
- folder descriptors (`dir_fd`): without them, plain paths, and no fsync of a folder after a
  rename (Windows cannot open a folder; NTFS journals its renames);
- ingest processes pass chunks over a Unix socket pair: without one (or without `pass_fds`),
  chunks are stored in the app process;
- live relay processes listen on Unix sockets, each started holding its lock (`lock_for_child`):
  without Unix sockets the relay runs in the app process;
- child processes (ffmpeg) lowered with `preexec_fn` (nice, and die with their parent on
  Linux): on Windows, the below-normal priority class;
- stop signals: `loop.add_signal_handler` where the loop has it, else `signal.signal`;
- uvloop: installed only where it exists (requirements.txt marker), granian falls back to asyncio.
- a pooled database connection's socket checked for input without waiting: `select.poll`, else
  `select.select` (Windows has no poll; its select takes sockets);
- a SHA-256 whose state is saved between steps (`rehashes`, wheels for Linux only): elsewhere a
  growing MP4 is hashed whole at submit (`resumed_sha256` gives None).
"""

import asyncio
import contextlib
import ctypes
import errno
import hashlib
import os
import select
import signal
import socket
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import filelock

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None
try:
    import rehashes
except ImportError:  # no wheel for this system
    rehashes = None

O_DIRECT = getattr(os, "O_DIRECT", 0)  # 0: the system has no direct I/O
# Descriptors the ingest processes and ffmpeg must not inherit; bytes written as they are.
_O_PRIVATE = getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NOINHERIT", 0) | getattr(os, "O_BINARY", 0)
FOLDER_DESCRIPTORS = os.name == "posix" and {os.open, os.replace, os.unlink} <= os.supports_dir_fd
SOCKET_PASSING = os.name == "posix" and hasattr(socket, "AF_UNIX") and hasattr(asyncio, "open_unix_connection")
_PR_SET_PDEATHSIG = 1


def _folder_descriptor(path: str) -> int:
    try:
        return os.open(path, os.O_RDONLY | _O_PRIVATE)
    except FileNotFoundError:
        os.makedirs(path, exist_ok=True)
        return os.open(path, os.O_RDONLY | _O_PRIVATE)


class Folder:
    """A folder (made if missing) to create, rename and delete files in, then fsync: through its
    descriptor where the system has them (the path is looked up once, not at every call), else by
    path. Close it after use."""

    __slots__ = ("path", "fd")

    def __init__(self, path: str | Path):
        self.path = os.fspath(path)
        if FOLDER_DESCRIPTORS:
            self.fd = _folder_descriptor(self.path)
        else:
            self.fd = None
            os.makedirs(self.path, exist_ok=True)

    def open(self, name: str, flags: int, mode: int = 0o640) -> int:
        if self.fd is None:
            return os.open(os.path.join(self.path, name), flags | _O_PRIVATE, mode)
        return os.open(name, flags | _O_PRIVATE, mode, dir_fd=self.fd)

    def replace(self, source: str, target: str) -> None:
        if self.fd is None:
            os.replace(os.path.join(self.path, source), os.path.join(self.path, target))
        else:
            os.replace(source, target, src_dir_fd=self.fd, dst_dir_fd=self.fd)

    def unlink(self, name: str) -> None:
        if self.fd is None:
            os.unlink(os.path.join(self.path, name))
        else:
            os.unlink(name, dir_fd=self.fd)

    def sync(self) -> None:
        """Makes the folder's entries (a rename) durable, where a folder can be fsynced."""
        if self.fd is not None:
            os.fsync(self.fd)

    def device(self) -> int:
        return os.fstat(self.fd).st_dev if self.fd is not None else os.stat(self.path).st_dev

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)


@contextlib.contextmanager
def _filelock(lock_file: str, blocking: bool) -> Iterator[None]:
    lock = filelock.FileLock(lock_file, thread_local=False)
    try:
        lock.acquire(blocking=blocking)
    except filelock.Timeout:
        raise BlockingIOError(errno.EAGAIN, "locked by another holder", lock_file) from None
    try:
        yield
    finally:
        lock.release()


@contextlib.contextmanager
def locked_folder(folder: str | Path) -> Iterator[None]:
    """Held by one holder at a time, across threads and processes (the folder is made if missing)."""
    if fcntl is None:
        os.makedirs(folder, exist_ok=True)
        key = hashlib.sha256(os.path.abspath(folder).encode()).hexdigest()[:32]
        lock_dir = os.path.join(tempfile.gettempdir(), "proctor-locks")
        os.makedirs(lock_dir, exist_ok=True)
        with _filelock(os.path.join(lock_dir, key), blocking=True):
            yield
        return
    fd = _folder_descriptor(os.fspath(folder))
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


@contextlib.contextmanager
def locked_file(path: str | Path, blocking: bool = True) -> Iterator[None]:
    """An exclusive lock on a lock file (made if missing), across threads and processes;
    BlockingIOError at once when `blocking` is false and another holder has it."""
    if fcntl is None:
        # A file of filelock's own: on POSIX without fcntl its lock is the file's existence, and
        # the flock path keeps `path` for good.
        with _filelock(f"{os.fspath(path)}.lock", blocking):
            yield
        return
    fd = os.open(path, os.O_RDWR | os.O_CREAT | _O_PRIVATE, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
        yield
    finally:
        os.close(fd)


def lock_for_child(path: str | Path) -> int | None:
    """A descriptor holding an exclusive lock on the lock file `path` (made if missing), or None
    at once when another holder has it. A child process given the descriptor (`pass_fds`) holds
    the lock from then on, until it dies: close this process's copy once it started. POSIX only
    (the live relay processes, which exist only there)."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | _O_PRIVATE, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


def _lower_child(nice: int) -> None:
    """In a POSIX child before exec: lower priority, and on Linux die with the parent."""
    os.nice(nice)
    if sys.platform == "linux":
        ctypes.CDLL(None).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def background_child(nice: int) -> dict:
    """Keyword arguments for subprocess/asyncio process creation: a child below this process's
    priority that (on Linux) dies with it."""
    if os.name == "nt":
        return {"creationflags": subprocess.BELOW_NORMAL_PRIORITY_CLASS}
    return {"preexec_fn": lambda: _lower_child(nice)}


def on_stop_signals(loop: asyncio.AbstractEventLoop, stop: Callable[[], None]) -> None:
    """`stop()` on the loop at SIGINT or SIGTERM (Ctrl-C only on Windows)."""
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, stop)
        except NotImplementedError:  # Windows' event loops
            signal.signal(sig, lambda *_: loop.call_soon_threadsafe(stop))


def has_input(sock_fd: int) -> bool:
    """Whether a socket has something to read, or was closed by its peer, right now."""
    if hasattr(select, "poll"):
        poller = select.poll()
        poller.register(sock_fd, select.POLLIN)
        return bool(poller.poll(0))
    return bool(select.select([sock_fd], [], [], 0)[0])


def resumed_sha256(state: str | None, data: bytes) -> str | None:
    """The saved state (hex) of a SHA-256 of some bytes, carried on over `data` ("" or None to
    begin); None where saved states are not available."""
    if rehashes is None:
        return None
    hasher = rehashes.PySha256.deserialize(bytes.fromhex(state)) if state else rehashes.PySha256()
    hasher.update(data)
    return hasher.serialize().hex()


def sha256_of_state(state: str) -> str:
    """The hex digest of the bytes a saved SHA-256 state (resumed_sha256) has taken."""
    return rehashes.PySha256.deserialize(bytes.fromhex(state)).finalize()
