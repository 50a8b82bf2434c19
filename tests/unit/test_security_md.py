"""SECURITY.md's table of limits and timeouts says what the code does: every setting it names exists,
with the default it gives."""
from __future__ import annotations

import dataclasses
import re
from pathlib import Path

from routerone.settings import Settings

ROW = re.compile(r"^\| (`[a-z_]+`(?:, `[a-z_]+`)*) \| ([^|]+) \|", re.M)


def test_every_limit_in_security_md_matches_the_settings_default():
    text = (Path(__file__).resolve().parents[2] / "SECURITY.md").read_text()
    defaults = {f.name: f.default for f in dataclasses.fields(Settings)}
    rows = ROW.findall(text)
    assert len(rows) >= 20
    for names, default in rows:
        for name in re.findall(r"`([a-z_]+)`", names):
            assert name in defaults, f"SECURITY.md names {name}, which is not a setting"
            assert str(defaults[name]) == default.strip(), f"{name}: SECURITY.md says {default.strip()}, " \
                                                           f"the code {defaults[name]}"
    for name in ("client_header_timeout_s", "client_body_timeout_s", "client_write_timeout_s",
                 "max_in_flight_requests", "max_body_bytes_in_flight", "max_messages", "max_json_values",
                 "auth_failures_per_ip_per_minute"):
        assert f"`{name}`" in text
    assert str(Settings().max_in_flight_requests) in text
