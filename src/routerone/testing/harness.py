"""Run a real Router One on a real socket for tests (in a background thread), plus admin helpers."""
from __future__ import annotations

import json
import urllib.error
import urllib.request
import uuid
from typing import Any

from ..app import create_app
from ..settings import ProviderSettings, Settings
from .threaded import ThreadedServer

__all__ = ["Gateway", "ADMIN_KEY"]

ADMIN_KEY = "sk-ro-test-admin-key-0123456789abcdef"


class Gateway(ThreadedServer):
    """`with Gateway(settings) as gw: OpenAI(base_url=gw.base_url, api_key=gw.new_key()[0])`."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings.replace(admin_key=settings.admin_key or ADMIN_KEY)
        super().__init__(lambda: create_app(self.settings))

    @classmethod
    def for_upstreams(cls, db_path: str, providers: dict[str, tuple[str, str]], **overrides: Any) -> "Gateway":
        """providers: name -> (base_url, api_key) of fake upstreams."""
        conf = {n: ProviderSettings(api_key=k, base_url=u) for n, (u, k) in providers.items()}
        base = dict(database_url=f"sqlite:///{db_path}", demo="off", providers=conf,
                    usage_flush_interval_s=0.05)
        base.update(overrides)
        return cls(Settings(**base))

    @property
    def base_url(self) -> str:
        return self.url + "/v1"

    @property
    def runtime(self):
        from ..http.runtime import RUNTIME
        return self.app[RUNTIME]   # type: ignore[index]

    def admin(self, method: str, path: str, body: dict | None = None) -> dict:
        req = urllib.request.Request(self.url + path, method=method,
                                     data=json.dumps(body).encode() if body is not None else None,
                                     headers={"Authorization": f"Bearer {self.settings.admin_key}",
                                              "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                return json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            raise AssertionError(f"admin {method} {path} -> {exc.code}: {exc.read()!r}") from None

    def new_key(self, balance_micros: int = 10_000_000, **key_opts: Any) -> tuple[str, int]:
        """A fresh account funded with `balance_micros` and a user key on it: (secret, account_id)."""
        name = f"test-{uuid.uuid4().hex[:12]}"         # account names are unique
        acc = self.admin("POST", "/admin/accounts", {"name": name, "balance_micros": balance_micros})["data"]
        key = self.admin("POST", "/admin/keys", {"account_id": acc["id"], **key_opts})["data"]
        return key["key"], acc["id"]

    def account(self, account_id: int) -> dict:
        return self.admin("GET", f"/admin/accounts/{account_id}")["data"]
