"""Caddy running deploy/Caddyfile in plain HTTP on a free port, in front of an app server."""

import os
import shutil
import subprocess
from pathlib import Path

from tests.support.polling import wait_for_http
from tests.support.server import ROOT, free_port

CADDYFILE = ROOT / "deploy" / "Caddyfile"


def tool(name: str) -> str | None:
    """A Debian tool's path (caddy, systemd-analyze), also when /usr/sbin is not on PATH."""
    return shutil.which(name) or next((str(p) for p in (Path("/usr/bin") / name, Path("/usr/sbin") / name)
                                       if p.exists()), None)


class CaddyProxy:
    def __init__(self, upstream_port: int, workdir: Path):
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.url = f"http://{self.address}"
        self.workdir = workdir
        self.log_path = workdir / "caddy.log"
        self.env = dict(os.environ, PROCTOR_DOMAIN=self.url, PROCTOR_UPSTREAM=f"127.0.0.1:{upstream_port}",
                        CADDY_ADMIN="off", HOME=str(workdir), XDG_DATA_HOME=str(workdir / "data"),
                        XDG_CONFIG_HOME=str(workdir / "config"))
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        caddy = tool("caddy")
        if caddy is None:
            raise RuntimeError("caddy is missing: run scripts/install --with-browser")
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen([caddy, "run", "--config", str(CADDYFILE), "--adapter", "caddyfile"],
                                         env=self.env, stdout=log, stderr=subprocess.STDOUT)
        wait_for_http(f"{self.url}/ping", 30, self.proc)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
        self.proc = None
