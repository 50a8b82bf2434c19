"""`routerone serve | keys | accounts | models | usage | copy-database | eval-routing | train-router` (thin: calls
services).

Every mistake an operator can make (arguments, config, catalog, environment) ends in one line on
stderr naming the culprit and exit code 2; `--debug` (anywhere on the line) shows the traceback.
`models` (and `models --all`) exits 1 when no model could be listed because a provider's discovery
failed (its box is down).
`--config`, `--database-url` and `--debug` are accepted before or after any subcommand.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import re
import sys
import time
import traceback
from typing import Awaitable, Callable, NoReturn

from .billing.pricebook import genai_prices_version, vendor_models
from .billing.prices import usd_to_micros
from .catalog import Catalog, load_catalog
from .cli_errors import (explain, int_between, model_list, number_between, one_of, or_default, or_none,
                         require_database, row_id, text, text_of_length)
from .cli_usage import add_usage_parser, print_usage, usage_rows
from .console import cli as console_cli
from .errors import InvalidRequest, RouterOneError
from .providers.discovery import discover_once
from .routing import commands as routing_commands
from .routing.learned.profiles import ProfileRouter, RouterFileError, profile_source
from . import audit_cli, copy_cli
from .server import serve
from .services.accounts import (DEFAULT_STRATEGIES, DEMO_CREDIT_NOTE, MAX_EXPIRES_AT, MAX_INT32, MAX_MARKUP_BPS,
                                AccountsService)
from .settings import Settings, SettingsError, load_settings
from .store.base import UNSET, ApiKey, Limits, UsageQuery
from .store.bounds import MAX_AMOUNT_MICROS
from .store.factory import open_store

__all__ = ["main", "build_parser"]

DEMO_CREDIT_USD = "10"


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (and exit 2), not the whole usage text."""

    def error(self, message: str, prog: str | None = None) -> NoReturn:
        prog = prog or self.prog
        sys.stderr.write(f"{prog}: error: {message} (see {prog} --help)\n")
        raise SystemExit(2)

    def parse_args(self, args=None, namespace=None):   # type: ignore[override]
        """An unknown flag names the subcommand whose help lists the real ones (argparse reports it
        from the top-level parser: `keys update --tpm 5` said `see routerone --help`)."""
        ns, extras = self.parse_known_args(args, namespace)
        if extras:
            self.error(f"unrecognized arguments: {' '.join(extras)}", getattr(ns, "_prog", None))
        return ns


_USD_TEXT = re.compile(r"[0-9]+(\.[0-9]+)?")    # ASCII digits: not "١٠٠" or "1_0", which Decimal reads as 100 and 10


def _usd(value: str) -> int:
    try:
        if not _USD_TEXT.fullmatch(value):
            raise ValueError(value)
        micros = usd_to_micros(value, what="amount")
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{value!r} is not a USD amount (a number >= 0 with at most 6 decimals, e.g. 2.50)") from None
    if micros > MAX_AMOUNT_MICROS:     # also the largest balance and spend cap (store.bounds)
        raise argparse.ArgumentTypeError(f"{value!r} is more than the largest amount accepted "
                                         f"({MAX_AMOUNT_MICROS // 10**6:,} USD)")
    return micros


def _usd_above_zero(value: str) -> int:
    micros = _usd(value)
    if micros == 0:
        raise argparse.ArgumentTypeError(f"{value!r} is not an amount to move (more than 0 USD, e.g. 2.50)")
    return micros


# the service's own bounds, checked here so that a mistake names the flag and exits 2 (usage error)
_limit = int_between(1, MAX_INT32, "a limit; leave it out for none")
_new_limit = int_between(1, MAX_INT32, "a limit")
KEYS_LIST_PAGE = 500           # `keys list` reads this many keys at a time, printing as it goes
_name = text_of_length(0, 200, "a name")


def _settings(args: argparse.Namespace) -> Settings:
    over = {k: getattr(args, k) for k in ("host", "port", "workers", "database_url") if getattr(args, k, None) is not None}
    settings = load_settings(getattr(args, "config", None), **over)
    args._settings = settings   # for error messages
    return settings


