"""The web UI's sessions (design.md §11): an HttpOnly, SameSite=Strict cookie signed with a secret kept
in MLPROJ_HOME, made when a token (or a one-time link of `mlproj ui`) logs in.

A session made from a token carries the token's SHA-256 (never the token): it ends when the token is
revoked, and has the token's role. A session made from a one-time link has the role the link gave.
Logging out ends a session in the store too (its ID kept until it would have expired), so a copy of
its cookie is refused.
Every action (a POST) also needs the session's CSRF value, and a same-origin request.
"""

from __future__ import annotations

import base64
import hmac
import json
import os
import secrets
import time

from mlproj.errors import MlprojError
from mlproj.structs import dataclass

TYPE_CHECKING = False  # typing's, not imported at run time (start-up: bench/startup.py)
if TYPE_CHECKING:
    from mlproj.home import Home
    from mlproj.runs.access import Access

COOKIE = "mlproj_session"
LIFETIME = 12 * 3600.0  # seconds a session lasts
CODE_LIFETIME = 120.0  # seconds a one-time login link works
SECRET_FILE = "server-secret"  # noqa: S105 - a file's name
SECRET_BYTES = 32


@dataclass(frozen=True)
class Session:
    name: str  # the token's name, or "mlproj ui"
    role: str
    expires: float
    value: str  # the cookie's value
    csrf: str  # what its forms carry back (signed with the secret: only its pages know it)
    ident: str = ""  # its own ID: logging out ends it in the store (Access.end_session)


def secret(home: Home) -> bytes:
    """The signing secret (32 bytes): made once, whole, readable by its owner only. Several server
    processes starting at once all end up with the one that was put in place first."""
    path = home.root / SECRET_FILE
    for _ in range(3):
        try:
            found = bytes.fromhex(path.read_text().strip())
        except (OSError, ValueError):
            found = b""
        if len(found) == SECRET_BYTES:
            return found
        if path.exists():  # put in place whole (below), so it is not ours to mend
            raise MlprojError(f"{path}: not a secret this server made; remove it and start again")
        home.root.mkdir(parents=True, exist_ok=True)
        partial = home.root / f".{SECRET_FILE}.{os.getpid()}.{secrets.token_hex(4)}"
        descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as handle:
            handle.write(secrets.token_hex(SECRET_BYTES))
        try:
            os.link(partial, path)  # whole, and only if none appeared meanwhile
        except FileExistsError:
            pass
        finally:
            partial.unlink(missing_ok=True)
    raise MlprojError(f"{path}: cannot make the server's secret")


class Sessions:
    def __init__(self, home: Home) -> None:
        self._secret = secret(home)
        # Cookies do not tell ports apart: each server's has a name of its own (from its secret).
        self.cookie = f"{COOKIE}_{self._sign('cookie')[:8]}"

    def _sign(self, payload: str) -> str:
        return hmac.new(self._secret, payload.encode(), "sha256").hexdigest()

    def make(self, name: str, role: str, digest: str | None) -> Session:
        """A new session; `digest`: the SHA-256 of the token it was made from (None: a login link)."""
        expires = time.time() + LIFETIME
        ident = secrets.token_hex(16)
        body = {"n": name, "r": role, "e": expires, "d": digest, "i": ident}
        payload = base64.urlsafe_b64encode(json.dumps(body).encode()).decode().rstrip("=")
        value = f"{payload}.{self._sign(payload)}"
        return Session(name, role, expires, value, self._sign(f"csrf:{value}")[:32], ident)

    def read(self, value: str | None, access: Access) -> Session | None:
        """The session a cookie holds, if it is ours, not expired, not logged out, and its token not
        revoked."""
        if not value or len(value) > 2000 or "." not in value:
            return None
        payload, _, signature = value.rpartition(".")
        if not hmac.compare_digest(self._sign(payload).encode(), signature.encode("utf-8", "replace")):
            return None
        try:
            body = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
            name, role, expires, digest = str(body["n"]), str(body["r"]), float(body["e"]), body.get("d")
            ident = str(body["i"])
        except (ValueError, KeyError, TypeError):
            return None
        if expires < time.time() or access.session_ended(ident):
            return None
        if digest is not None:  # made from a token: it holds while the token does, with its role
            found = access.token_by_digest(str(digest))
            if found is None or found[0].revoked_at is not None:
                return None
            role = found[0].role
        return Session(name, role, expires, value, self._sign(f"csrf:{value}")[:32], ident)

    @staticmethod
    def csrf_ok(session: Session, given: str | None) -> bool:
        return given is not None and hmac.compare_digest(
            session.csrf.encode(), given.encode("utf-8", "replace")
        )


def new_login_code(access: Access, role: str) -> str:
    """A one-time login code (its SHA-256 stored), good for CODE_LIFETIME seconds."""
    from mlproj.publish.tokens import digest

    code = secrets.token_urlsafe(24)
    access.add_login_code(digest(code), role, time.time() + CODE_LIFETIME)
    return code


def use_login_code(access: Access, code: str) -> str | None:
    if not code or len(code) > 100:
        return None
    from mlproj.publish.tokens import digest

    return access.use_login_code(digest(code))
