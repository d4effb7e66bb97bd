"""URLs as they may be shown or recorded where others read them: without credentials."""

from __future__ import annotations


def strip_credentials(url: str) -> str:
    """`https://user:token@host/x` → `https://host/x`; other URLs (and `git@host:x`) as they are."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    netloc, slash, path = rest.partition("/")
    return f"{scheme}://{netloc.rpartition('@')[2]}{slash}{path}"
