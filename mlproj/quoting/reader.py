"""The state of the lexer of shell commands and what every part of it uses: the frames it is in, reading
forward, and noting where a placeholder stands (see `mlproj.quoting.lexer`)."""

from __future__ import annotations

from mlproj.quoting import rules
from mlproj.quoting.slots import Context, Frame, Slot

SENTINEL = "\x00"  # where a placeholder stands in the text given to the lexer
_STRUCTURAL = frozenset({"cmd", "arith", "param", "heredoc", "comment"})
BACKSLASH = "it follows a backslash, which would escape the quote"


class Reader:
    """Where the lexer is: the text, the position, the stack of frames, what it found."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.i = 0
        self.line = 1
        self.stack: list[Frame] = [Frame("cmd")]
        self.slots: list[Slot] = []
        self.events: list[str] = []  # the structure
        self.problem: str | None = None
        self.nested_backticks = False

    @property
    def top(self) -> Frame:
        return self.stack[-1]

    def cmd_frame(self) -> Frame:
        return next(frame for frame in reversed(self.stack) if frame.kind == "cmd")

    def peek(self, offset: int = 0) -> str:
        j = self.i + offset
        return self.text[j] if j < len(self.text) else ""

    def advance(self, count: int = 1) -> None:
        self.line += self.text.count("\n", self.i, self.i + count)
        self.i += count

    def push(self, frame: Frame, advance: int = 0) -> None:
        self.advance(advance)
        self.stack.append(frame)
        if frame.kind in _STRUCTURAL:
            self.events.append(f"+{frame.kind}{frame.end}")

    def pop(self) -> Frame:
        frame = self.stack.pop()
        if frame.kind in _STRUCTURAL:
            self.events.append(f"-{frame.kind}")
        return frame

    def slot(self, context: Context, numeric_only: str | None = None, refused: str | None = None) -> None:
        """Note a placeholder standing in `context`; what encloses it may refuse it or allow only an
        integer there."""
        for frame in reversed(self.stack):  # up to the nearest command level
            if frame.kind == "cmd":
                break
            if frame.kind == "param":
                refused = refused or "it is inside ${…}, whose quoting rules differ by operator"
            if frame.kind == "arith":
                numeric_only = numeric_only or "it is in an arithmetic expression, which the shell evaluates"
        inside_double = False
        for frame in self.stack:
            if frame.kind == "double":
                inside_double = True
            elif frame.kind == "cmd" and frame.backtick and inside_double:
                refused = refused or "it is inside backquotes within double quotes; use $(…) instead"
            elif frame.kind == "cmd":
                inside_double = False
        backticks = sum(1 for frame in self.stack if frame.backtick)
        self.slots.append(Slot(context, self.line, backticks, numeric_only, refused))

    def word_slot(self, context: Context) -> None:
        """A placeholder in a word of a simple command (bare or inside quotes): the command's rules."""
        frame = self.cmd_frame()
        refused = None if frame.command_position else rules.refusal(frame.words)
        if refused is not None:
            self.slot(context, refused=refused)
            return
        words = [] if frame.command_position and not frame.dbracket else frame.words
        numeric = rules.numeric_reason(words, "".join(frame.word), dbracket=frame.dbracket, array=frame.array)
        frame.word_slots.append(len(self.slots))
        self.slot(context, numeric_only=numeric)

    def dollar(self, word: list[str], *, in_quotes: bool) -> None:
        """`$` at the command level (`in_quotes` False) or where `$'` and `$"` are not quotes."""
        following, third = self.peek(1), self.peek(2)
        if following == "(" and third == "(":
            word.append("$((")
            self.push(Frame("arith", end="))"), advance=3)
        elif following == "(":
            word.append("$(")
            self.push(Frame("cmd", end=")", in_word=True), advance=2)
        elif following == "[":
            word.append("$[")
            self.push(Frame("arith", end="]"), advance=2)
        elif following == "{":
            word.append("${")
            self.push(Frame("param"), advance=2)
        elif following in ("'", '"') and not in_quotes:
            word.append("$" + following)
            self.push(Frame("ansi" if following == "'" else "double"), advance=2)
        else:
            word.append("$")
            self.advance()
