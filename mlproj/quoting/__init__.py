"""Where a placeholder stands in a shell command, and how a value is quoted to stand there.

MLproject commands and pipeline `command` steps are shell commands written by their authors, with
placeholders (`{lr}`, `${{inputs.data}}`) for values that users supply. A value must reach the program as
exactly the text the user gave, and never be read by the shell as code. How to quote it depends on
where its placeholder stands, so the template is read with the shell's own grammar (a lexer covering
quotes, comments, heredocs, `$(…)`, backticks, `$'…'`, `${…}`, arithmetic, `case` and `[[ … ]]`):

| where the placeholder stands | how a value is written there |
|---|---|
| a bare word | `'…'` (shlex.quote) |
| inside `'…'` | `'\\''` for each `'` |
| inside `"…"` | `\\`, `"`, `$` and backquote escaped |
| inside `$'…'` | `\\` and `'` escaped |
| a comment | as is, with line breaks made spaces (it never runs) |
| a heredoc body | as is (quoted delimiter), or with `\\`, `$` and backquote escaped |
| inside backquotes | as above, then escaped once more for the backquotes |
| arithmetic: `$((…))`, `let`, `[[ a -eq b ]]`, subscripts, names for `unset`… | only an integer |

(In arithmetic the shell evaluates whatever stands there, `a[$(cmd)]` included, so only `[+-]digits` may.)

Places where no value can be quoted are refused when the project is loaded, with the reason: inside
`${…}`, right after a backslash, inside a heredoc's delimiter, inside backquotes within double quotes,
and in what a shell will run again as code (the arguments of `eval` and `trap`, the command string of
`bash -c`/`sh -c`). A template that cannot be read (an unterminated quote or substitution) is refused when
it has placeholders.

Rendering checks itself: the command with the values in must have the same structure (words, operators,
substitutions, heredocs) as with harmless values; a value that would change it (a heredoc body line that
equals its delimiter) is refused, naming the value's place.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Callable, Mapping, Sequence

from mlproj.quoting.lexer import SENTINEL, Lexer
from mlproj.quoting.slots import Context, Slot
from mlproj.structs import dataclass

__all__ = ["Context", "Slot", "Template", "TemplateError", "UnsafeValue", "analyse", "place", "render"]

_INTEGER = re.compile(r"[+-]?[0-9]+")
_DOUBLE_SPECIAL = frozenset('\\"$`')
_HEREDOC_SPECIAL = frozenset("\\$`")


class UnsafeValue(ValueError):
    """A value that cannot be placed where its placeholder stands (`index`: which placeholder)."""

    def __init__(self, message: str, index: int = 0) -> None:
        super().__init__(message)
        self.index = index
        self.name = ""


class TemplateError(ValueError):
    """A template the lexer cannot read (an unterminated quote or substitution)."""

    def __init__(self, message: str, line: int) -> None:
        super().__init__(message)
        self.line = line


def analyse(parts: Sequence[str]) -> list[Slot]:
    """Where each placeholder stands: `parts` are the literal texts around the placeholders (one more
    than there are placeholders). Raises `TemplateError` when the template cannot be read and has
    placeholders."""
    if any(SENTINEL in part for part in parts):
        raise TemplateError("the command contains a NUL character", 1)
    lexer = Lexer(SENTINEL.join(parts)).run()
    if lexer.problem is not None and len(parts) > 1:
        raise TemplateError(f"cannot tell how a value would be quoted: {lexer.problem}", lexer.line)
    if lexer.nested_backticks:
        nested = "it is inside nested backquotes; use $(…) instead"
        return [Slot(s.context, s.line, s.backticks, None, nested) if s.backticks else s for s in lexer.slots]
    return lexer.slots


def structure(command: str) -> tuple[str, ...]:
    """The command's structure as the lexer sees it: words, operators, substitutions, heredocs."""
    lexer = Lexer(command).run()
    return (*lexer.events, lexer.problem or "")


