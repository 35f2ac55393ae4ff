"""The embeddable recorder as one ES module: sdk/build.js bundles sdk/proctor.js with the shared
recorder modules of assets/ (bun, from node_modules), once per process, at the first request."""

import functools
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BUN = ROOT / "node_modules" / ".bin" / "bun"
BUILD_TIMEOUT_S = 120


@functools.cache
def sdk_bundle() -> bytes:
    return subprocess.run([str(BUN), str(ROOT / "sdk" / "build.js")], cwd=ROOT, check=True,
                          capture_output=True, timeout=BUILD_TIMEOUT_S).stdout
