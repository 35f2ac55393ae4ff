"""Media tools from the command line (same database and storage as the app: PROCTOR_* variables).

    python -m proctor_app.media verify ATTEMPT_ID
        check the attempt's recordings against their signed manifests (signature, chunk chain,
        stored chunks, MP4) with this install's key
    python -m proctor_app.media verify --bundle PATH [--public-key BASE64]
        check an evidence bundle on its own, offline; with --public-key, also that it was signed
        by that key (the install's, from /api/v1/signing-key)

Exit 0 when everything holds, 1 when something differs (each difference is printed), 2 on usage.
"""

import argparse
import sys
from pathlib import Path

from proctor_app.media.evidence.verify import verify_attempt, verify_bundle


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m proctor_app.media")
    commands = parser.add_subparsers(dest="command", required=True)
    verify = commands.add_parser("verify", help="verify recordings or an evidence bundle")
    verify.add_argument("attempt_id", nargs="?", type=int)
    verify.add_argument("--bundle", type=Path)
    verify.add_argument("--public-key")
    args = parser.parse_args(argv)
    if (args.attempt_id is None) == (args.bundle is None):
        parser.error("give either ATTEMPT_ID or --bundle PATH")
    report = (verify_bundle(args.bundle, args.public_key) if args.bundle is not None
              else verify_attempt(args.attempt_id))
    for note in report.notes:
        print(f"note: {note}")
    for problem in report.problems:
        print(f"DIFFERS: {problem}")
    print("verified: everything matches" if report.ok else f"FAILED: {len(report.problems)} differences")
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
