"""`python -m proctor_app api-keys ...`: API keys from the command line.

    api-keys create --org SLUG --label TEXT [--scope S ...] [--expires-days N]
        create a key (and the organisation when it does not exist); the key is printed once, alone
        on the last line of stdout
    api-keys list [--org SLUG]
    api-keys revoke PREFIX
    organisations set-origins SLUG [ORIGIN ...]
        the sites whose pages may embed the recorder (/sdk/proctor.js); replaces the list
"""

import sys
from datetime import timedelta

from sqlmodel import select

from proctor_app.db import migrate, session_scope
from proctor_app.models import ApiKey, utcnow
from proctor_app.services import api_keys, organisations


def _create(args) -> int:
    migrate()
    try:
        with session_scope() as db:
            organisation = organisations.ensure_organisation(db, args.org)
            expires = utcnow() + timedelta(days=args.expires_days) if args.expires_days else None
            key, raw = api_keys.create_key(db, organisation.id, args.label, args.scope or [], expires)
    except (api_keys.ApiKeyError, organisations.OrganisationError) as exc:
        print(f"api-keys create: {exc} Nothing changed.", file=sys.stderr)
        return 2
    print(f"Created key {key.prefix} for organisation {organisation.slug} with scopes "
          f"{' '.join(key.scopes)}.")
    print("The key (shown only now; the next line is the key alone):")
    print(raw, flush=True)
    return 0


def _when(moment) -> str:
    return f"{moment:%Y-%m-%d %H:%M}" if moment else "-"


def _list(args) -> int:
    migrate()
    with session_scope() as db:
        organisation = organisations.organisation_by_slug(db, args.org) if args.org else None
        if args.org and organisation is None:
            print(f"api-keys list: no organisation {args.org}", file=sys.stderr)
            return 2
        rows = api_keys.keys_of(db, organisation.id if organisation else None)
    now = utcnow()
    print(f"{'prefix':<16} {'organisation':<16} {'state':<8} {'last use':<17} {'expires':<17} label / scopes")
    for key, org in rows:
        state = ("revoked" if key.revoked_at else
                 "expired" if key.expires_at and key.expires_at <= now else "active")
        print(f"{key.prefix:<16} {org.slug:<16} {state:<8} {_when(key.last_used_at):<17} "
              f"{_when(key.expires_at):<17} {key.label} / {' '.join(key.scopes)}")
    return 0


def _revoke(args) -> int:
    migrate()
    with session_scope() as db:
        key = db.exec(select(ApiKey).where(ApiKey.prefix == args.prefix)).first()
        if key is None:
            print(f"api-keys revoke: no key {args.prefix}", file=sys.stderr)
            return 2
        api_keys.revoke_key(db, key.id, None)
    print(f"Revoked key {args.prefix}.")
    return 0


def _set_origins(args) -> int:
    migrate()
    try:
        with session_scope() as db:
            organisation = organisations.ensure_organisation(db, args.slug)
            allowed = organisations.set_allowed_origins(db, None, organisation.id,
                                                        " ".join(args.origins)).allowed_origins
    except organisations.OrganisationError as exc:
        print(f"organisations set-origins: {exc} Nothing changed.", file=sys.stderr)
        return 2
    print(f"Organisation {organisation.slug} allows the recorder on: {' '.join(allowed) or 'no site'}.")
    return 0


def add_commands(commands) -> None:
    parser = commands.add_parser("organisations", help="settings of organisations")
    actions = parser.add_subparsers(dest="action", required=True)
    p = actions.add_parser("set-origins", help="the sites whose pages may embed /sdk/proctor.js (none: no site)")
    p.add_argument("slug", help="organisation slug (created when missing)")
    p.add_argument("origins", nargs="*", metavar="ORIGIN", help="e.g. https://lms.example.org")
    p.set_defaults(run=_set_origins)
    parser = commands.add_parser("api-keys", help="create, list and revoke API keys")
    actions = parser.add_subparsers(dest="action", required=True)
    p = actions.add_parser("create", help="create a key; prints it once, alone on the last line")
    p.add_argument("--org", required=True, help="organisation slug (created when missing)")
    p.add_argument("--label", required=True)
    p.add_argument("--scope", action="append", choices=api_keys.SCOPES,
                   help="repeat for several (default: all scopes)")
    p.add_argument("--expires-days", type=int, default=None)
    p.set_defaults(run=_create)
    p = actions.add_parser("list", help="list keys by prefix")
    p.add_argument("--org", help="only this organisation's keys")
    p.set_defaults(run=_list)
    p = actions.add_parser("revoke", help="revoke a key by its prefix")
    p.add_argument("prefix")
    p.set_defaults(run=_revoke)
