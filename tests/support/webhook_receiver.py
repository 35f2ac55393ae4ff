"""A webhook receiver for tests and benchmarks: a real HTTP server in a thread of the test process
that verifies every delivery's signature with the `standardwebhooks` library and keeps what came.
Answers are scripted per path (a list of status codes used in turn; 200 once it runs out)."""

import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from standardwebhooks import Webhook


@dataclass
class Received:
    path: str
    webhook_id: str
    envelope: dict
    answered: int
    at: float  # time.time() on arrival


@dataclass
class Receiver:
    port: int = 0
    # path -> the secret its signatures must verify with
    secrets: dict[str, str] = field(default_factory=dict)
    # path -> status codes to answer, in turn
    script: dict[str, list[int]] = field(default_factory=dict)
    received: list[Received] = field(default_factory=list)
    bad_signatures: list[str] = field(default_factory=list)

    def start(self) -> "Receiver":
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("content-length", 0))).decode()
                try:
                    envelope = Webhook(receiver.secrets[self.path]).verify(body, dict(self.headers))
                except Exception as exc:  # an unsigned or wrongly signed delivery is a test failure
                    receiver.bad_signatures.append(f"{self.path}: {exc!r}")
                    self.send_response(400)
                    self.end_headers()
                    return
                codes = receiver.script.get(self.path) or []
                status = codes.pop(0) if codes else 200
                receiver.received.append(Received(self.path, self.headers["webhook-id"], envelope, status,
                                                  time.time()))
                self.send_response(status)
                self.end_headers()
                self.wfile.write(b"ok" if status < 300 else b"no thanks")

            def log_message(self, *args):
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def acknowledged(self, path: str) -> list[Received]:
        return [r for r in self.received if r.path == path and 200 <= r.answered < 300]

    def types(self, path: str) -> list[str]:
        return [r.envelope["type"] for r in self.acknowledged(path)]

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


