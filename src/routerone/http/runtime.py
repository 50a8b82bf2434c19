"""What the handlers reach through `request.app[RUNTIME]`."""
from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from ..catalog import Catalog
from ..observability.metrics import Metrics
from ..services.accounts import AccountsService
from ..services.auth import Authenticator
from ..services.chat import ChatService
from ..settings import Settings

__all__ = ["Runtime", "RUNTIME"]


@dataclass(slots=True)
class Runtime:
    settings: Settings
    catalog: Catalog
    auth: Authenticator
    chat: ChatService
    accounts: AccountsService
    metrics: Metrics


RUNTIME: web.AppKey[Runtime] = web.AppKey("routerone", Runtime)
