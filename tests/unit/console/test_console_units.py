"""Console pieces without a browser: sign-in throttling in bounded memory, password hashing,
activity roll-ups, form parsing, invisible characters in names, and the `routerone console-user
create` command."""
from __future__ import annotations

import asyncio

import pytest

from routerone.cli import main
from routerone.console import security
from routerone.console.activity import build_activity, pick_range
from routerone.console import forms
from routerone.console.paging import name_matches
from routerone.console.web import clip, make_templates
from routerone.errors import InvalidRequest
from routerone.store.base import UsageBucket
from routerone.store.sqlite import SQLiteStore


def test_throttle_blocks_after_max_failures_until_the_window_passes() -> None:
    t = security.Throttle(max_failures=3, window_s=60)
    for i in range(3):
        assert t.retry_after_s("email:a", now=100.0 + i) == 0
        t.failed("email:a", now=100.0 + i)
    assert t.retry_after_s("email:a", now=103.0) == pytest.approx(57.0)
    assert t.retry_after_s("email:b", now=103.0) == 0
    assert t.retry_after_s("email:a", now=160.5) == 0        # the first failure left the window
    t.succeeded("email:a")
    assert t.retry_after_s("email:a", now=104.0) == 0


def test_throttle_memory_is_bounded() -> None:
    t = security.Throttle(max_failures=5, window_s=60, max_keys=100)
    for i in range(10_000):
        t.failed(f"ip:{i}", now=1.0)
    assert len(t) == 100
    assert t.retry_after_s("ip:9999", now=1.0) == 0 and "ip:9999" in t._failures
    assert "ip:0" not in t._failures                          # the oldest were forgotten


def test_the_address_throttle_counts_ipv4_addresses_and_ipv6_64s() -> None:
    block = security.address_block
    assert block("203.0.113.7") == "203.0.113.7"
    assert block("2001:db8:1:2::1") == block("2001:db8:1:2:ffff:ffff:ffff:ffff") == "2001:db8:1:2::/64"
    assert block("2001:db8:1:3::1") != block("2001:db8:1:2::1")
    assert block("::ffff:203.0.113.7") == "203.0.113.7"          # IPv4-mapped: the IPv4 address
    assert block("fe80::1%eth0") == "fe80::/64"
    assert block("unknown") == "unknown" and block("") == ""


def test_passwords_hash_with_argon2id_and_verify() -> None:
    h = asyncio.run(security.hash_password("correct horse battery"))
    assert h.startswith("$argon2id$")
    assert asyncio.run(security.verify_password(h, "correct horse battery"))
    assert not asyncio.run(security.verify_password(h, "wrong"))
    assert not asyncio.run(security.verify_password(None, "anything"))
    assert not asyncio.run(security.verify_password("not-a-hash", "x"))
    with pytest.raises(security.PasswordProblem):
        security.check_new_password("short")


def test_activity_fills_every_bucket_and_groups_by_model_and_key() -> None:
    rng, since, until, bucket_s = pick_range("24h", None, now=86_400 * 10 + 1_800)
    assert (rng, bucket_s, until - since) == ("24h", 3_600, 86_400)
    buckets = [UsageBucket(until - 3_600, "m1", 1, 2, 1, 10, 5, 300),
               UsageBucket(until - 7_200, "m2", 1, 1, 0, 3, 2, 100),
               UsageBucket(until - 3_600, "m2", 2, 1, 0, 1, 1, 50)]
    act = build_activity(buckets, since=since, until=until, bucket_s=bucket_s, key_names={1: "laptop"})
    assert len(act.times) == 24 and act.times[-1] == until - 3_600
    assert act.requests[-1] == 3 and act.requests[-2] == 1 and sum(act.requests) == 4
    assert act.cost_usd[-1] == pytest.approx(350 / 1e6)
    assert [(r.name, r.cost_micros) for r in act.by_model] == [("m1", 300), ("m2", 150)]
    assert [(r.name, r.requests) for r in act.by_key] == [("laptop", 3), ("key 2", 1)]
    assert (act.totals.requests, act.totals.errors, act.totals.tokens, act.totals.cost_micros) == (4, 1, 22, 450)
    assert pick_range("bogus", "day", now=0)[0] == "7d"