def _with_accounts(args: argparse.Namespace, fn: Callable[[AccountsService], Awaitable[int]],
                   models: tuple[str, ...] = (), making: str | None = None) -> int:
    """`models`: a key's allowlist, checked against this configuration's catalog (and, when a name is
    not in it, against what the providers' discovery lists). `making`: what may start a new database."""
    settings = _settings(args)
    require_database(settings.database_url, making=making)
    catalog = load_catalog(settings) if models else None

    async def run() -> int:
        failed = await discover_once(catalog) if catalog is not None and catalog.unknown_models(models) else {}
        store = open_store(settings.database_url)
        try:
            await store.migrate()
            return await fn(AccountsService(store, catalog=catalog))
        except InvalidRequest as exc:
            if exc.param == "allowed_models":
                _say_models_flag(exc, failed, read_config=bool(getattr(args, "config", None)
                                                               or os.environ.get("ROUTERONE_CONFIG")))
            raise
        finally:
            await store.close()
    return asyncio.run(run())


def _say_models_flag(exc: InvalidRequest, failed: dict[str, str], *, read_config: bool) -> None:
    """The service's refusal of a key's allowlist, said with the flag (not the admin API's field) and,
    when a provider's model list could not be read (the box is down), which one and why; with no
    configuration file read, that the models of the providers `serve --config` names are unknown here."""
    exc.message = exc.message.replace("'allowed_models'", "--models", 1)
    if failed:
        exc.message += "; model discovery failed: " + "; ".join(f"provider {p}: {err}" for p, err in failed.items())
    if not read_config:
        exc.message += ("; no configuration was read: give this command the --config (or ROUTERONE_CONFIG) "
                        "that serve runs with, so that its providers' models are known")


# -- serve ----------------------------------------------------------------------------------------
def cmd_serve(args: argparse.Namespace) -> int:
    settings = _settings(args)
    for warning in load_catalog(settings).warnings:     # catalog errors stop here, before binding
        print(f"routerone: warning: {warning}", file=sys.stderr)
    ProfileRouter.load()          # so do the router's files (RouterFileError: one line, exit 2)
    return serve(settings, bootstrap=_bootstrap)


async def _bootstrap(settings: Settings) -> list[str]:
    """First start: admin account + admin key (printed once), demo credit when the demo provider is on;
    a start with the demo off takes back what is left of that credit (once: nothing is left then)."""
    store = open_store(settings.database_url)
    lines: list[str] = []
    try:
        await store.migrate()
        svc = AccountsService(store)
        # the demo credit is for the account the first start makes, once: not for a customer's
        # account made with the CLI before it, nor again each time a new admin_key is registered
        first_start = not await store.has_accounts()
        issued = await svc.bootstrap_admin(settings.admin_key)
        if issued is not None:
            lines.append(f"Admin API key (shown once, store it now): {issued.key}" if settings.admin_key is None
                         else "Admin API key: the one set in the configuration (admin_key) is registered.")
        demo_on = load_catalog(settings).vendors["demo"].configured
        if issued is not None and first_start and demo_on:
            await svc.credit(issued.record.account_id, _usd(DEMO_CREDIT_USD), DEMO_CREDIT_NOTE)
            lines.append(f"Demo provider on (no provider configured); account credited ${DEMO_CREDIT_USD} of demo balance.")
        elif not demo_on and (taken := await svc.withdraw_demo_credit()) is not None:
            dollars, micros = divmod(taken[1], 1_000_000)
            lines.append(f"Demo provider off: the unspent ${dollars}.{micros:06d} of demo credit was withdrawn "
                         "from the admin account (a ledger debit).")
    finally:
        await store.close()
    return lines


