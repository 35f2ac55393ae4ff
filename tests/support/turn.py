"""A real TURN server for the tests: Debian's coturn (`turnserver`), as the app's operators run it
(TURN REST shared secret), on free ports, without root."""

import random
import shutil
import socket
import subprocess
import time
from pathlib import Path

from tests.support.server import free_port

TURNSERVER = "/usr/bin/turnserver"
SECRET = "turn-test-secret"


class TurnServer:
    """coturn listening on `ip` (UDP and TCP on one port), relaying from the same address."""

    def __init__(self, workdir: Path, ip: str = "127.0.0.1", secret: str = SECRET):
        self.ip, self.secret, self.workdir = ip, secret, workdir
        self.port = free_port()
        self.log_path = workdir / "turnserver.log"
        self.proc: subprocess.Popen | None = None

    def url(self, transport: str) -> str:
        return f"turn:{self.ip}:{self.port}?transport={transport}"

    def start(self) -> None:
        if not shutil.which(TURNSERVER):
            raise RuntimeError(f"{TURNSERVER} is missing: run scripts/install --with-browser")
        # Relay ports of its own in the ephemeral range, away from other sessions' (by chance).
        low = random.randrange(20000, 30000, 200)
        self.proc = subprocess.Popen([
            TURNSERVER, "-n", "--no-cli", "--no-tls", "--no-dtls", "--no-rfc5780",
            "--listening-ip", self.ip, "--relay-ip", self.ip, "--listening-port", str(self.port),
            "--min-port", str(low), "--max-port", str(low + 199),
            "--realm", "proctor.test", "--use-auth-secret", "--static-auth-secret", self.secret,
            # Browser and relay are on this machine: their addresses are loopback or private.
            "--allow-loopback-peers", "--cli-password", "unused",
            "--userdb", str(self.workdir / "turndb"), "--pidfile", str(self.workdir / "turnserver.pid"),
            "--log-file", str(self.log_path), "--simple-log",
        ], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"turnserver exited: {self.log_path.read_text()[-2000:]}")
            try:
                socket.create_connection((self.ip, self.port), timeout=0.5).close()
                return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("turnserver did not start listening")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None
