"""Accounts of the service: argon2id passwords, logins with bearer tokens, lockout.

Why these choices:

- argon2id (argon2-cffi's RFC 9106 low-memory profile) makes every guess against a
  stolen store cost memory and time; the store keeps only the hash.
- A login hands out a random bearer token; the store keeps only its SHA-256, so a
  copy of the database opens no session. A token lives ``token_ttl_s`` after its
  last use (a secretary at work stays logged in, an abandoned laptop does not) and
  never more than ``token_max_s``.
- Guessing is slowed and then stopped: each failure is answered later than the one
  before, and ``max_failed_logins`` in a row lock the account for ``lockout_s``. The
  failures are counted in the store under a row lock, so guesses spread over
  several server processes all count. A wrong name costs the same hashing time as a
  wrong password, and gets the same answer.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import time
from collections.abc import Iterable
from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from ..config import Config, ServerConfig
from ..errors import AccountError, AccountNotFound, ServiceError, StoreConflict
from ..store import JobStore
from ..store.model import ROLES, Account, Session

NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
MIN_PASSWORD = 12
#: hashing a megabyte-long "password" would let one request eat a core
MAX_PASSWORD = 1024
#: the longest wait before a failed login is answered
MAX_DELAY_S = 5.0

_hasher = PasswordHasher()
#: verified against when the name is unknown, so that costs what a wrong password costs
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))


def check_name(name: str) -> str:
    if not NAME.match(name):
        raise AccountError(
            f"account name {name[:80]!r} must be lowercase letters, digits, '.', '_' or '-'"
            " (at most 64)"
        )
    return name


def check_password(password: str) -> str:
    if len(password) < MIN_PASSWORD:
        raise AccountError(f"a password must have at least {MIN_PASSWORD} characters")
    if len(password) > MAX_PASSWORD:
        raise AccountError(f"a password must have at most {MAX_PASSWORD} characters")
    return password


def hash_password(password: str) -> str:
    return _hasher.hash(check_password(password))


def token_hash(token: str) -> str:
    """What the store keeps of a bearer token: enough to find it, useless to replay."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


# -- managing accounts (the `users` commands) -------------------------------------------


def add_account(
    config: Config,
    store: JobStore,
    name: str,
    *,
    role: str,
    clients: Iterable[str] = (),
    author: str | None = None,
    password: str,
) -> Account:
    """A new account; secretaries and authors need the clients whose jobs they see.

    An author's ``author`` is their name as the sidecars write it (default: the
    account name), which is how their dictations are recorded.
    """
    check_name(name)
    if role not in ROLES:
        raise AccountError(f"role {role!r}: expected one of {', '.join(ROLES)}")
    chosen = tuple(dict.fromkeys(c.strip() for c in clients if c.strip()))
    unknown = [c for c in chosen if c not in config.clients]
    if unknown:
        raise AccountError(f"no client {unknown[0]!r} in transcribe.toml")
    if role == "admin" and chosen:
        raise AccountError("an admin manages accounts and sees no client's jobs: no --clients")
    if role != "admin" and not chosen:
        raise AccountError(f"a {role} needs --clients (the clients whose jobs they see)")
    if role != "author" and author:
        raise AccountError("--author is for author accounts only")
    now = time.time()
    account = Account(
        name=name,
        role=role,
        clients=chosen,
        author=(author or name) if role == "author" else None,
        password_hash=hash_password(password),
        disabled=False,
        failed_logins=0,
        locked_until=None,
        created_at=now,
        updated_at=now,
    )
    try:
        store.add_account(account)
    except StoreConflict:
        raise AccountError(f"account {name!r} exists already") from None
    return account


def disable_account(store: JobStore, name: str) -> Account:
    """Refuse its logins from now on and end the ones open (kept for the audit trail)."""
    return store.change_account(name, "account-disable", disabled=True, end_sessions=True)


def reset_password(store: JobStore, name: str, password: str) -> Account:
    """A new password; unlocks the account and ends its open logins."""
    return store.change_account(
        name,
        "account-password",
        password_hash=hash_password(password),
        failed_logins=0,
        locked_until=None,
        end_sessions=True,
    )


# -- logging in, and who a token belongs to ---------------------------------------------


class LoginRefused(ServiceError):
    """A login the service refuses; ``status`` is the HTTP answer, ``delay_s`` how long
    to wait before giving it (longer with each failure)."""

    def __init__(self, message: str, *, status: int = 401, delay_s: float = 0.0) -> None:
        super().__init__(message)
        self.status = status
        self.delay_s = delay_s


@dataclass(frozen=True)
class Login:
    token: str
    expires_at: float
    account: Account


def _delay(policy: ServerConfig, failures: int) -> float:
    return min(policy.failed_login_delay_s * max(failures, 1), MAX_DELAY_S)


def _verify(encoded: str, password: str) -> bool:
    try:
        return _hasher.verify(encoded, password)
    except (VerificationError, InvalidHashError):
        return False


def login(store: JobStore, policy: ServerConfig, name: str, password: str) -> Login:
    """Check a name and password; a new session, or :class:`LoginRefused`."""
    wrong = "wrong account name or password"
    account = store.account(name) if NAME.match(name) else None
    if account is None or len(password) > MAX_PASSWORD:
        _verify(_DUMMY_HASH, password[:MAX_PASSWORD])  # the same cost as a known name
        store.record("login-failed", None, "unknown account")
        raise LoginRefused(wrong, delay_s=_delay(policy, 1))
    now = time.time()
    if account.locked_until is not None and account.locked_until > now:
        raise LoginRefused("too many failed logins: this account is locked for a while", status=429)
    if not _verify(account.password_hash, password):
        after = store.count_failed_login(
            name, limit=policy.max_failed_logins, lock_s=policy.lockout_s
        )
        if after.locked_until is not None and after.locked_until > now:
            message = "too many failed logins: this account is now locked for a while"
            delay = _delay(policy, policy.max_failed_logins)
            raise LoginRefused(message, status=429, delay_s=delay)
        raise LoginRefused(wrong, delay_s=_delay(policy, after.failed_logins))
    if account.disabled:
        raise LoginRefused("this account is disabled", status=403)
    token = secrets.token_urlsafe(32)
    session = Session(token_hash(token), name, now, now + policy.token_ttl_s, now)
    store.drop_expired_sessions(now)  # logins are rare: the table stays small this way
    store.open_session(session)
    return Login(token, session.expires_at, account)


@dataclass(frozen=True)
class Caller:
    """Who sent a request, and until when their login holds now."""

    account: Account
    expires_at: float


def caller(store: JobStore, policy: ServerConfig, token: str) -> Caller | None:
    """The account a live token belongs to, its login renewed; None if expired,
    unknown, or the account was disabled since."""
    session = store.session(token_hash(token))
    now = time.time()
    if session is None or session.expires_at <= now:
        return None
    account = store.account(session.account)
    if account is None or account.disabled:
        return None
    renewed = min(now + policy.token_ttl_s, session.created_at + policy.token_max_s)
    if renewed - session.expires_at > policy.token_ttl_s / 10:  # not a write per request
        store.renew_session(session.token_hash, expires_at=renewed, used_at=now)
        return Caller(account, renewed)
    return Caller(account, session.expires_at)


def get_account(store: JobStore, name: str) -> Account:
    account = store.account(name)
    if account is None:
        raise AccountNotFound(f"no account {name!r}", hint="see `transcribe users list`")
    return account
