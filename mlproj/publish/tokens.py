"""The server's bearer tokens (design.md §10): made from 32 random bytes, shown once, stored as their
SHA-256 (a token is random enough that a fast hash cannot be searched), compared in constant time."""

from __future__ import annotations

import hmac
import secrets

TYPE_CHECKING = False  # typing's, not imported at run time (start-up: bench/startup.py)
if TYPE_CHECKING:
    from mlproj.runs.access import Access, Token

PREFIX = "mlp_"  # says what a leaked string is (secret scanners look for prefixes)
RIGHTS = {"read": 0, "submit": 1, "admin": 2}


def new_token() -> tuple[str, str]:
    """(the token, its digest)."""
    token = PREFIX + secrets.token_urlsafe(32)
    return token, digest(token)


def digest(token: str) -> str:
    import hashlib

    return hashlib.sha256(token.encode("utf-8", "surrogateescape")).hexdigest()


def authenticate(access: Access, token: str) -> Token | None:
    """The token's record, if `token` is one that has not been revoked."""
    if not token.startswith(PREFIX) or len(token) > 200:
        return None
    wanted = digest(token)
    found = access.token_by_digest(wanted)
    if found is None:
        return None
    record, stored = found
    if not hmac.compare_digest(stored, wanted) or record.revoked_at is not None:
        return None
    return record


def allows(role: str, needed: str) -> bool:
    """Whether a token of `role` may do what needs `needed` (read < submit < admin)."""
    return RIGHTS.get(role, -1) >= RIGHTS[needed]
