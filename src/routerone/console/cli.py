"""`routerone console-user create --email E [--operator] [--account ID] [--password-stdin]`:
the first console user (the operator) is made here, since the console has no one to sign in yet."""
from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import Callable

from ..cli_errors import require_database, row_id, text
from ..store.factory import open_store
from . import security
from .users import ConsoleUsers

__all__ = ["register"]


def register(sub, settings_from: Callable[[argparse.Namespace], object]) -> None:
    p = sub.add_parser("console-user", help="create web console users (the first operator)")
    acts = p.add_subparsers(dest="action", required=True)
    c = acts.add_parser("create", help="create a console user; prints the initial password once")
    c.add_argument("--email", type=text, required=True, help="the sign-in name")
    c.add_argument("--operator", action="store_true", help="role operator (runs the gateway) instead of user")
    c.add_argument("--account", type=row_id, help="account id (default: the first account, made if none)")
    c.add_argument("--password-stdin", action="store_true", help="read the password from stdin instead of generating one")
    p.set_defaults(func=lambda args: _create(args, settings_from(args)))


def _create(args: argparse.Namespace, settings) -> int:
    require_database(settings.database_url, making="console user")
    password = sys.stdin.readline().rstrip("\n") if args.password_stdin else security.generate_password()

    async def run() -> int:
        store = open_store(settings.database_url)
        await store.migrate()
        try:
            account_id = args.account
            if account_id is None:
                accounts = await store.list_accounts()
                account_id = accounts[0].id if accounts else (await store.create_account("admin")).id
            user = await ConsoleUsers(store).create(args.email, password, account_id=account_id,
                                                    role="operator" if args.operator else "user")
            await store.record_audit("cli", "console_user.create", f"account:{account_id}",
                                     json.dumps({"user_id": user.id, "email": user.email, "role": user.role}))
        finally:
            await store.close()
        print(f"console user {user.email} ({user.role}) in account {account_id}")
        if not args.password_stdin:
            print(f"initial password (shown once): {password}")
        print(_where(settings))
        return 0
    return asyncio.run(run())


def _where(settings) -> str:
    """Where this configuration serves the console ("http://<host>:<port>" told the operator nothing).
    Said as the configuration's: `serve --host/--port` win, and this command cannot know them."""
    if not settings.console:
        return "the console is off in this configuration (console = false): set console = true to sign in"
    host = settings.host if settings.host not in ("0.0.0.0", "::", "") else "<this machine's address>"
    host = f"[{host}]" if ":" in host else host
    return (f"sign in at /console/ on the address `routerone serve` listens on (with this configuration "
            f"http://{host}:{settings.port}/console/, unless serve was started with --host or --port)")
