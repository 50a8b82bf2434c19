"""`routerone audit [--target account:3] [--actor cli] [--action key.] [--limit 50] [--before-id N]`:
the audit log, newest first, a page at a time (the CLI view of GET /admin/audit and its `before_id`).
Registered by cli.py like routing's commands."""
from __future__ import annotations

import argparse
import asyncio
import sys
import time

from .cli_errors import int_between, require_database, row_id, text
from .services.accounts import AccountsService, AuditPage
from .settings import load_settings
from .store.factory import open_store

__all__ = ["register"]


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("audit", help="show the audit log (who changed what, when), newest first")
    p.add_argument("--target", type=text, help='one object, e.g. "account:3" or "key:12"')
    p.add_argument("--actor", type=text, help='e.g. "admin-key:1", "cli", "console:ops@example.com"')
    p.add_argument("--action", type=text, help='e.g. "key.revoke", or a family such as "key."')
    p.add_argument("--limit", type=int_between(1, 1000, "a limit"), default=50, metavar="1..1000",
                   help="entries to show (default 50)")
    p.add_argument("--before-id", dest="before_id", type=row_id, metavar="ID",
                   help="entries older than this id (the next page; printed on stderr when there is one)")
    p.set_defaults(func=cmd_audit)


def cmd_audit(args: argparse.Namespace) -> int:
    over = {"database_url": args.database_url} if getattr(args, "database_url", None) else {}
    database_url = load_settings(getattr(args, "config", None), **over).database_url
    require_database(database_url)

    async def run() -> AuditPage:
        store = open_store(database_url)
        await store.migrate()
        try:
            return await AccountsService(store).audit(limit=args.limit, target=args.target, actor=args.actor,
                                                      action=args.action, before_id=args.before_id)
        finally:
            await store.close()
    page = asyncio.run(run())
    for e in page.entries:
        print(f"{e.id:>6}  {time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime(e.created_at))}Z  {e.actor:<24} "
              f"{e.action:<16} {e.target:<14} {e.detail}")
    if page.next_before_id is not None:      # on stderr: stdout stays one line per entry
        print(f"routerone: older entries: repeat with --before-id {page.next_before_id}", file=sys.stderr)
    return 0