def place(slot: Slot, value: str) -> str:
    """`value` written for where `slot` stands. Raises `UnsafeValue` when it cannot stand there."""
    if slot.refused is not None:
        raise UnsafeValue(slot.refused)
    if "\0" in value:
        raise UnsafeValue("a value cannot contain a NUL character")
    if slot.numeric_only is not None and not _INTEGER.fullmatch(value):
        raise UnsafeValue(f"only an integer may stand there ({slot.numeric_only}), got {value!r}")
    text = _quote(slot.context, value)
    for _ in range(slot.backticks):
        text = "".join("\\" + c if c in "\\`$" else c for c in text)
    return text


def _quote(context: Context, value: str) -> str:
    if context is Context.BARE:
        return shlex.quote(value)
    if context is Context.SINGLE:
        return value.replace("'", "'\\''")
    if context is Context.DOUBLE:
        return "".join("\\" + c if c in _DOUBLE_SPECIAL else c for c in value)
    if context is Context.ANSI:
        return value.replace("\\", "\\\\").replace("'", "\\'")
    if context is Context.COMMENT:
        return value.replace("\n", " ")
    if context is Context.HEREDOC:
        return "".join("\\" + c if c in _HEREDOC_SPECIAL else c for c in value)
    return value  # HEREDOC_LITERAL, ARITHMETIC (an integer)


def render(parts: Sequence[str], slots: Sequence[Slot], values: Sequence[str]) -> str:
    """The command with each value placed where its placeholder stands, checked: a value that would
    change the command's structure raises `UnsafeValue` with the index of its placeholder."""
    placed = []
    for index, (slot, value) in enumerate(zip(slots, values, strict=True)):
        try:
            placed.append(place(slot, value))
        except UnsafeValue as exc:
            raise UnsafeValue(str(exc), index) from None
    command = _join(parts, placed)
    harmless = [place(slot, "0") for slot in slots]
    expected = structure(_join(parts, harmless))
    if structure(command) != expected:
        for index, slot in enumerate(slots):  # which value: try them one at a time
            trial = [*harmless[:index], placed[index], *harmless[index + 1 :]]
            if structure(_join(parts, trial)) != expected:
                raise UnsafeValue(
                    f"it would change the structure of the command at line {slot.line} of it "
                    "(such as ending a heredoc early)",
                    index,
                )
        raise UnsafeValue("together, the values would change the structure of the command")
    return command


@dataclass(frozen=True)
class Template:
    """A command with named placeholders: the literal texts around them, the name at each, and where
    each stands. Built once when a project or pipeline is loaded; rendered for each run."""

    parts: tuple[str, ...]
    names: tuple[str, ...]
    slots: tuple[Slot, ...]

    @classmethod
    def parse(cls, parts: Sequence[str], names: Sequence[str]) -> Template:
        """Raises `TemplateError` when the command cannot be read and has placeholders."""
        return cls(tuple(parts), tuple(names), tuple(analyse(parts)))

    def render(self, values: Mapping[str, str]) -> str:
        """Raises `UnsafeValue` whose `name` says which placeholder's value cannot stand where it is."""
        try:
            return render(self.parts, self.slots, [values[name] for name in self.names])
        except UnsafeValue as exc:
            exc.name = self.names[exc.index] if self.names else ""
            raise

    def problems(self, integer: Callable[[str], bool]) -> list[tuple[str, Slot, str]]:
        """(name, slot, why) for each placeholder that no value, or no value its parameter may take
        (`integer(name)`: only integers), can stand at."""
        found = []
        for name, slot in zip(self.names, self.slots, strict=True):
            if slot.refused is not None:
                found.append((name, slot, slot.refused))
            elif slot.numeric_only is not None and not integer(name):
                found.append((name, slot, f"{slot.numeric_only}; only an integer is safe there"))
        return found


def _join(parts: Sequence[str], values: Sequence[str]) -> str:
    out = [parts[0]]
    for value, part in zip(values, parts[1:], strict=True):
        out += [value, part]
    return "".join(out)
