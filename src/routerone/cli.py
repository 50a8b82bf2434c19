"""`routerone serve | keys | accounts | models | usage | eval-routing | train-router` (thin: calls services)."""
from __future__ import annotations

import argparse
import asyncio
import sys
from decimal import Decimal
from typing import Awaitable, Callable

from .billing.prices import usd_to_micros
from .catalog import load_catalog
from .errors import RouterOneError
from .settings import Settings, SettingsError, load_settings
from .store.base import Limits
from .store.factory import open_store
from .routing import commands as routing_commands
from .server import serve
from .services.accounts import AccountsService

__all__ = ["main"]

DEMO_CREDIT_USD = "10"


def _settings(args: argparse.Namespace) -> Settings:
    over = {k: getattr(args, k) for k in ("host", "port", "workers", "database_url") if getattr(args, k, None) is not None}
    return load_settings(getattr(args, "config", None), **over)


def _with_accounts(args: argparse.Namespace, fn: Callable[[AccountsService], Awaitable[int]]) -> int:
    async def run() -> int:
        store = open_store(_settings(args).database_url)
        await store.migrate()
        try:
            return await fn(AccountsService(store))
        finally:
            await store.close()
    return asyncio.run(run())


def _usd(value: str) -> int:
    return usd_to_micros(Decimal(value), what="amount")


# -- serve ----------------------------------------------------------------------------------------
def cmd_serve(args: argparse.Namespace) -> int:
    settings = _settings(args)
    return serve(settings, bootstrap=_bootstrap)


async def _bootstrap(settings: Settings) -> list[str]:
    """First start: admin account + admin key (printed once), demo credit when the demo provider is on."""
    store = open_store(settings.database_url)
    await store.migrate()
    lines: list[str] = []
    try:
        svc = AccountsService(store)
        issued = await svc.bootstrap_admin(settings.admin_key)
        if issued is not None:
            lines.append(f"Admin API key (shown once, store it now): {issued.key}")
            if load_catalog(settings).vendors["demo"].configured:
                await svc.credit(issued.record.account_id, _usd(DEMO_CREDIT_USD), "demo credit")
                lines.append(f"Demo provider on (no provider credentials set); account credited ${DEMO_CREDIT_USD} of demo balance.")
    finally:
        await store.close()
    return lines


# -- keys / accounts / models / usage -----------------------------------------------------------
def cmd_keys(args: argparse.Namespace) -> int:
    async def run(svc: AccountsService) -> int:
        if args.action == "create":
            issued = await svc.create_key(
                args.account, name=args.name or "", role="admin" if args.admin else "user",
                spend_cap_micros=_usd(args.spend_cap_usd) if args.spend_cap_usd else None,
                allowed_models=args.models.split(",") if args.models else (),
                limits=Limits(args.rpm, args.tpm, args.concurrency),
                expires_at=args.expires_at)
            print(f"key id {issued.record.id} for account {issued.record.account_id} (shown once):")
            print(issued.key)
        elif args.action == "list":
            for k in await svc.store.list_keys(args.account):
                state = "revoked" if k.revoked else "active"
                print(f"{k.id:>4}  {k.prefix:<20} account={k.account_id} role={k.role} {state} "
                      f"spent=${k.spent_micros / 1e6:.6f} name={k.name!r}")
        else:
            ok = await svc.revoke_key(args.id)
            print("revoked" if ok else "already revoked")
        return 0
    return _with_accounts(args, run)


def cmd_accounts(args: argparse.Namespace) -> int:
    async def run(svc: AccountsService) -> int:
        if args.action == "create":
            acc = await svc.create_account(args.name, markup_bps=args.markup_bps or 0,
                                           initial_micros=_usd(args.balance_usd) if args.balance_usd else 0)
            print(f"account {acc.id} {acc.name!r} balance ${acc.balance_micros / 1e6:.6f}")
        elif args.action == "list":
            for a in await svc.store.list_accounts():
                print(f"{a.id:>4}  {a.name:<20} balance=${a.balance_micros / 1e6:.6f} "
                      f"reserved=${a.reserved_micros / 1e6:.6f} spent=${a.spent_micros / 1e6:.6f}")
        else:
            fn = svc.credit if args.action == "credit" else svc.debit
            acc = await fn(args.id, _usd(args.amount_usd), args.note or "")
            print(f"account {acc.id} balance ${acc.balance_micros / 1e6:.6f}")
        return 0
    return _with_accounts(args, run)


def cmd_models(args: argparse.Namespace) -> int:
    from .routing.learned.profiles import profile_source
    catalog = load_catalog(_settings(args))
    print(f"{'model':<28} {'provider':<10} {'context':>9} {'in $/M':>8} {'out $/M':>8}  auto profile")
    for m in catalog.available():
        print(f"{m.id:<28} {m.provider:<10} {m.context_window:>9} {m.price.input_micros_per_mtok / 1e6:>8.3f} "
              f"{m.price.output_micros_per_mtok / 1e6:>8.3f}  {profile_source(m.id)}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="routerone", description="Router One: a self-hostable LLM router")
    p.add_argument("--config", help="TOML or YAML config file (also ROUTERONE_CONFIG)")
    p.add_argument("--database-url", dest="database_url", help="sqlite:///file.db or postgresql://...")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("serve", help="run the gateway")
    s.add_argument("--host")
    s.add_argument("--port", type=int)
    s.add_argument("--workers", type=int, help="processes sharing the port (needs the Redis limiter)")
    s.set_defaults(func=cmd_serve)

    k = sub.add_parser("keys", help="create, list or revoke API keys")
    ks = k.add_subparsers(dest="action", required=True)
    kc = ks.add_parser("create")
    kc.add_argument("--account", type=int, required=True)
    kc.add_argument("--name")
    kc.add_argument("--admin", action="store_true")
    kc.add_argument("--spend-cap-usd")
    kc.add_argument("--models", help="comma-separated allowlist")
    kc.add_argument("--rpm", type=int)
    kc.add_argument("--tpm", type=int)
    kc.add_argument("--concurrency", type=int)
    kc.add_argument("--expires-at", type=float, help="unix time")
    kl = ks.add_parser("list")
    kl.add_argument("--account", type=int)
    kr = ks.add_parser("revoke")
    kr.add_argument("id", type=int)
    k.set_defaults(func=cmd_keys)

    a = sub.add_parser("accounts", help="create and list accounts, credit or debit balances")
    acs = a.add_subparsers(dest="action", required=True)
    ac = acs.add_parser("create")
    ac.add_argument("name")
    ac.add_argument("--balance-usd")
    ac.add_argument("--markup-bps", type=int)
    acs.add_parser("list")
    for action in ("credit", "debit"):
        x = acs.add_parser(action)
        x.add_argument("id", type=int)
        x.add_argument("amount_usd")
        x.add_argument("--note")
    a.set_defaults(func=cmd_accounts)

    m = sub.add_parser("models", help="list the models this configuration serves")
    m.set_defaults(func=cmd_models)
    routing_commands.register(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except SettingsError as exc:
        print(f"routerone: configuration error: {exc}", file=sys.stderr)
        return 2
    except RouterOneError as exc:
        print(f"routerone: {exc.message}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
