"""When a schedule fires (design.md §10): a cron expression (five fields, in UTC, as Azure ML reads
them by default) or an interval (`--every 15m`).

Cron: `MINUTE HOUR DAY-OF-MONTH MONTH DAY-OF-WEEK`, each `*`, a number, a range `a-b`, a list `a,b`,
a step `*/n` or `a-b/n`; months and days may be named (`jan`, `mon`); day of week 0 or 7 is Sunday.
As in cron, when both day fields are restricted a day matching either one fires.
"""

from __future__ import annotations

import calendar
import functools
import re
import time

from mlproj.errors import InputError

TYPE_CHECKING = False  # typing's, not imported at run time (start-up: bench/startup.py)
if TYPE_CHECKING:
    from collections.abc import Sequence

FIELDS = (
    ("minute", 0, 59),
    ("hour", 0, 23),
    ("day of month", 1, 31),
    ("month", 1, 12),
    ("day of week", 0, 7),
)
_MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
MONTHS = {name: index + 1 for index, name in enumerate(_MONTHS)}
DAYS = {name: index for index, name in enumerate(("sun", "mon", "tue", "wed", "thu", "fri", "sat"))}
UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
MIN_INTERVAL = 1.0
MAX_INTERVAL = 366 * 86400.0
SEARCH_DAYS = 366 * 5  # a cron that matches no day in five years (feb 30) never fires


class Cron:
    """A parsed cron expression; `previous(t)`: its latest tick at or before `t` (UTC seconds)."""

    def __init__(self, text: str) -> None:
        self.text = text
        parts = text.split()
        if len(parts) != len(FIELDS):
            raise InputError(
                f"cron {text!r}: expected 5 fields (minute hour day-of-month month day-of-week), "
                f"got {len(parts)}"
            )
        sets = [_field(part, *spec, text) for part, spec in zip(parts, FIELDS, strict=True)]
        self.minutes, self.hours, self.days, self.months, weekdays = sets
        self.weekdays = {day % 7 for day in weekdays}
        # As cron reads them: a day field that starts with `*` (`*`, `*/2`) does not restrict the day.
        self.any_day = parts[2].startswith("*")
        self.any_weekday = parts[4].startswith("*")
        if self.previous(time.time() + SEARCH_DAYS * 86400) is None:
            raise InputError(f"cron {text!r}: matches no date")

    def _day_matches(self, year: int, month: int, day: int) -> bool:
        weekday = (calendar.weekday(year, month, day) + 1) % 7  # cron's: Sunday is 0
        by_day, by_weekday = day in self.days, weekday in self.weekdays
        if self.any_day or self.any_weekday:
            return by_day and by_weekday
        return by_day or by_weekday

    def previous(self, moment: float) -> float | None:
        """The latest time at or before `moment` that the expression names (None: none in the search
        window)."""
        now = time.gmtime(moment)
        year, month, day = now.tm_year, now.tm_mon, now.tm_mday
        hour_limit, minute_limit = now.tm_hour, now.tm_min
        for _ in range(SEARCH_DAYS):
            if month in self.months and self._day_matches(year, month, day):
                for hour in sorted((h for h in self.hours if h <= hour_limit), reverse=True):
                    top = minute_limit if hour == hour_limit else 59
                    minutes = [m for m in self.minutes if m <= top]
                    if minutes:
                        return float(calendar.timegm((year, month, day, hour, max(minutes), 0)))
            year, month, day = _day_before(year, month, day)
            hour_limit, minute_limit = 23, 59
        return None


def _day_before(year: int, month: int, day: int) -> tuple[int, int, int]:
    if day > 1:
        return year, month, day - 1
    if month > 1:
        return year, month - 1, calendar.monthrange(year, month - 1)[1]
    return year - 1, 12, 31


def _field(part: str, name: str, low: int, high: int, text: str) -> set[int]:
    names = MONTHS if name == "month" else DAYS if name == "day of week" else {}
    found: set[int] = set()
    for item in part.split(","):
        match = re.fullmatch(r"(\*|[0-9a-z]+(?:-[0-9a-z]+)?)(?:/([0-9]+))?", item.strip().lower())
        if match is None:
            raise InputError(f"cron {text!r}: {name} {item!r}: expected *, N, A-B, a list or a step (/N)")
        span, step = match.group(1), int(match.group(2) or 1)
        if step < 1:
            raise InputError(f"cron {text!r}: {name} {item!r}: a step is at least 1")
        if span == "*":
            first, last = low, high
        else:
            ends = [_value(end, names, name, text) for end in span.split("-")]
            first, last = ends[0], ends[-1]
            if match.group(2) and len(ends) == 1:
                last = high  # `5/15`: from 5 on, every 15
        for value in (first, last):
            if not low <= value <= high:
                raise InputError(f"cron {text!r}: {name} {value}: expected {low} to {high}")
        if first > last:
            raise InputError(f"cron {text!r}: {name} {item!r}: the range ends before it starts")
        found.update(range(first, last + 1, step))
    return found


def _value(text: str, names: dict[str, int], name: str, expression: str) -> int:
    if text.isascii() and text.isdigit():
        return int(text)
    if text in names:  # the three letters cron knows: jan, mon
        return names[text]
    raise InputError(f"cron {expression!r}: {name} {text!r}: expected a number or a name")


def parse_interval(text: str) -> float:
    """`90`, `90s`, `15m`, `2h`, `1d` → seconds (at least one)."""
    match = re.fullmatch(r"\s*([0-9]{1,9}(?:\.[0-9]{1,6})?)\s*([smhd]?)\s*", str(text).lower())
    if match is None:
        raise InputError(f"interval {str(text)[:40]!r}: expected a number with s, m, h or d (15m)")
    seconds = float(match.group(1)) * UNITS[match.group(2) or "s"]
    if not MIN_INTERVAL <= seconds <= MAX_INTERVAL:
        raise InputError(f"interval {text!r}: expected at least {MIN_INTERVAL:g} second and at most 366 days")
    return seconds


def latest_tick(cron: str | None, every_s: float | None, anchor: float, now: float) -> float | None:
    """A schedule's latest tick at or before `now`: a cron's, or `anchor + k * every_s` (None: none yet)."""
    if cron:
        return parsed(cron).previous(now)
    if every_s:
        if now < anchor:
            return None
        return anchor + ((now - anchor) // every_s) * every_s
    return None


@functools.lru_cache(maxsize=256)
def parsed(text: str) -> Cron:
    """A cron expression parsed once (the ticker asks twice a second)."""
    return Cron(text)


def describe(cron: str | None, every_s: float | None) -> str:
    if cron:
        return f"cron {cron} (UTC)"
    return f"every {_seconds(every_s or 0)}"


def _seconds(value: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if value >= size and value % size == 0:
            return f"{int(value // size)}{unit}"
    return f"{value:g}s"


__all__: Sequence[str] = ["Cron", "describe", "latest_tick", "parse_interval"]
