"""What the lexer reports (where a placeholder stands) and what it keeps while reading (its frames)."""

from __future__ import annotations

from enum import Enum

from mlproj.structs import dataclass, field


class Context(str, Enum):
    BARE = "bare"
    SINGLE = "single"  # '…'
    DOUBLE = "double"  # "…"
    ANSI = "ansi"  # $'…'
    COMMENT = "comment"
    HEREDOC = "heredoc"  # a heredoc body whose delimiter is unquoted: $ ` \ are special
    HEREDOC_LITERAL = "heredoc-literal"  # a heredoc body whose delimiter is quoted: nothing is special
    ARITHMETIC = "arithmetic"


@dataclass(frozen=True)
class Slot:
    """Where one placeholder stands."""

    context: Context
    line: int  # 1-based line of the command
    backticks: int = 0  # enclosing backquote substitutions: each adds a layer of escaping
    numeric_only: str | None = None  # why only an integer may stand here, or None
    refused: str | None = None  # why no value can stand here, or None


@dataclass
class Frame:
    kind: str  # cmd | single | double | ansi | param | arith | comment | heredoc
    end: str = ""  # cmd: ")", "`" or "" (the top); arith: "))" or "]"
    backtick: bool = False
    in_word: bool = False  # $(…), <(…), name=(…): its `)` continues the word it started in
    array: bool = False  # opened by `name=(`: words starting with `[` are subscripts
    # cmd frames: the simple command being read
    word: list[str] = field(default_factory=list)  # raw characters of the current word
    word_slots: list[int] = field(default_factory=list)  # placeholders in the current word
    words: list[str] = field(default_factory=list)  # completed words of the simple command
    command_position: bool = True
    pending_heredocs: list[tuple[str, bool, bool]] = field(default_factory=list)  # delimiter, quoted, strip
    case: list[str] = field(default_factory=list)  # per open `case`: subject, in, pattern, body
    dbracket: bool = False
    last_operand: list[int] = field(default_factory=list)  # in [[ ]]: slots of the previous word
    depth: int = 0  # arith frames: open parentheses
    # heredoc frames
    delimiter: str = ""
    strip_tabs: bool = False
    quoted: bool = False
    at_line_start: bool = True
