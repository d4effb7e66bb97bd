"""Who may use the server (design.md §10, §11), in the run store's database: tokens (their SHA-256,
never the token), the one-time login links of `mlproj ui`, and the web UI's sessions ended by logging
out. Data only: the rules are `mlproj.publish.tokens`' and the server's."""

from __future__ import annotations

import sqlite3
import time

from mlproj.errors import InputError, RunNotFoundError
from mlproj.runs.catalog import ROLES, ConflictError, check_name
from mlproj.runs.record import iso_utc
from mlproj.structs import dataclass

TYPE_CHECKING = False  # typing's, not imported at run time (start-up: bench/startup.py)
if TYPE_CHECKING:
    from collections.abc import Callable
    from contextlib import AbstractContextManager
    from typing import Any

    from mlproj.runs.catalog import _Guarded


@dataclass(frozen=True)
class Token:
    name: str
    role: str
    created_at: float = 0.0
    revoked_at: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "role": self.role,
            "created_at": iso_utc(self.created_at),
            "revoked_at": iso_utc(self.revoked_at),
        }


class Access:
    """The tokens, login links and ended sessions of one run store."""

    def __init__(self, db: _Guarded, immediate: Callable[[], AbstractContextManager[None]]) -> None:
        self._db = db
        self._immediate = immediate  # BEGIN IMMEDIATE … COMMIT: the store's

    # --- tokens --------------------------------------------------------------------------------------

    def create_token(self, name: str, role: str, digest: str) -> Token:
        check_name(name, "token")
        if role not in ROLES:
            raise InputError(f"role {role!r}: expected one of {', '.join(ROLES)}")
        try:
            self._db.execute(
                "INSERT INTO tokens (name, role, digest, created_at) VALUES (?, ?, ?, ?)",
                (name, role, digest, time.time()),
            )
        except sqlite3.IntegrityError:
            raise ConflictError(f"token {name!r} exists already (revoke it first)") from None
        return self.token(name)

    def token(self, name: str) -> Token:
        row = self._db.execute(
            "SELECT name, role, created_at, revoked_at FROM tokens WHERE name = ?", (str(name),)
        ).fetchone()
        if row is None:
            raise RunNotFoundError(f"no token named {str(name)[:80]!r}")
        return Token(row["name"], row["role"], row["created_at"], row["revoked_at"])

    def tokens(self) -> list[Token]:
        rows = self._db.execute("SELECT name, role, created_at, revoked_at FROM tokens ORDER BY name")
        return [Token(row["name"], row["role"], row["created_at"], row["revoked_at"]) for row in rows]

    def revoke_token(self, name: str) -> Token:
        """Revoked tokens are deleted (their name may be used again); the answer is the last record."""
        token = self.token(name)
        self._db.execute("DELETE FROM tokens WHERE name = ?", (name,))
        return Token(token.name, token.role, token.created_at, time.time())

    def token_by_digest(self, digest: str) -> tuple[Token, str] | None:
        """The token whose digest is `digest` (the caller compares the digest again in constant time)."""
        row = self._db.execute(
            "SELECT name, role, created_at, revoked_at, digest FROM tokens WHERE digest = ?", (digest,)
        ).fetchone()
        if row is None:
            return None
        return Token(row["name"], row["role"], row["created_at"], row["revoked_at"]), str(row["digest"])

    # --- one-time login links (the web UI) -----------------------------------------------------------

    def add_login_code(self, digest: str, role: str, expires_at: float) -> None:
        if role not in ROLES:
            raise InputError(f"role {role!r}: expected one of {', '.join(ROLES)}")
        with self._immediate():
            self._db.execute("DELETE FROM login_codes WHERE expires_at < ?", (time.time(),))
            self._db.execute(
                "INSERT INTO login_codes (digest, role, expires_at) VALUES (?, ?, ?)",
                (digest, role, expires_at),
            )

    def use_login_code(self, digest: str) -> str | None:
        """The role a login code gives, once: the code is gone after (None: unknown, used or expired)."""
        with self._immediate():
            row = self._db.execute(
                "SELECT role, expires_at FROM login_codes WHERE digest = ?", (digest,)
            ).fetchone()
            if row is None:
                return None
            self._db.execute("DELETE FROM login_codes WHERE digest = ?", (digest,))
        return str(row["role"]) if row["expires_at"] >= time.time() else None

    # --- sessions ended by logging out (the web UI) -------------------------------------------------

    def end_session(self, session_id: str, expires_at: float) -> None:
        """Remember a session that logged out until it would have expired (its cookie is refused)."""
        with self._immediate():
            self._db.execute("DELETE FROM ended_sessions WHERE expires_at < ?", (time.time(),))
            self._db.execute(
                "INSERT OR IGNORE INTO ended_sessions (id, expires_at) VALUES (?, ?)",
                (session_id, expires_at),
            )

    def session_ended(self, session_id: str) -> bool:
        row = self._db.execute("SELECT 1 FROM ended_sessions WHERE id = ?", (session_id,)).fetchone()
        return row is not None


__all__ = ["Access", "Token"]
