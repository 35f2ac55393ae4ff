"""/api/v1 on the real server: a session made over HTTP, and a schemathesis fuzz of every operation
from the OpenAPI document the server serves (no 5xx; status codes, content types and bodies as
documented). Bounded by examples per operation to a couple of minutes on 2 cores."""

import re
import shutil
import subprocess
import sys
from pathlib import Path

from proctor_app.db import session_scope
from tests.support.api import make_caller, session_body

MAX_EXAMPLES = 25
CHECKS = "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance"


def test_a_session_over_http_on_the_real_server(app_server, client):
    with session_scope() as db:
        caller = make_caller(db)
    created = client.post("/api/v1/sessions", json=session_body(), headers=caller.headers)
    assert created.status_code == 201, created.text
    assert created.json()["candidate_url"].startswith(app_server.url + "/launch/")
    got = client.get(f"/api/v1/sessions/{created.json()['id']}", headers=caller.headers)
    assert got.status_code == 200 and got.headers["x-content-type-options"] == "nosniff"
    missing = client.get("/api/v1/sessions")
    assert missing.status_code == 401 and missing.headers["content-type"] == "application/problem+json"


def test_schemathesis_finds_nothing(app_server, tmp_path: Path):
    with session_scope() as db:
        caller = make_caller(db)
    schemathesis = shutil.which("schemathesis", path=str(Path(sys.executable).parent))
    result = subprocess.run(
        [schemathesis, "run", f"{app_server.url}/api/v1/openapi.json", "--checks", CHECKS,
         "--max-examples", str(MAX_EXAMPLES), "--workers", "1", "--seed", "1414",
         "-H", f"Authorization: Bearer {caller.key}", "--no-color"],
        cwd=tmp_path, capture_output=True, text=True, timeout=600)
    summary = result.stdout[result.stdout.rfind("SUMMARY"):]
    tested = re.search(r"Tested: (\d+)", summary)
    cases = re.search(r"(\d+) generated", summary)
    print(f"schemathesis: operations {tested and tested.group(1)}, cases {cases and cases.group(1)}, "
          f"exit {result.returncode}")
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    assert tested and int(tested.group(1)) == 7