def test_form_fields_give_clear_errors() -> None:
    assert forms.opt_usd({"x": "$2.50"}, "x") == 2_500_000
    assert forms.opt_usd({"x": ""}, "x") is None
    for bad in ("-1", "abc", "0.0000001", "1e9"):
        with pytest.raises(InvalidRequest):
            forms.opt_usd({"x": bad}, "x")
    with pytest.raises(InvalidRequest):
        forms.usd_amount({"x": "0"}, "x")
    with pytest.raises(InvalidRequest):
        forms.opt_int({"rpm": "0"}, "rpm")
    assert forms.opt_date({"d": "2030-01-02"}, "d") == 1_893_542_400.0
    with pytest.raises(InvalidRequest):
        forms.opt_date({"d": "02/01/2030"}, "d")
    assert forms.model_list({"m": "a, b,a"}, "m", {"a", "b"}) == ("a", "b")
    with pytest.raises(InvalidRequest):
        forms.model_list({"m": "a, nope"}, "m", {"a"})


def test_form_numbers_are_ascii_digits() -> None:
    """Decimal and int read other scripts' digits and underscores: a top-up of "١٠٠" credited
    100 USD, "1_0" 10 (a typo of 1.0) and "1e2" 100; an rpm of "1_0" was 10. The CLI and the admin
    API refuse all of them; so does the console now."""
    for bad in ("\u0661\u0660\u0660", "1_0", "1e2", "1E2", "\uff11", "0x10", " 1 0"):
        with pytest.raises(InvalidRequest) as info:
            forms.opt_usd({"amount_usd": bad}, "amount_usd")
        assert info.value.param == "amount_usd"
    for bad in ("\u0661\u0660", "1_0", "\uff11"):
        with pytest.raises(InvalidRequest) as info:
            forms.opt_int({"rpm": bad}, "rpm")
        assert info.value.param == "rpm"
    assert forms.opt_usd({"x": " $12.50 "}, "x") == 12_500_000 and forms.opt_int({"x": "60"}, "x") == 60
    assert forms.opt_usd({"x": ".5"}, "x") == 500_000 and forms.opt_usd({"x": "3."}, "x") == 3_000_000


def test_cli_creates_the_operator_and_prints_the_password_once(tmp_path, capsys) -> None:
    db = f"sqlite:///{tmp_path / 'r1.db'}"
    assert main(["--database-url", db, "console-user", "create", "--email", "Ops@Example.com", "--operator"]) == 0
    out = capsys.readouterr().out
    assert "ops@example.com (operator)" in out
    password = out.split("initial password (shown once): ")[1].split()[0]

    async def check() -> tuple:
        store = SQLiteStore(str(tmp_path / "r1.db"))
        try:
            user = await store.console_user_by_email("ops@example.com")
            audit = await store.list_audit(10)
            return user, await security.verify_password(user.password_hash, password), audit
        finally:
            await store.close()
    user, ok, audit = asyncio.run(check())
    assert user.role == "operator" and ok and password not in user.password_hash
    assert [(a.actor, a.action) for a in audit] == [("cli", "console_user.create")]
    assert main(["--database-url", db, "console-user", "create", "--email", "ops@example.com"]) == 2  # refused: exit 2
    assert "already exists" in capsys.readouterr().err
    assert main(["--database-url", db, "console-user", "create", "--email", "not-an-email"]) == 2


