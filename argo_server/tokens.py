"""Bearer tokens of the API: issued by an admin (``argo-server token create``), stored hashed.

A token is ``argo_<id>_<secret>`` with a 32-byte random secret. The database keeps the id, the user,
the admin flag and the SHA-256 of the secret; checking a token finds the row by id and compares the
hashes with :func:`hmac.compare_digest`, so neither a database dump nor response timing gives a
working token away. Verified tokens are cached for a few seconds so that a call costs no query;
a revocation therefore takes effect within that time (``token_cache_seconds``).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import threading
import time
from dataclasses import dataclass
from typing import cast

from sqlalchemy import Table, insert, select, update

from .db import Database
from .ids import now_micros
from .models import ApiToken

tokens_table = cast(Table, ApiToken.__table__)

PREFIX = "argo"
_TOKEN = re.compile(r"^argo_([0-9a-f]{16})_([A-Za-z0-9_-]{43})$")
_USER = re.compile(r"^[A-Za-z0-9_.@+-]{1,255}$")


@dataclass(frozen=True)
class Identity:
    """Who is calling: a user name and whether they may see and change every job."""

    user: str
    admin: bool = False


@dataclass(frozen=True)
class TokenInfo:
    """A stored token as ``token list`` shows it (never the secret)."""

    id: str
    user: str
    admin: bool
    description: str
    create_time: int
    revoke_time: int | None


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def check_user_name(user: str) -> None:
    """Raises ValueError unless ``user`` is a plausible user name (letters, digits, ``_.@+-``)."""
    if not _USER.match(user):
        raise ValueError(f"invalid user name {user!r}: use letters, digits and _ . @ + -")


class TokenStore:
    """Creates, lists, revokes and verifies tokens in the server's database."""

    def __init__(self, db: Database, cache_seconds: float = 10.0) -> None:
        self.db = db
        self.cache_seconds = cache_seconds
        self._cache: dict[str, tuple[float, Identity]] = {}
        self._lock = threading.Lock()

    def create(self, user: str, *, admin: bool = False, description: str = "") -> tuple[str, TokenInfo]:
        """Issues a token for ``user``; returns the token (shown once, never stored) and its record."""
        check_user_name(user)
        token_id = secrets.token_hex(8)
        secret = secrets.token_urlsafe(32)
        now = now_micros()
        row = {"id": token_id, "user": user, "admin": admin, "secret_hash": _digest(secret),
               "description": description, "create_time": now, "revoke_time": None}
        with self.db.write() as connection:
            connection.execute(insert(tokens_table), [row])
        return f"{PREFIX}_{token_id}_{secret}", TokenInfo(token_id, user, admin, description, now, None)

    def list(self, user: str | None = None) -> list[TokenInfo]:
        """Every token (or one user's), oldest first, revoked ones included."""
        query = select(tokens_table).order_by(tokens_table.c.create_time)
        if user:
            query = query.where(tokens_table.c.user == user)
        with self.db.read() as connection:
            return [TokenInfo(row.id, row.user, bool(row.admin), row.description, row.create_time,
                              row.revoke_time) for row in connection.execute(query)]

    def revoke(self, token_id: str) -> bool:
        """Revokes a token by id (also accepts the whole token); False when there is no such live token."""
        match = _TOKEN.match(token_id)
        token_id = match.group(1) if match else token_id
        statement = update(tokens_table).where(tokens_table.c.id == token_id,
                                               tokens_table.c.revoke_time.is_(None)) \
            .values(revoke_time=now_micros())
        with self.db.write() as connection:
            changed = connection.execute(statement).rowcount
        with self._lock:
            self._cache.clear()
        return bool(changed)

    def verify(self, token: str) -> Identity | None:
        """The identity a token stands for, or None for a malformed, unknown or revoked token."""
        match = _TOKEN.match(token)
        if match is None:
            return None
        # Keyed by the digest, so the cache holds no usable token either.
        key = _digest(token)
        now = time.monotonic()
        with self._lock:
            cached = self._cache.get(key)
        if cached is not None and cached[0] > now:
            return cached[1]
        token_id, secret = match.groups()
        query = select(tokens_table).where(tokens_table.c.id == token_id)
        with self.db.read() as connection:
            row = connection.execute(query).first()
        if row is None or row.revoke_time is not None:
            return None
        if not hmac.compare_digest(row.secret_hash, _digest(secret)):
            return None
        identity = Identity(row.user, bool(row.admin))
        with self._lock:
            if len(self._cache) > 10_000:
                self._cache.clear()
            self._cache[key] = (now + self.cache_seconds, identity)
        return identity
