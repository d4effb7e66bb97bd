"""The web UI (design.md §11), served by `mlproj serve` at `/`: server-rendered HTML (Jinja2, escaped),
htmx and server-sent events for what changes, the scripts vendored under `static/` (no build step, no
request that leaves the server). Reading works without JavaScript.

A page needs a session (mlproj.server.ui.sessions): a token logs in at `/login`, or `mlproj ui`'s
one-time link does. Every action is a POST that carries the session's CSRF value and comes from the
same origin.
"""

from __future__ import annotations

from pathlib import Path

STATIC = Path(__file__).with_name("static")
TEMPLATES = Path(__file__).with_name("templates")
