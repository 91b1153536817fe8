"""Tokens and staff passwords, on both databases."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine, select

from voicewatch.auth import (
    AuthError,
    check_password,
    create_staff,
    create_token,
    hash_token,
    principal_for_token,
    revoke_token,
)
from voicewatch.store.tables import api_tokens, users


def test_tokens_are_stored_hashed_and_scoped(engine: Engine) -> None:
    token = create_token(engine, scope="staff", name="ops")
    with engine.connect() as conn:
        stored = conn.execute(select(api_tokens.c.token_hash)).scalar_one()
    assert stored == hash_token(token) and token not in stored
    assert principal_for_token(engine, token).is_staff
    assert not principal_for_token(engine, create_token(engine, scope="ingest")).is_staff


def test_unknown_malformed_and_revoked_tokens_are_refused(engine: Engine) -> None:
    token = create_token(engine, scope="ingest", name="old")
    for bad in ("", "vw_unknown", "x" * 500, token + "x", "' OR 1=1 --"):
        with pytest.raises(AuthError):
            principal_for_token(engine, bad)
    assert revoke_token(engine, "old") == 1
    with pytest.raises(AuthError):
        principal_for_token(engine, token)


def test_staff_passwords_use_argon2(engine: Engine) -> None:
    create_staff(engine, "Ops@Club.example", "correct horse battery")
    with engine.connect() as conn:
        password_hash = conn.execute(select(users.c.password_hash)).scalar_one()
    assert password_hash.startswith("$argon2")
    assert check_password(engine, "ops@club.example", "correct horse battery").is_staff
    with pytest.raises(AuthError):
        check_password(engine, "ops@club.example", "wrong password")
    with pytest.raises(AuthError):
        check_password(engine, "nobody@club.example", "correct horse battery")
