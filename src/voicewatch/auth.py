"""Who may do what: staff accounts (argon2 passwords), API tokens, scope checks.

API tokens are long random strings shown once; only their SHA-256 is stored.
A fast hash is right for them (they carry ~256 bits of entropy, so there is
nothing to brute-force) and keeps each request's check one indexed look-up.
Passwords, which people choose, get argon2.

Sessions are signed cookies naming a user and that user's *session
generation* (``users.session_generation``, migration 0002). Each request checks
the generation against the row: signing out, a password change and removing
the account bump it (or delete the row), so every cookie issued before stops
working at once, on every server, with no session table to clean up.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
import uuid
from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import Engine, delete, select, update

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
    user_id: str = ""  # sessions only
    session_generation: int = 0  # sessions only: the generation the cookie was issued in
    coach_user_id: str = ""  # coach scope only: the coach it acts as (the coach loop)

    @property
    def is_staff(self) -> bool:
        return self.scope is TokenScope.STAFF


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_token(engine: Engine, *, scope: str, name: str = "", coach: str | None = None) -> str:
    """Make a new API token of ``scope`` and return it (the only time it is seen).

    A coach token is bound to one existing coach (``coach``), and only it.
    """
    token_scope = TokenScope(scope)
    if (token_scope is TokenScope.COACH) != bool(coach):
        raise AuthError("a coach token needs --coach USER_ID, and only a coach token takes it")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    with write_transaction(engine) as conn:
        if coach:
            role = conn.execute(select(users.c.role).where(users.c.user_id == coach)).scalar()
            if role != "coach":
                raise AuthError(f"no coach {coach} (add it with: voicewatch coach add)")
        conn.execute(
            api_tokens.insert().values(
                name=name or f"{token_scope.value} token",
                scope=token_scope.value,
                token_hash=hash_token(token),
                created_at=now_ms(),
                coach_user_id=coach,
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
            select(
                api_tokens.c.id,
                api_tokens.c.name,
                api_tokens.c.scope,
                api_tokens.c.revoked_at,
                api_tokens.c.last_used_at,
                api_tokens.c.coach_user_id,
            ).where(api_tokens.c.token_hash == hash_token(token))
        ).first()
    if row is None or row.revoked_at is not None:
        raise AuthError("invalid token")
    stamp = now_ms()
    if row.last_used_at is None or stamp - row.last_used_at >= LAST_USED_RESOLUTION_MS:
        # off the request's path: the check is a read, and must not wait for a write lock
        threading.Thread(target=_touch_token, args=(engine, row.id, stamp), daemon=True).start()
    return Principal(
        name=row.name,
        scope=TokenScope(row.scope),
        via="token",
        coach_user_id=row.coach_user_id or "",
    )


#: ``last_used_at`` is written at most once a minute per token: ingest sends many
#: requests a second, and a write each would contend for SQLite's write lock.
LAST_USED_RESOLUTION_MS = 60_000


def _touch_token(engine: Engine, token_id: int, stamp: int) -> None:
    """Record use; never fails the request (a busy database only delays the figure)."""
    try:
        with write_transaction(engine) as conn:
            conn.execute(
                update(api_tokens).where(api_tokens.c.id == token_id).values(last_used_at=stamp)
            )
    except Exception:
        return


def revoke_token(engine: Engine, name: str) -> int:
    """Revoke every token called ``name``; returns how many."""
    with write_transaction(engine) as conn:
        result = conn.execute(
            update(api_tokens)
            .where(api_tokens.c.name == name, api_tokens.c.revoked_at.is_(None))
            .values(revoked_at=now_ms())
        )
        return result.rowcount or 0


def list_tokens(engine: Engine) -> list[dict[str, object]]:
    """Every token's name, scope and dates (epoch ms) - never its secret or its hash."""
    with read_connection(engine) as conn:
        rows = conn.execute(
            select(
                api_tokens.c.id,
                api_tokens.c.name,
                api_tokens.c.scope,
                api_tokens.c.created_at,
                api_tokens.c.last_used_at,
                api_tokens.c.revoked_at,
            ).order_by(api_tokens.c.id)
        ).all()
    return [dict(r._mapping) for r in rows]


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
            # a new password ends every session made with the old one
            conn.execute(
                update(users)
                .where(users.c.user_id == existing.user_id)
                .values(
                    password_hash=password_hash,
                    role="staff",
                    session_generation=users.c.session_generation + 1,
                )
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
            select(
                users.c.user_id,
                users.c.email,
                users.c.role,
                users.c.password_hash,
                users.c.session_generation,
            ).where(users.c.email == email.strip().lower())
        ).first()
    if row is None or not row.password_hash:
        _hasher.hash(password)  # same cost whether or not the account exists
        raise AuthError("wrong email or password")
    try:
        _hasher.verify(row.password_hash, password)
    except (VerificationError, InvalidHashError) as exc:
        raise AuthError("wrong email or password") from exc
    scope = _SESSION_SCOPES.get(row.role, TokenScope.INGEST)
    return Principal(
        name=row.email,
        scope=scope,
        via="session",
        user_id=row.user_id,
        session_generation=int(row.session_generation),
        coach_user_id=row.user_id if scope is TokenScope.COACH else "",
    )


# --- sessions ------------------------------------------------------------------------

#: A signed-in user's scope by role: a coach's session reaches only that coach's inbox.
_SESSION_SCOPES = {"staff": TokenScope.STAFF, "coach": TokenScope.COACH}


def session_principal(engine: Engine, user_id: str, generation: int) -> Principal | None:
    """Who a session cookie stands for, or None once its sessions were ended.

    One indexed look-up per request: the user must still exist, still have a
    password, and still be in the generation the cookie was issued in.
    """
    with read_connection(engine) as conn:
        row = conn.execute(
            select(
                users.c.email, users.c.role, users.c.password_hash, users.c.session_generation
            ).where(users.c.user_id == user_id)
        ).first()
    if row is None or not row.password_hash or int(row.session_generation) != generation:
        return None
    scope = _SESSION_SCOPES.get(row.role, TokenScope.INGEST)
    return Principal(
        name=row.email or user_id,
        scope=scope,
        via="session",
        user_id=user_id,
        session_generation=generation,
        coach_user_id=user_id if scope is TokenScope.COACH else "",
    )


def end_sessions(engine: Engine, user_id: str) -> None:
    """End every session of ``user_id`` (sign-out signs out all of that user's browsers)."""
    with write_transaction(engine) as conn:
        conn.execute(
            update(users)
            .where(users.c.user_id == user_id)
            .values(session_generation=users.c.session_generation + 1)
        )


def remove_staff(engine: Engine, email: str) -> bool:
    """Delete a staff account; its sessions end at once. False when there was none."""
    with write_transaction(engine) as conn:
        result = conn.execute(
            delete(users).where(users.c.email == email.strip().lower(), users.c.role == "staff")
        )
        return bool(result.rowcount)
