"""Console users and sessions: create, sign in (throttled), look up a session, change a password,
sign out. No HTTP here: pages.py and the CLI call this."""
from __future__ import annotations

import time
from dataclasses import dataclass

from ..errors import InvalidRequest, NotFound, RateLimited
from ..store.base import ConsoleSession, ConsoleUser, Store
from . import security

__all__ = ["ConsoleUsers", "Viewer", "SignInRefused", "ROLES"]

ROLES = ("user", "operator")
SESSION_TTL_S = 12 * 3600


@dataclass(frozen=True, slots=True)
class Viewer:
    """Who is looking at a page: what templates may see (never a hash or a token)."""
    user_id: int
    email: str
    account_id: int
    role: str
    csrf: str
    session_hash: str

    @property
    def is_operator(self) -> bool:
        return self.role == "operator"

    @property
    def actor(self) -> str:
        return f"console:{self.email}"


class SignInRefused(Exception):
    def __init__(self, message: str, retry_after_s: float = 0.0) -> None:
        super().__init__(message)
        self.message = message
        self.retry_after_s = retry_after_s


def _email(raw: str) -> str:
    email = raw.strip().lower()
    local, at, domain = email.partition("@")
    if not at or not local or "." not in domain or len(email) > 254 or any(c.isspace() for c in email):
        raise InvalidRequest(f"'{raw[:80]}' is not an email address", param="email")
    return email


class ConsoleUsers:
    def __init__(self, store: Store, *, session_ttl_s: float = SESSION_TTL_S) -> None:
        self.store = store
        self.session_ttl_s = session_ttl_s
        self.by_email = security.Throttle(max_failures=5, window_s=900)
        self.by_ip = security.Throttle(max_failures=30, window_s=900)

    async def create(self, email: str, password: str, *, account_id: int, role: str = "user") -> ConsoleUser:
        if role not in ROLES:
            raise InvalidRequest(f"role must be one of {', '.join(ROLES)}", param="role")
        email = _email(email)
        try:
            security.check_new_password(password)
        except security.PasswordProblem as exc:
            raise InvalidRequest(str(exc), param="password") from None
        if await self.store.get_account(account_id) is None:
            raise NotFound(f"No account {account_id}")
        try:
            return await self.store.create_console_user(email, await security.hash_password(password),
                                                        account_id=account_id, role=role)
        except ValueError:
            raise InvalidRequest(f"A console user with email {email} already exists", param="email") from None

    async def sign_in(self, email: str, password: str, ip: str) -> tuple[str, Viewer]:
        """(session token for the cookie, viewer). Raises SignInRefused, with one message for
        every wrong email/password combination."""
        email = email.strip().lower()[:254]
        ip = security.address_block(ip)
        wait = max(self.by_email.retry_after_s("email:" + email), self.by_ip.retry_after_s("ip:" + ip))
        if wait:
            raise SignInRefused(f"Too many failed sign-ins. Try again in {int(wait // 60) + 1} minutes.", wait)
        user = await self.store.console_user_by_email(email) if email else None     # (a NUL in it: nobody)
        ok = await security.verify_password(user.password_hash if user and not user.disabled else None, password)
        if not ok or user is None:
            self.by_email.failed("email:" + email)
            self.by_ip.failed("ip:" + ip)
            raise SignInRefused("Wrong email or password.")
        self.by_email.succeeded("email:" + email)
        return await self._start(user)

    async def _start(self, user: ConsoleUser) -> tuple[str, Viewer]:
        token, now = security.new_token(), time.time()
        session = ConsoleSession(security.token_hash(token), user.id, security.new_token(), now,
                                 now + self.session_ttl_s)
        await self.store.delete_console_sessions(expired_before=now)
        await self.store.create_console_session(session)
        return token, _viewer(session, user)

    async def viewer(self, token: str | None) -> Viewer | None:
        if not security.looks_like_token(token):
            return None
        found = await self.store.console_session(security.token_hash(token), time.time())
        return _viewer(*found) if found else None

    async def sign_out(self, viewer: Viewer) -> None:
        await self.store.delete_console_sessions(token_hash=viewer.session_hash)

    async def change_password(self, viewer: Viewer, current: str, new: str) -> tuple[str, Viewer]:
        """Checks the current password, sets the new one, ends every session of the user and
        starts a new one (returned, like sign_in). Wrong current passwords count in the sign-in
        throttle (a stolen session must not be a way to guess the password without limit)."""
        key = "email:" + viewer.email       # the sign-in throttle: both guess the same password
        wait = self.by_email.retry_after_s(key)
        if wait:
            raise RateLimited(f"Too many wrong passwords. Try again in {int(wait // 60) + 1} minutes.",
                              headers={"Retry-After": str(int(wait) + 1)})
        user = await self.store.get_console_user(viewer.user_id)
        if user is None or not await security.verify_password(user.password_hash, current):
            self.by_email.failed(key)
            raise InvalidRequest("The current password is wrong", param="current")
        self.by_email.succeeded(key)
        try:
            security.check_new_password(new)
        except security.PasswordProblem as exc:
            raise InvalidRequest(str(exc), param="password") from None
        user = await self.store.update_console_user(user.id, password_hash=await security.hash_password(new))
        assert user is not None
        await self.store.delete_console_sessions(user_id=user.id)
        return await self._start(user)

    async def set_disabled(self, user_id: int, disabled: bool) -> ConsoleUser:
        user = await self.store.update_console_user(user_id, disabled=disabled)
        if user is None:
            raise NotFound(f"No console user {user_id}")
        if disabled:
            await self.store.delete_console_sessions(user_id=user_id)
        return user


def _viewer(session: ConsoleSession, user: ConsoleUser) -> Viewer:
    return Viewer(user.id, user.email, user.account_id, user.role, session.csrf_token, session.token_hash)
