"""Who may do what: staff accounts (argon2 passwords), API tokens, scope checks.

API tokens are long random strings shown once; only their SHA-256 is stored.
A fast hash is right for them (they carry ~256 bits of entropy, so there is
nothing to brute-force) and keeps each request's check one indexed look-up.
Passwords, which people choose, get argon2.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import Engine, select, update

from voicewatch.clock import now_ms
from voicewatch.model import TokenScope
from voicewatch.store import read_connection, write_transaction
from voicewatch.store.tables import api_tokens, users

TOKEN_PREFIX = "vw_"
_hasher = PasswordHasher()


class AuthError(ValueError):
    """A credential is missing, wrong, or lacks the needed scope."""


@dataclass(frozen=True)
class Principal:
    """Whoever makes a request: a staff user (session) or an API token."""

    name: str
    scope: TokenScope
    via: str  # "token" | "session"

    @property
    def is_staff(self) -> bool:
        return self.scope is TokenScope.STAFF


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_token(engine: Engine, *, scope: str, name: str = "") -> str:
    """Make a new API token of ``scope`` and return it (the only time it is seen)."""
    token_scope = TokenScope(scope)
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    with write_transaction(engine) as conn:
        conn.execute(
            api_tokens.insert().values(
                name=name or f"{token_scope.value} token",
                scope=token_scope.value,
                token_hash=hash_token(token),
                created_at=now_ms(),
            )
        )
    return token


def principal_for_token(engine: Engine, token: str) -> Principal:
    """The principal a bearer token stands for.

    :raises AuthError: when the token is unknown or revoked.
    """
    if not token.startswith(TOKEN_PREFIX) or len(token) > 200:
        raise AuthError("invalid token")
    with read_connection(engine) as conn:
        row = conn.execute(
            select(api_tokens.c.name, api_tokens.c.scope, api_tokens.c.revoked_at).where(
                api_tokens.c.token_hash == hash_token(token)
            )
        ).first()
    if row is None or row.revoked_at is not None:
        raise AuthError("invalid token")
    return Principal(name=row.name, scope=TokenScope(row.scope), via="token")


def revoke_token(engine: Engine, name: str) -> int:
    """Revoke every token called ``name``; returns how many."""
    with write_transaction(engine) as conn:
        result = conn.execute(
            update(api_tokens)
            .where(api_tokens.c.name == name, api_tokens.c.revoked_at.is_(None))
            .values(revoked_at=now_ms())
        )
        return result.rowcount or 0


# --- staff accounts ------------------------------------------------------------------


def create_staff(engine: Engine, email: str, password: str, *, name: str = "") -> str:
    """Create (or reset the password of) a platform-staff account; returns its user id."""
    email = email.strip().lower()
    if "@" not in email or len(email) > 320:
        raise AuthError("an email address is required")
    if len(password) < 8:
        raise AuthError("the password must have at least 8 characters")
    password_hash = _hasher.hash(password)
    with write_transaction(engine) as conn:
        existing = conn.execute(select(users.c.user_id).where(users.c.email == email)).first()
        if existing:
            conn.execute(
                update(users)
                .where(users.c.user_id == existing.user_id)
                .values(password_hash=password_hash, role="staff")
            )
            return str(existing.user_id)
        user_id = f"staff_{uuid.uuid4().hex[:12]}"
        conn.execute(
            users.insert().values(
                user_id=user_id,
                email=email,
                name=name or email.split("@")[0],
                role="staff",
                password_hash=password_hash,
                created_at=now_ms(),
            )
        )
        return user_id


def check_password(engine: Engine, email: str, password: str) -> Principal:
    """The principal for a correct email and password.

    :raises AuthError: when either is wrong (one message for both, on purpose).
    """
    with read_connection(engine) as conn:
        row = conn.execute(
            select(users.c.email, users.c.role, users.c.password_hash).where(
                users.c.email == email.strip().lower()
            )
        ).first()
    if row is None or not row.password_hash:
        _hasher.hash(password)  # same cost whether or not the account exists
        raise AuthError("wrong email or password")
    try:
        _hasher.verify(row.password_hash, password)
    except (VerificationError, InvalidHashError) as exc:
        raise AuthError("wrong email or password") from exc
    scope = TokenScope.STAFF if row.role == "staff" else TokenScope.INGEST
    return Principal(name=row.email, scope=scope, via="session")
