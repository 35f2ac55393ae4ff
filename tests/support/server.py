"""The real app (`reflex run --env prod --single-port`) as a child process, and a free port for it."""

import os
import socket
import subprocess
import sys
from pathlib import Path

import psutil

from tests.support.polling import wait_for_http

ROOT = Path(__file__).resolve().parent.parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class AppServer:
    """The real app (`reflex run --env prod --single-port`) as a child process; restartable."""

    def __init__(self, port: int, workdir: Path, extra_env: dict[str, str] | None = None):
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.workdir = workdir
        self.log_path = workdir / "server.log"
        self.extra_env = extra_env or {}
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 240) -> None:
        # A frontend build folder of this test session's own, so parallel sessions never collide.
        env = dict(os.environ, PROCTOR_PORT=str(self.port), REFLEX_USE_SYSTEM_BUN="1",
                   REFLEX_WEB_WORKDIR=str(self.workdir / "web"),
                   REFLEX_STATES_WORKDIR=str(self.workdir / "states"),
                   REFLEX_TELEMETRY_ENABLED="false",
                   PATH=f"{ROOT / 'node_modules' / '.bin'}:{Path(sys.executable).parent}:{os.environ['PATH']}",
                   **self.extra_env)
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([sys.executable, "-m", "reflex", "run", "--env", "prod", "--single-port"],
                                     cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        wait_for_http(f"{self.url}/ping", timeout, self.proc)
        wait_for_http(f"{self.url}/login", timeout, self.proc)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, 15)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, 9)
                self.proc.wait()
        self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()


def relay_processes(parent_pid: int, recursive: bool = True) -> list[tuple[int, int]]:
    """(relay index, pid) of the live relay processes below `parent_pid` (an AppServer's proc,
    or, not recursive, this process's own: the session's app server's are below it too) running now."""
    found = []
    for child in psutil.Process(parent_pid).children(recursive=recursive):
        try:
            command = child.cmdline()
            if command[-4:-2] == ["proctor_app.runtime", "relay"] and child.status() != psutil.STATUS_ZOMBIE:
                found.append((int(command[-2]), child.pid))
        except psutil.NoSuchProcess:
            continue
    return sorted(found)
