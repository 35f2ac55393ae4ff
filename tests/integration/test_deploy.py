"""deploy/: each file checked by its own tool (Debian's caddy and systemd, installed by
scripts/install --with-browser), and Caddy with deploy/Caddyfile actually in front of the session's
app server: a page, an upload and the state websocket through it."""

import hashlib
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from proctor_app.media.storage import storage
from tests.support.caddy import CaddyProxy, tool
from tests.support.server import ROOT
from tests.support.uploads import chunk_headers, chunk_url

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="caddy and systemd-analyze: Linux only")

DEPLOY = ROOT / "deploy"
UNITS = ["proctor-app.service", "proctor-worker.service"]


def _tool(name: str) -> str:
    path = tool(name)
    if path is None:
        pytest.fail(f"{name} is missing: run scripts/install --with-browser")
    return path


def _caddy_validate(env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([_tool("caddy"), "validate", "--config", str(DEPLOY / "Caddyfile"),
                           "--adapter", "caddyfile"], env=dict(os.environ, **env),
                          capture_output=True, text=True)


@pytest.mark.parametrize("env", [{}, {"PROCTOR_DOMAIN": "proctor.example.edu",
                                      "PROCTOR_UPSTREAM": "127.0.0.1:8123"}])
def test_the_caddyfile_is_valid(env):
    result = _caddy_validate(env)
    assert result.returncode == 0, result.stderr
    assert "Valid configuration" in result.stdout + result.stderr


def _verify_units(folder: Path) -> subprocess.CompletedProcess:
    """systemd-analyze verify, offline (no systemd running), with the install folder /opt/proctor
    pointed at this checkout so the commands exist. It warns about unknown keys and bad values
    without failing, so callers treat any output as an error."""
    return subprocess.run([_tool("systemd-analyze"), "verify", "--man=no",
                           *(str(folder / unit) for unit in UNITS)],
                          env=dict(os.environ, SYSTEMD_LOG_LEVEL="notice", SYSTEMD_LOG_COLOR="0"),
                          capture_output=True, text=True)


def _units_here(tmp_path: Path, change=lambda text: text) -> Path:
    for unit in UNITS:
        text = (DEPLOY / unit).read_text().replace("/opt/proctor", str(ROOT))
        (tmp_path / unit).write_text(change(text))
    return tmp_path


def test_the_systemd_units_verify_cleanly(tmp_path):
    result = _verify_units(_units_here(tmp_path))
    assert result.returncode == 0 and result.stdout + result.stderr == "", result.stdout + result.stderr


def test_the_unit_check_catches_a_misspelt_hardening_option(tmp_path):
    folder = _units_here(tmp_path, lambda text: text.replace("ProtectSystem=", "ProtectSytem="))
    result = _verify_units(folder)
    assert "Unknown key" in result.stdout + result.stderr


def test_the_units_run_the_app_and_a_separate_worker():
    app, worker = ((DEPLOY / unit).read_text() for unit in UNITS)
    assert "reflex run --env prod --single-port" in app
    assert "-m proctor_app worker" in worker
    env = dict(re.findall(r"^([A-Z_]+)=(.*)$", (DEPLOY / "env.example").read_text(), re.M))
    assert env["PROCTOR_IN_APP_WORKER"] == "0"  # else the app process runs jobs too
    for unit in (app, worker):
        assert "EnvironmentFile=/etc/proctor/env" in unit and "ProtectSystem=strict" in unit
        writable = re.search(r"^ReadWritePaths=(.*)$", unit, re.M).group(1).split()
        assert env["PROCTOR_DATA_DIR"] in writable
        assert env["PROCTOR_STORAGE_DIR"].startswith(env["PROCTOR_DATA_DIR"] + "/")


def test_every_variable_of_the_example_env_file_is_in_the_readme():
    readme = (ROOT / "README.md").read_text()
    names = re.findall(r"^([A-Z_]+)=", (DEPLOY / "env.example").read_text(), re.M)
    assert names and [name for name in names if f"`{name}`" not in readme] == []


@pytest.fixture(scope="module")
def proxy(app_server, tmp_path_factory):
    caddy = CaddyProxy(app_server.port, tmp_path_factory.mktemp("caddy"))
    caddy.start()
    yield caddy.address
    caddy.stop()
    print(caddy.log_path.read_text()[-3000:])  # shown with a failure


def test_a_page_comes_through_the_proxy_with_the_apps_security_headers(proxy, app_server):
    direct = httpx.get(f"{app_server.url}/login", follow_redirects=True)
    proxied = httpx.get(f"http://{proxy}/login", follow_redirects=True)
    assert proxied.status_code == 200 and proxied.text == direct.text
    assert proxied.url.netloc.decode() == proxy  # redirects stay on the proxy's address
    for header in ("content-security-policy", "x-content-type-options", "referrer-policy"):
        assert proxied.headers.get(header) == direct.headers.get(header) is not None, header


def test_metrics_are_not_served_through_the_proxy(proxy, app_server):
    # Metrics are scraped on the host: the proxy does not pass them on.
    assert httpx.get(f"{app_server.url}/metrics").status_code == 200
    assert httpx.get(f"http://{proxy}/metrics").status_code == 404


def test_an_upload_goes_through_the_proxy_and_a_refusal_comes_back(proxy, grant):
    body = os.urandom(3 * 1024 * 1024 // 2)
    url = f"http://{proxy}{chunk_url(grant.attempt_id, 0)}"
    # A small body: with a large one the app answers before reading it and closes, and Caddy
    # then answers 502 instead of the 401 about one time in six (known, see the README).
    refused = httpx.put(url, content=body[:1000], headers=chunk_headers(body[:1000], None), timeout=60)
    assert refused.status_code == 401
    assert refused.json()["error"] == "token_missing"  # the app's answer, passed through
    stored = httpx.put(url, content=body, headers=chunk_headers(body, grant.token), timeout=60)
    assert stored.status_code == 201, stored.text
    path = storage.root().rglob(f"raw/*/*/{grant.attempt_id}/camera/0/00000000")
    assert hashlib.sha256(next(path).read_bytes()).digest() == hashlib.sha256(body).digest()


def _first_websocket_bytes(address: str) -> bytes:
    """Opens the state websocket as a browser would and returns what arrives until Engine.IO's
    open packet (read off the socket whole: a client library may drop frames that arrive with the
    handshake answer)."""
    host, port = address.split(":")
    with socket.create_connection((host, int(port)), timeout=15) as conn:
        conn.sendall(f"GET /_event/?EIO=4&transport=websocket HTTP/1.1\r\nHost: {address}\r\n"
                     "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
                     "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n".encode())
        received = b""
        while b'0{"sid":' not in received and (data := conn.recv(4096)):
            received += data
    return received


def test_the_state_websocket_opens_through_the_proxy(proxy):
    received = _first_websocket_bytes(proxy)
    assert received.startswith(b"HTTP/1.1 101 Switching Protocols"), received[:200]
    assert b'0{"sid":' in received, received[:400]  # Engine.IO's open packet