# -- keys / accounts / models / usage -----------------------------------------------------------
def cmd_keys(args: argparse.Namespace) -> int:
    async def run(svc: AccountsService) -> int:
        if args.action == "create":
            issued = await svc.create_key(
                args.account, name=args.name or "", role="admin" if args.admin else "user",
                spend_cap_micros=args.spend_cap_usd, allowed_models=args.models or (),
                limits=Limits(args.rpm, args.tpm, args.concurrency), expires_at=args.expires_at,
                strategy=args.strategy, willingness_to_pay=args.willingness_to_pay)
            print(f"key id {issued.record.id} for account {issued.record.account_id} (shown once):")
            print(issued.key)
        elif args.action == "update":
            return await _update_key(svc, args)
        elif args.action == "list":
            after: int | None = None
            while page := await svc.store.list_keys(args.account, KEYS_LIST_PAGE, after_id=after):
                for k in page:
                    state = "revoked" if k.revoked else "active"
                    print(f"{k.id:>4}  {k.prefix:<20} account={k.account_id} role={k.role} {state} "
                          f"spent=${k.spent_micros / 1e6:.6f} name={_name_column(k.name)} {_key_bounds(k)}")
                after = page[-1].id
        else:
            ok = await svc.revoke_key(args.id)
            print("revoked" if ok else "already revoked")
        return 0
    models = getattr(args, "models", None)        # create: a list or None; update: a list, None or UNSET
    return _with_accounts(args, run, models=models if isinstance(models, tuple) else ())


_KEY_UPDATE_FLAGS = {"name": "--name", "strategy": "--strategy", "willingness_to_pay": "--willingness-to-pay",
                     "spend_cap_micros": "--spend-cap-usd", "expires_at": "--expires-at", "models": "--models",
                     "rpm": "--rpm", "tpm": "--tpm", "concurrency": "--concurrency"}
_LIMIT_NAMES = ("rpm", "tpm", "concurrency")


async def _update_key(svc: AccountsService, args: argparse.Namespace) -> int:
    given = {f: getattr(args, f) for f in _KEY_UPDATE_FLAGS if getattr(args, f) is not UNSET}
    if not given:
        print(f"routerone keys update: error: nothing to change (give {', '.join(_KEY_UPDATE_FLAGS.values())})",
              file=sys.stderr)
        return 2
    if "models" in given:           # `--models none`: no allowlist, every model
        given["allowed_models"] = given.pop("models") or ()
    limits = {n: given.pop(n) for n in _LIMIT_NAMES if n in given}     # `--rpm none`: no limit
    k = await svc.update_key(args.id, limits=limits or None, **given)
    models = f" models={','.join(k.allowed_models) or 'any'}" if "allowed_models" in given else ""
    shown = (" rpm={} tpm={} concurrency={}".format(*("-" if n is None else n for n in (
        k.limits.rpm, k.limits.tpm, k.limits.concurrency))) if limits else "")
    print(_key_routing(k) + models + shown)
    return 0


def _key_bounds(k: ApiKey) -> str:
    """What a key may do and how `auto` routes for it, after `keys list`'s older columns (scripts read
    those by position)."""
    lim = k.limits
    cap = "none" if k.spend_cap_micros is None else f"${k.spend_cap_micros / 1e6:.6f}"
    expires = "never" if k.expires_at is None else time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(k.expires_at))
    rpm, tpm, concurrency = ("-" if n is None else n for n in (lim.rpm, lim.tpm, lim.concurrency))
    return (f"models={','.join(k.allowed_models) or 'any'} rpm={rpm} tpm={tpm} concurrency={concurrency} "
            f"cap={cap} expires={expires} {_routing_columns(k)}")


def _key_routing(k: ApiKey) -> str:
    return f"key {k.id} name={_name_column(k.name)} {_routing_columns(k)}"


def _routing_columns(k: ApiKey) -> str:
    wtp = "default" if k.willingness_to_pay is None else f"{k.willingness_to_pay:g}"
    return f"strategy={k.strategy or 'default'} willingness_to_pay={wtp}"


