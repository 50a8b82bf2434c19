"""`routerone copy-database --from sqlite:///routerone.db [--database-url postgresql://...]`: move an
install from the embedded SQLite default to PostgreSQL (`store/copy.py` says what is copied).
The target is the database this configuration names (`--database-url`, `ROUTERONE_DATABASE_URL` or
`database_url`). Registered by cli.py like the audit command."""
from __future__ import annotations

import argparse
import asyncio
import sys

from .cli_errors import require_database, text
from .settings import load_settings
from .store.copy import CopyRefused, copy_sqlite_to_postgres

__all__ = ["register"]

_SQLITE = "sqlite:///"
_POSTGRES = ("postgresql://", "postgres://")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("copy-database", help="copy an SQLite install (accounts, balances, keys, ledger, usage, "
                                             "audit, console users) into a new, empty PostgreSQL database")
    p.add_argument("--from", dest="source", type=text, required=True, metavar="sqlite:///routerone.db",
                   help="the SQLite database to copy (stop the gateways on it first)")
    p.set_defaults(func=cmd_copy_database)


def cmd_copy_database(args: argparse.Namespace) -> int:
    over = {"database_url": args.database_url} if getattr(args, "database_url", None) else {}
    args._settings = load_settings(getattr(args, "config", None), **over)    # for error messages
    target = args._settings.database_url
    if not args.source.startswith(_SQLITE) or args.source in (_SQLITE, _SQLITE + ":memory:"):
        raise CopyRefused(f"--from must name an SQLite file (sqlite:///routerone.db), not {args.source!r}")
    if not target.startswith(_POSTGRES):
        raise CopyRefused("the database to copy into is the configured one (--database-url, ROUTERONE_DATABASE_URL "
                          "or database_url) and must be PostgreSQL (postgresql://user@host/db)")
    require_database(args.source)
    report = asyncio.run(copy_sqlite_to_postgres(args.source[len(_SQLITE):], target))
    for table, n in report.rows.items():
        print(f"{table}: {n}")
    if report.open_holds:
        print(f"routerone: note: {report.open_holds} balance hold(s) were open in the SQLite database (was a "
              "gateway still running on it?); copied as they were, they are released after reservation_ttl_s",
              file=sys.stderr)
    print("copied; now start `routerone serve` with this database_url (and keep the SQLite file as a backup)",
          file=sys.stderr)
    return 0
