"""Runtime configuration, read from environment variables.

Embedded defaults (SQLite + a local storage folder) make the app run with nothing else;
production points PROCTOR_DATABASE_URL at PostgreSQL and REFLEX_REDIS_URL at Redis.
"""

import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from proctor_app.platform import SOCKET_PASSING

PROJECT_ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Config:
    data_dir: Path
    database_url: str
    storage_dir: Path
    secret_key: str
    port: int
    redis_url: str | None
    # Processes that store uploaded chunks beside the app's (0: in the app process).
    ingest_processes: int
    # Processes that relay live video beside the app's, shared by its workers (0: in the app
    # process, which then must run one worker while live video is on).
    live_relay_processes: int = 0
    # Where users reach the app (e.g. https://proctor.example.edu); https:// turns on HSTS.
    public_url: str = ""
    # Other sites whose pages may call /api with the user's cookie (CORS); none by default.
    cors_origins: tuple[str, ...] = ()
    # Peers whose X-Forwarded-For names the client (the reverse proxy), as IPs or CIDRs.
    trusted_proxies: tuple[str, ...] = ("127.0.0.1",)
    # Live video's ICE (media/live/ice.py): STUN/TURN URLs, the TURN REST shared secret, the
    # server's public IPv4 address behind a 1:1 NAT, and "relay" to send browsers through TURN only.
    ice_servers: str = ""
    turn_secret: str = ""
    public_ip: str = ""
    ice_transport_policy: str = "all"
    # /metrics: answered to these client addresses (networks), or to a request with this token.
    metrics_allow: tuple[str, ...] = ("127.0.0.1", "::1")
    metrics_token: str = ""
    # Whether the app process runs a job worker too; off when `python -m proctor_app worker` runs
    # in a process (or on a machine) of its own.
    in_app_worker: bool = True


def _persisted_secret(data_dir: Path) -> str:
    """A secret generated once and kept in the data folder, so sessions survive restarts."""
    path = data_dir / "secret_key"
    if path.exists():
        return path.read_text().strip()
    data_dir.mkdir(parents=True, exist_ok=True)
    secret = secrets.token_urlsafe(48)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(secret)
    return secret


def _list(value: str) -> tuple[str, ...]:
    return tuple(item.strip() for item in value.split(",") if item.strip())


def load_config() -> Config:
    data_dir = Path(os.environ.get("PROCTOR_DATA_DIR", PROJECT_ROOT / "data")).resolve()
    return Config(
        data_dir=data_dir,
        database_url=os.environ.get("PROCTOR_DATABASE_URL", f"sqlite:///{data_dir / 'proctor.db'}"),
        storage_dir=Path(os.environ.get("PROCTOR_STORAGE_DIR", data_dir / "storage")).resolve(),
        secret_key=os.environ.get("PROCTOR_SECRET_KEY") or _persisted_secret(data_dir),
        port=int(os.environ.get("PROCTOR_PORT", "8000")),
        redis_url=os.environ.get("REFLEX_REDIS_URL") or None,
        # Ingest processes get their socket by descriptor passing (POSIX); elsewhere none.
        ingest_processes=int(os.environ.get("PROCTOR_INGEST_PROCESSES", min(4, os.cpu_count() or 1)))
        if SOCKET_PASSING else 0,
        # Relay processes listen on Unix sockets (POSIX); elsewhere the relay is in the app process.
        live_relay_processes=int(os.environ.get("PROCTOR_LIVE_RELAY_PROCESSES", "1")) if SOCKET_PASSING else 0,
        public_url=os.environ.get("PROCTOR_PUBLIC_URL", "").strip(),
        cors_origins=_list(os.environ.get("PROCTOR_CORS_ORIGINS", "")),
        trusted_proxies=_list(os.environ.get("PROCTOR_TRUSTED_PROXIES", "127.0.0.1")),
        ice_servers=os.environ.get("PROCTOR_ICE_SERVERS", ""),
        turn_secret=os.environ.get("PROCTOR_TURN_SECRET", ""),
        public_ip=os.environ.get("PROCTOR_PUBLIC_IP", "").strip(),
        ice_transport_policy=os.environ.get("PROCTOR_ICE_TRANSPORT_POLICY", "all").strip() or "all",
        metrics_allow=tuple(part.strip() for part in
                            os.environ.get("PROCTOR_METRICS_ALLOW", "127.0.0.1,::1").split(",") if part.strip()),
        metrics_token=os.environ.get("PROCTOR_METRICS_TOKEN", "").strip(),
        in_app_worker=os.environ.get("PROCTOR_IN_APP_WORKER", "1").strip() != "0",
    )


config = load_config()
