"""`mlproj tokens create | list | revoke` (design.md §10): the server's bearer tokens."""

from __future__ import annotations

from mlproj.cli.common import open_store

TYPE_CHECKING = False  # typing's, not imported on the way to a command
if TYPE_CHECKING:
    from mlproj.ui.console import Console


def create(app: Console, *, name: str, role: str | None) -> int:
    from mlproj.errors import InputError
    from mlproj.publish import create_token

    if role is None:
        raise InputError("tokens create: --role is required: read, submit or admin")
    token, record = create_token(open_store(reading=False), name, role)
    if app.as_json:
        app.json({**record.to_dict(), "token": token})
    else:
        app.print(token)
        app.note(
            f"Token {record.name} ({record.role}): shown only now; send it as Authorization: Bearer TOKEN"
        )
    return 0


def list_tokens(app: Console) -> int:
    found = open_store().access().tokens()
    if app.as_json:
        app.json([t.to_dict() for t in found])
        return 0
    if not found:
        app.print("No tokens.")
        return 0
    from mlproj.cli.render import table_lines
    from mlproj.runs.record import iso_utc

    rows = [[t.name, t.role, (iso_utc(t.created_at) or "")[:19].replace("T", " ")] for t in found]
    for line in table_lines(app.out, ["NAME", "ROLE", "CREATED"], rows):
        app.print(line)
    return 0


def revoke(app: Console, *, name: str) -> int:
    token = open_store(reading=False).access().revoke_token(name)
    if app.as_json:
        app.json(token.to_dict())
    else:
        app.print(f"Token {token.name} revoked")
    return 0
