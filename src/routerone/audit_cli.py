"""`routerone audit [--target account:3] [--actor cli] [--action key.] [--limit 50]`: the audit log,
newest first (the CLI view of GET /admin/audit). Registered by cli.py like routing's commands."""
from __future__ import annotations

import argparse
import asyncio
import time

from .cli_errors import int_between, text
from .services.accounts import AccountsService
from .settings import load_settings
from .store.factory import open_store

__all__ = ["register"]


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("audit", help="show the audit log (who changed what, when), newest first")
    p.add_argument("--target", type=text, help='one object, e.g. "account:3" or "key:12"')
    p.add_argument("--actor", type=text, help='e.g. "admin-key:1", "cli", "console:ops@example.com"')
    p.add_argument("--action", type=text, help='e.g. "key.revoke", or a family such as "key."')
    p.add_argument("--limit", type=int_between(1, 1000, "a limit"), default=50, metavar="1..1000")
    p.set_defaults(func=cmd_audit)


def cmd_audit(args: argparse.Namespace) -> int:
    async def run() -> list[str]:
        over = {"database_url": args.database_url} if getattr(args, "database_url", None) else {}
        store = open_store(load_settings(getattr(args, "config", None), **over).database_url)
        await store.migrate()
        try:
            page = await AccountsService(store).audit(limit=args.limit, target=args.target, actor=args.actor,
                                                      action=args.action)
        finally:
            await store.close()
        return [f"{e.id:>6}  {time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime(e.created_at))}Z  {e.actor:<24} "
                f"{e.action:<16} {e.target:<14} {e.detail}" for e in page.entries]
    for line in asyncio.run(run()):
        print(line)
    return 0
