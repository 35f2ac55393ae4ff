"""Processing and administration from the command line (same database and storage as the app:
PROCTOR_* variables).

    python -m proctor_app create-admin --email E [--name N] [--generate] [--org SLUG]
        create an active administrator (the first one in production); asks for the password twice
        on a terminal, else (or with --generate) prints a generated one once, as the last line.
        Exit 2 when the email exists or a value breaks the rules.

    python -m proctor_app reprocess ATTEMPT_ID [...] [--here]
        queue the attempts' recordings for processing again (the app's workers pick them up);
        with --here, run the jobs in this process and wait for them
    python -m proctor_app worker [--concurrency N]
        run a processing worker here until interrupted (e.g. on a separate machine)
    python -m proctor_app jobs [--attempt ID] [--status STATUS] [--limit N]
        list jobs, newest first
    python -m proctor_app api-keys create|list|revoke ...
        API keys of organisations (see proctor_app/api_keys_cli.py)
    python -m proctor_app organisations set-origins SLUG [ORIGIN ...]
        the sites allowed to embed the recorder /sdk/proctor.js (see proctor_app/api_keys_cli.py)
"""

import argparse
import asyncio
import getpass
import sys

from sqlmodel import select

from proctor_app import api_keys_cli
from proctor_app.db import migrate, session_scope, startup_lock
from proctor_app.models import Attempt, Job, JobStatus, User
from proctor_app.platform import on_stop_signals
from proctor_app.runtime import background, job_worker
from proctor_app.services import accounts, first_run, organisations
from proctor_app.services.processing import request_reprocess

FINAL = (JobStatus.done, JobStatus.failed)


def _states(job_ids: list[int]) -> list[Job]:
    with session_scope() as db:
        return [db.get(Job, job_id) for job_id in job_ids]


async def _run_here(job_ids: list[int]) -> list[Job]:
    """A worker in this process until the given jobs have ended."""
    worker = asyncio.create_task(job_worker().run())
    try:
        while True:
            states = await asyncio.to_thread(_states, job_ids)
            line = "  ".join(f"job {j.id}: {j.status} {j.progress:.0%}" for j in states)
            print(f"\r{line}", end="", flush=True)
            if all(j.status in FINAL for j in states):
                print()
                return states
            await asyncio.sleep(1)
    finally:
        worker.cancel()
        await asyncio.gather(worker, return_exceptions=True)
        background.close()


def reprocess(args) -> int:
    queued = []
    with session_scope() as db:
        for attempt_id in args.attempt_ids:
            if db.get(Attempt, attempt_id) is None:
                print(f"attempt {attempt_id}: no such attempt", file=sys.stderr)
                return 2
        for attempt_id in args.attempt_ids:
            job = request_reprocess(db, attempt_id, user_id=None)
            queued.append(job.id)
            print(f"attempt {attempt_id}: queued as job {job.id}")
    if not args.here:
        return 0
    states = asyncio.run(_run_here(queued))
    for job in states:
        print(f"job {job.id} (attempt {job.attempt_id}): {job.status}"
              + (f": {job.last_error}" if job.status == JobStatus.failed else ""))
    return 0 if all(j.status == JobStatus.done for j in states) else 1


async def _work_until_stopped(concurrency: int | None) -> None:
    task = asyncio.create_task(job_worker(concurrency).run())
    # Stopping puts a running job back in the queue for the next worker.
    on_stop_signals(asyncio.get_running_loop(), task.cancel)
    await asyncio.gather(task, return_exceptions=True)
    background.close()


def worker(args) -> int:
    with startup_lock():  # the app may be migrating at the same moment (systemd starts both)
        migrate()
    print("processing worker started (Ctrl-C to stop)", flush=True)
    asyncio.run(_work_until_stopped(args.concurrency))
    return 0


def list_jobs(args) -> int:
    query = select(Job).order_by(Job.id.desc()).limit(args.limit)
    if args.attempt is not None:
        query = query.where(Job.attempt_id == args.attempt)
    if args.status:
        query = query.where(Job.status == args.status)
    with session_scope() as db:
        rows = db.exec(query).all()
    print(f"{'id':>6}  {'kind':<9} {'attempt':>7}  {'status':<8} {'progress':>8}  {'tries':>5}  last error")
    for job in rows:
        print(f"{job.id:>6}  {job.kind:<9} {job.attempt_id or '':>7}  {job.status:<8} "
              f"{job.progress:>8.0%}  {job.tries:>2}/{job.max_tries:<2}  {job.last_error[:80]}")
    return 0


def create_admin(args) -> int:
    migrate()
    email = accounts.normalise_email(args.email)
    with session_scope() as db:
        if db.exec(select(User.id).where(User.email == email)).first() is not None:
            print(f"create-admin: a user with the email {email} exists already; nothing changed "
                  "(manage existing users on /admin/users).", file=sys.stderr)
            return 2
    generated = args.generate or not sys.stdin.isatty()
    if generated:
        password = first_run.generate_password()
    else:
        password = getpass.getpass("Password: ")
        if getpass.getpass("Password again: ") != password:
            print("create-admin: the two passwords differ; nothing changed.", file=sys.stderr)
            return 2
    try:
        with session_scope() as db:
            organisation_id = organisations.ensure_organisation(db, args.org).id if args.org else None
            user = first_run.create_admin(db, email, args.name or "", password, organisation_id)
    except (accounts.AccountError, organisations.OrganisationError) as exc:
        print(f"create-admin: {exc} Nothing changed.", file=sys.stderr)
        return 2
    scope = f"of the organisation {args.org}" if args.org else "of the install"
    print(f"Created the administrator {user.email} (user {user.id}), {scope}.")
    if generated:
        print("Generated password (shown only now; the next line is the password alone):")
        print(password, flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m proctor_app", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    p = commands.add_parser("create-admin", help="create an active administrator")
    p.add_argument("--email", required=True)
    p.add_argument("--name", default="", help="display name (default: the email's local part)")
    p.add_argument("--generate", action="store_true",
                   help="generate the password and print it (also without a terminal)")
    p.add_argument("--org", default="", help="an admin of this organisation only (created when missing); "
                                            "default: an admin of the whole install")
    p.set_defaults(run=create_admin)
    p = commands.add_parser("reprocess", help="process attempts' recordings again")
    p.add_argument("attempt_ids", type=int, nargs="+")
    p.add_argument("--here", action="store_true", help="run the jobs in this process and wait")
    p.set_defaults(run=reprocess)
    p = commands.add_parser("worker", help="run a processing worker until interrupted")
    p.add_argument("--concurrency", type=int, default=None,
                   help="jobs at once (default: the processing_concurrency setting)")
    p.set_defaults(run=worker)
    p = commands.add_parser("jobs", help="list jobs")
    p.add_argument("--attempt", type=int)
    p.add_argument("--status", choices=[s.value for s in JobStatus])
    p.add_argument("--limit", type=int, default=50)
    p.set_defaults(run=list_jobs)
    api_keys_cli.add_commands(commands)
    args = parser.parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