def test_rollup_cache_reuses_the_closed_part_only_while_its_row_count_holds(tmp_path) -> None:
    from routerone.console.activity import RollupCache
    from routerone.store.base import UsageRecord

    def row(i: int, at: float) -> UsageRecord:
        return UsageRecord(f"r{i}", 1, 1, "auto", "m", "openai", prompt_tokens=1, completion_tokens=1,
                           cost_micros=10, created_at=at)

    async def run() -> None:
        store = SQLiteStore(str(tmp_path / "c.db"))
        await store.migrate()
        try:
            now = 100 * 3_600 + 1_000.0
            await store.insert_usage([row(i, 90 * 3_600 + i) for i in range(5)] + [row(9, now - 10)])
            cache = RollupCache(store, lag_s=300)
            since, until = 80 * 3_600.0, 101 * 3_600.0

            async def total() -> int:
                summary = await cache.rollup(1, since, until, 3_600, now)
                assert sum(b.requests for b in summary.by_key) == sum(b.requests for b in summary.by_time_model)
                return sum(b.requests for b in summary.by_time_model)
            assert await total() == 6 and (cache.hits, cache.misses) == (0, 1)
            assert await total() == 6 and (cache.hits, cache.misses) == (1, 1)
            await store.insert_usage([row(20, 85 * 3_600)])          # a late row in the closed part
            assert await total() == 7 and cache.misses == 2
            await store.insert_usage([row(21, now - 5)])             # a row in the open part
            assert await total() == 8 and cache.hits == 2
        finally:
            await store.close()
    asyncio.run(run())


INVISIBLE = ["\u200b", "\u200c", "\u200d", "\u200e", "\u200f", "\u2060", "\u2061", "\u2062", "\u2063",
             "\u2064", "\ufeff", "\u00ad", "\U000e0001", "\U000e0041", "\U000e007f", "\ufe00", "\ufe0f",
             "\U000e0100", "\U000e01ef", "\u202e", "\u2066", "\u115f", "\u3164", "\u034f", "\u180e"]


@pytest.mark.parametrize("ch", INVISIBLE, ids=[f"U+{ord(c):04X}" for c in INVISIBLE])
def test_an_invisible_character_in_a_name_is_shown_as_a_marker(ch) -> None:
    """`admin` and `ad<U+200B>min` (or a tag character, a variation selector, a soft hyphen) read
    the same in every list: a lookalike account, key or console user. They are shown as markers."""
    marker = f"\u27e8U+{ord(ch):04X}\u27e9"
    assert clip("ad" + ch + "min") == f"ad{marker}min" != clip("admin") == "admin"
    env = make_templates()                          # the markers are text: still escaped
    html = env.from_string("{{ name | clip }}|{{ name | reveal }}").render(name="<b>" + ch + "</b>")
    assert html == f"&lt;b&gt;{marker}&lt;/b&gt;|&lt;b&gt;{marker}&lt;/b&gt;"


def test_names_with_markers_are_clipped_whole_and_emoji_keep_their_joiners() -> None:
    shown = clip("\u200b" * 50, 100)                 # 50 invisible characters: 450 shown, clipped to 100
    assert len(shown) <= 100 and shown.endswith("\u27e9…") and shown.count("\u27e8") == shown.count("\u27e9")
    assert clip("x" * 99 + "\u200b") == "x" * 99 + "…"        # a marker is never cut in half
    assert clip("heart \u2764\ufe0f") == "heart \u2764\ufe0f"     # an emoji's presentation selector
    family = "\U0001f468\u200d\U0001f469\u200d\U0001f467"
    assert clip(family) == family and clip("a\u200d\U0001f469") == "a\u27e8U+200D\u27e9\U0001f469"
    assert clip("\u05e9\u05dc\u05d5\u05dd\u200f") == "\u2068\u05e9\u05dc\u05d5\u05dd\u27e8U+200F\u27e9\u2069"  # still isolated


def test_a_name_search_finds_names_with_invisible_characters() -> None:
    """Searching `admin` finds `ad<U+200B>min` too (the lookalike is what an operator looks for),
    and so does the name as shown, copied from a list."""
    assert name_matches("admin", "ad\u200bmin") and name_matches("ADMIN", "Admin")
    assert name_matches("ad\u27e8U+200B\u27e9min", "ad\u200bmin") and name_matches("ad\u200bmin", "ad\u200bmin")
    assert not name_matches("admin", "adm1n")