def _printable(text: str) -> str:
    """A name as the terminal may show it: control characters (an escape sequence that clears the
    screen or writes the clipboard) as their escapes, the way `keys list` shows names (repr)."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def cmd_accounts(args: argparse.Namespace) -> int:
    async def run(svc: AccountsService) -> int:
        if args.action == "create":
            acc = await svc.create_account(args.name, markup_bps=args.markup_bps or 0,
                                           initial_micros=args.balance_usd or 0)
            print(f"account {acc.id} {acc.name!r} balance ${acc.balance_micros / 1e6:.6f}")
        elif args.action == "list":
            for a in await svc.store.list_accounts():
                print(f"{a.id:>4}  {_printable(a.name):<20} balance=${a.balance_micros / 1e6:.6f} "
                      f"reserved=${a.reserved_micros / 1e6:.6f} spent=${a.spent_micros / 1e6:.6f}")
        else:
            fn = svc.credit if args.action == "credit" else svc.debit
            acc = await fn(args.id, args.amount_usd, args.note or "")
            print(f"account {acc.id} balance ${acc.balance_micros / 1e6:.6f}")
        return 0
    return _with_accounts(args, run, making="account" if args.action == "create" else None)


def _name_column(name: str) -> str:
    """A key's name as one whitespace-free column: repr() (other whitespace is escaped already) with
    a space as \\x20, still a Python literal that ast.literal_eval reads back."""
    return repr(name).replace(" ", "\\x20")


def _money(micros: int) -> str:
    return f"{micros / 1e6:.3f}" if micros % 1000 == 0 else f"{micros / 1e6:.6f}"


def _models_table(catalog: Catalog) -> list[list[str]]:
    rows = []
    for m in sorted(catalog.available(), key=lambda m: (m.provider, m.id)):
        rows.append([m.id, m.provider, str(m.context_window), _money(m.price.input_micros_per_mtok),
                     _money(m.price.output_micros_per_mtok), m.price_source, m.profile, profile_source(m.id)])
    return rows


def _all_table(catalog: Catalog) -> list[list[str]]:
    served = {(d.vendor.name, d.upstream_model) for m in catalog.available() for d in m.deployments}
    rows = []
    for e in catalog.providers.values():
        if not e.vendor.configured or e.name == "demo":
            continue
        for mid, price in vendor_models(e.prices_id):
            rows.append([mid, e.name, "on" if (e.name, mid) in served else "-",
                         _money(price.input_micros_per_mtok), _money(price.output_micros_per_mtok)])
    return rows


def _print_table(header: list[str], rows: list[list[str]], right_from: int) -> None:
    body = [header, *rows]
    widths = [max(len(r[i]) for r in body) for i in range(len(header))]
    for r in body:
        print("  ".join(c.rjust(w) if right_from <= i < right_from + 3 else c.ljust(w)
                        for i, (c, w) in enumerate(zip(r, widths))).rstrip())


def cmd_models(args: argparse.Namespace) -> int:
    catalog = load_catalog(_settings(args))
    for warning in catalog.warnings:
        print(f"routerone: warning: {warning}", file=sys.stderr)
    failed = asyncio.run(discover_once(catalog))
    for name, err in failed.items():
        print(f"routerone: warning: provider {name}: model discovery failed: {err}", file=sys.stderr)
    try:
        ProfileRouter.load()
    except RouterFileError as exc:      # the listing still shows what is served; `serve` refuses to start
        print(f"routerone: warning: {exc} (auto profile: unavailable; serve will not start)", file=sys.stderr)
    rows = _all_table(catalog) if args.all else _models_table(catalog)
    if not rows and failed:     # a box down: was a bare header and exit 0, as if listing had worked
        print(f"routerone: no model could be listed: model discovery failed at {', '.join(failed)} "
              "(see the warnings above); nothing is served from there until it answers", file=sys.stderr)
        return 1
    if args.all:
        _print_table(["model", "provider", "served", "in $/M", "out $/M"], rows, 2)
        print(f"{len(rows)} priced models at the configured providers (prices: genai-prices "
              f"{genai_prices_version()}); enable more with [providers.<name>] models = [...]")
        return 0
    _print_table(["model", "provider", "context", "in $/M", "out $/M", "price", "profile", "auto profile"], rows, 2)
    return 0


def cmd_usage(args: argparse.Namespace) -> int:
    settings = _settings(args)
    if args.since is not None and args.until is not None and args.since >= args.until:
        print("routerone usage: error: --since must be before --until (--until is exclusive); nothing "
              "can match", file=sys.stderr)      # was an empty table, as if nothing had been used
        return 2
    require_database(settings.database_url)

    async def run() -> list[list]:
        store = open_store(settings.database_url)
        try:
            await store.migrate()
            q = UsageQuery(account_id=args.account, key_id=args.key, model=args.model, since=args.since,
                           until=args.until)
            return await usage_rows(store, q, args.by)
        finally:
            await store.close()
    print_usage(asyncio.run(run()), args.by, args.format)
    return 0


def _common(p: argparse.ArgumentParser, top: bool) -> None:
    d = None if top else argparse.SUPPRESS      # a subcommand's copy never hides the top-level value
    p.add_argument("--config", default=d, type=text_of_length(1, 4096, "a config file path"),
                   help="TOML or YAML config file (also ROUTERONE_CONFIG)")
    p.add_argument("--database-url", dest="database_url", default=d, help="sqlite:///file.db or postgresql://...")
    p.add_argument("--debug", action="store_true", default=False if top else argparse.SUPPRESS,
                   help="show tracebacks")


def _everywhere(p: argparse.ArgumentParser) -> None:
    for action in p._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in action.choices.values():
                _common(child, top=False)
                child.set_defaults(_prog=child.prog)     # the deepest one parsed: whose --help to point at
                _everywhere(child)


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="routerone", description="Router One: a self-hostable LLM router")
    _common(p, top=True)
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    s = sub.add_parser("serve", help="run the gateway")
    s.add_argument("--host", type=text, help="address to listen on (default 127.0.0.1, or `host`)")
    s.add_argument("--port", type=int, help="TCP port (default 8080, or `port`)")
    s.add_argument("--workers", type=int, help="processes sharing the port (limits shared through shared memory, or Redis)")
    s.set_defaults(func=cmd_serve)

    k = sub.add_parser("keys", help="create, update, list or revoke API keys")
    ks = k.add_subparsers(dest="action", required=True, parser_class=_Parser)
    kc = ks.add_parser("create", help="create a key for an account; prints its secret once")
    kc.add_argument("--account", type=row_id, required=True, help="account id (routerone accounts list)")
    kc.add_argument("--name", type=_name, help="a label for the key (shown in keys list, the console, usage)")
    kc.add_argument("--admin", action="store_true", help="an admin key: may call the admin API (/admin/...)")
    kc.add_argument("--spend-cap-usd", type=_usd, metavar="USD",
                    help="the most the key may ever spend, in USD (default: no cap)")
    kc.add_argument("--models", type=model_list, help="comma-separated allowlist, e.g. gpt-4o-mini,auto")
    kc.add_argument("--rpm", type=_limit, help="requests per minute")
    kc.add_argument("--tpm", type=_limit, help="tokens per minute")
    kc.add_argument("--concurrency", type=_limit, help="requests at once")
    kc.add_argument("--expires-at", type=number_between(0, MAX_EXPIRES_AT, "a unix time in seconds"),
                    help="unix time in seconds")
    kc.add_argument("--strategy", type=one_of(DEFAULT_STRATEGIES, "a routing strategy"),
                    help=f"routing strategy for `auto` with this key ({', '.join(DEFAULT_STRATEGIES)}); "
                         "default: the gateway's routing_strategy")
    kc.add_argument("--willingness-to-pay", dest="willingness_to_pay",
                    type=number_between(0, 1, "a willingness to pay"),
                    help="`auto`'s knob for this key, 0 (cheapest) .. 1 (strongest); default: the gateway's")
    ku = ks.add_parser("update", help="change a key's name, strategy, willingness to pay, limits, spend cap, "
                                      "expiry or model allowlist (same secret)")
    ku.add_argument("id", type=row_id, help="key id (routerone keys list)")
    ku.add_argument("--spend-cap-usd", dest="spend_cap_micros", default=UNSET, type=or_none(_usd), metavar="USD",
                    help="the most the key may ever spend, in USD, or 'none' to remove the cap")
    ku.add_argument("--expires-at", dest="expires_at", default=UNSET,
                    type=or_none(number_between(0, MAX_EXPIRES_AT, "a unix time in seconds")),
                    help="unix time in seconds, or 'none': never expires")
    ku.add_argument("--models", default=UNSET, type=or_none(model_list),
                    help="comma-separated allowlist (replaces the key's), e.g. gpt-4o-mini,auto; "
                         "'none': every model")
    ku.add_argument("--name", type=_name, default=UNSET, help="a label for the key")
    for flag, what in (("--rpm", "requests per minute"), ("--tpm", "tokens per minute"),
                       ("--concurrency", "requests at once")):
        ku.add_argument(flag, default=UNSET, type=or_none(_new_limit), help=f"{what}, or 'none': no limit")
    ku.add_argument("--strategy", default=UNSET, type=or_default(one_of(DEFAULT_STRATEGIES, "a routing strategy")),
                    help=f"routing strategy for `auto` ({', '.join(DEFAULT_STRATEGIES)}), or 'default'")
    ku.add_argument("--willingness-to-pay", dest="willingness_to_pay", default=UNSET,
                    type=or_default(number_between(0, 1, "a willingness to pay")),
                    help="`auto`'s knob for this key, 0 (cheapest) .. 1 (strongest), or 'default'")
    kl = ks.add_parser("list", help="list keys: id, prefix, account, state, spend, allowlist, limits, cap, expiry")
    kl.add_argument("--account", type=row_id, help="only this account's keys")
    kr = ks.add_parser("revoke", help="revoke a key (running gateways refuse it within about a second)")
    kr.add_argument("id", type=row_id, help="key id (routerone keys list)")
    k.set_defaults(func=cmd_keys)

    a = sub.add_parser("accounts", help="create and list accounts, credit or debit balances")
    acs = a.add_subparsers(dest="action", required=True, parser_class=_Parser)
    ac = acs.add_parser("create", help="create an account (a prepaid balance that keys spend)")
    ac.add_argument("name", type=text_of_length(1, 200, "an account name"), help="its name (unique, ignoring case)")
    ac.add_argument("--balance-usd", type=_usd, metavar="USD", help="initial balance in USD (default 0)")
    ac.add_argument("--markup-bps", type=int_between(0, MAX_MARKUP_BPS, "a markup in basis points"),
                    help="charge this account the provider's price plus this markup, in basis points "
                         "(100 = 1%%; default 0)")
    acs.add_parser("list", help="list accounts with balance, reserved and spent")
    for action, what in (("credit", "add USD to an account's balance (a top-up)"),
                         ("debit", "take USD from an account's available balance")):
        x = acs.add_parser(action, help=what)
        x.add_argument("id", type=row_id, help="account id (routerone accounts list)")
        x.add_argument("amount_usd", type=_usd_above_zero, help="USD, e.g. 2.50 (at most 6 decimals)")
        x.add_argument("--note", type=text_of_length(0, 1000, "a note"), help="kept in the account's ledger")
    a.set_defaults(func=cmd_accounts)

    m = sub.add_parser("models", help="list the models this configuration serves")
    m.add_argument("--all", action="store_true", help="every priced model of the configured providers")
    m.set_defaults(func=cmd_models)
    add_usage_parser(sub, cmd_usage)
    routing_commands.register(sub)
    audit_cli.register(sub)
    copy_cli.register(sub)
    console_cli.register(sub, _settings)      # `console-user create`
    _everywhere(p)
    return p


def _quiet_stdout() -> None:
    """After EPIPE, point stdout at /dev/null so that the interpreter's last flush does not fail too."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:           # `routerone usage | head`: the reader left; not a database error
        _quiet_stdout()
        return 1
    except RouterOneError as exc:     # the service refused: an operator's mistake (no such account, ...)
        if args.debug:
            traceback.print_exc()
        print(f"routerone: {exc.message}", file=sys.stderr)
        return 2 if exc.status < 500 else 1
    except Exception as exc:  # noqa: BLE001 - operator mistakes become one line; real bugs keep the traceback
        line = explain(exc, getattr(args, "_settings", None), getattr(getattr(args, "_settings", None), "port", None))
        if line is None or args.debug:
            traceback.print_exc()
        if line is None:
            return 1
        print(f"routerone: {line}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
