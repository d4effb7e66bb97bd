"""A lexer of shell commands, as bash reads them, for one purpose: to say where each placeholder of a
command template stands (quotes, comments, heredocs, substitutions, arithmetic, `case`, `[[ … ]]`),
and to describe a command's structure (words, operators, substitutions, heredocs) so that two
renderings can be compared."""

from __future__ import annotations

from collections.abc import Callable

from mlproj.quoting import rules
from mlproj.quoting.slots import Context, Frame, Slot

SENTINEL = "\x00"  # where a placeholder stands in the text given to the lexer
_STRUCTURAL = frozenset({"cmd", "arith", "param", "heredoc", "comment"})
_BACKSLASH = "it follows a backslash, which would escape the quote"


class Lexer:
    """Reads a command template (placeholders marked by SENTINEL) as bash would."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.i = 0
        self.line = 1
        self.stack: list[Frame] = [Frame("cmd")]
        self.slots: list[Slot] = []
        self.events: list[str] = []  # the structure
        self.problem: str | None = None
        self.nested_backticks = False
        self._cmd_chars: dict[str, Callable[[Frame], None]] = {
            " ": self.blank,
            "\t": self.blank,
            "\n": self.newline,
            "#": self.hash,
            "\\": self.backslash,
            "'": self.open_quote,
            '"': self.open_quote,
            "`": self.backquote,
            "$": lambda frame: self.dollar(frame.word, in_quotes=False),
            "(": self.open_paren,
            ")": self.close_paren,
            ";": self.operator,
            "&": self.operator,
            "|": self.operator,
            "<": self.redirection,
            ">": self.redirection,
            SENTINEL: self.placeholder,
        }

    # --- helpers ---

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

    # --- the loop ---

    def run(self) -> Lexer:
        handlers: dict[str, Callable[[], None]] = {
            "cmd": self.in_cmd,
            "single": self.in_single,
            "double": self.in_double,
            "ansi": self.in_ansi,
            "param": self.in_param,
            "arith": self.in_arith,
            "comment": self.in_comment,
            "heredoc": self.in_heredoc,
        }
        while self.i < len(self.text):
            handlers[self.top.kind]()
        while self.top.kind in ("comment", "heredoc"):  # bash ends a heredoc at the end of its input too
            self.pop()
        if self.top.kind == "cmd":
            self.end_word(self.top)
        if len(self.stack) > 1:
            self.problem = f"unterminated {describe(self.top)}"
        elif self.stack[0].pending_heredocs:
            self.problem = "a heredoc without a body"
        return self

    # --- command level ---

    def in_cmd(self) -> None:
        frame = self.top
        handler = self._cmd_chars.get(self.peek())
        if handler is None:
            frame.word.append(self.peek())
            self.advance()
        else:
            handler(frame)

    def placeholder(self, frame: Frame) -> None:
        self.word_slot(Context.BARE)
        frame.word.append(SENTINEL)
        self.advance()

    def blank(self, frame: Frame) -> None:
        self.end_word(frame)
        self.advance()

    def newline(self, frame: Frame) -> None:
        self.end_word(frame)
        self.end_command(frame)
        self.events.append("nl")
        self.advance()
        if frame.pending_heredocs:
            self.start_heredoc(frame)

    def hash(self, frame: Frame) -> None:
        if frame.word:  # `a#b`: part of a word
            frame.word.append("#")
            self.advance()
        else:
            self.push(Frame("comment"), advance=1)

    def backslash(self, frame: Frame) -> None:
        following = self.peek(1)
        if following == "\n":  # a line continuation
            self.advance(2)
            return
        if following == SENTINEL:
            self.slot(Context.BARE, refused=_BACKSLASH)
        elif following == "`" and frame.backtick:
            self.nested_backticks = True
        frame.word.append("\\" + following)
        self.advance(2)

    def open_quote(self, frame: Frame) -> None:
        quote = self.peek()
        frame.word.append(quote)
        self.push(Frame("single" if quote == "'" else "double"), advance=1)

    def backquote(self, frame: Frame) -> None:
        if frame.backtick:  # the end of this backquote substitution
            self.end_word(frame)
            self.pop()
            self.cmd_frame().word.append("`")
            self.advance()
        else:
            frame.word.append("`")
            self.push(Frame("cmd", end="`", backtick=True), advance=1)

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

    def open_paren(self, frame: Frame) -> None:
        if frame.case and frame.case[-1] == "pattern" and not frame.word:
            self.advance()  # the optional `(` before a pattern
            return
        word = "".join(frame.word)
        arithmetic_command = frame.command_position or frame.words[-1:] == ["for"]
        if self.peek(1) == "(" and not word and arithmetic_command:
            self.events.append("((")
            self.push(Frame("arith", end="))"), advance=2)
        elif rules.ARRAY_OPENING.fullmatch(rules.unquoted(word)):
            frame.word.append("(")
            self.push(Frame("cmd", end=")", array=True, in_word=True, command_position=False), advance=1)
        else:
            self.end_word(frame)
            self.events.append("(")
            self.push(Frame("cmd", end=")"), advance=1)

    def close_paren(self, frame: Frame) -> None:
        self.end_word(frame)
        self.advance()
        if frame.case and frame.case[-1] == "pattern":
            frame.case[-1] = "body"
            frame.command_position = True
            frame.words = []
            self.events.append("pattern)")
        elif frame.end == ")":
            self.pop()
            if frame.in_word:
                self.cmd_frame().word.append(")")
        else:
            self.problem = "an unmatched `)`"

    def operator(self, frame: Frame) -> None:
        self.end_word(frame)
        c, following = self.peek(), self.peek(1)
        text = c
        if c == "&" and following == ">":  # `&>` redirects
            self.redirection(frame)
            return
        if following == c or (c in ";|" and following == "&"):
            text += following
            if text == ";;" and self.peek(2) == "&":
                text += "&"
        self.events.append(text)
        self.advance(len(text))
        self.end_command(frame)
        if frame.case and text in (";;", ";&", ";;&"):
            frame.case[-1] = "pattern"

    def redirection(self, frame: Frame) -> None:
        c = self.peek()
        if c in "<>" and self.peek(1) == "(":  # process substitution <(…) >(…)
            frame.word.append(c + "(")
            self.push(Frame("cmd", end=")", in_word=True), advance=2)
            return
        self.end_word(frame)
        if c == "<" and self.peek(1) == "<" and self.peek(2) != "<":
            strip = self.peek(2) == "-"
            self.advance(3 if strip else 2)
            self.events.append("<<")
            self.heredoc_delimiter(frame, strip)
            return
        length = 1
        while self.peek(length) in ("<", ">", "&", "|") and self.peek(length) and length < 3:
            length += 1
        self.events.append(self.text[self.i : self.i + length])
        self.advance(length)

    def heredoc_delimiter(self, frame: Frame, strip: bool) -> None:
        while self.peek() in (" ", "\t") and self.peek():
            self.advance()
        raw: list[str] = []
        quoted = False
        while self.i < len(self.text) and self.peek() not in " \t\n;&|<>()":
            c = self.peek()
            if c == SENTINEL:
                self.slot(Context.BARE, refused="it is inside a heredoc's delimiter")
            if c in "'\"":
                close = self.text.find(c, self.i + 1)
                if close < 0:
                    self.problem = "an unterminated heredoc delimiter"
                    self.advance(len(self.text) - self.i)
                    return
                quoted = True
                raw.append(self.text[self.i + 1 : close])
                self.advance(close + 1 - self.i)
            elif c == "\\":
                quoted = True
                raw.append(self.peek(1))
                self.advance(2)
            else:
                raw.append(c)
                self.advance()
        if not raw:
            self.problem = "a heredoc without a delimiter"
            return
        frame.pending_heredocs.append(("".join(raw), quoted, strip))
        self.events.append("w")

    def start_heredoc(self, frame: Frame) -> None:
        delimiter, quoted, strip = frame.pending_heredocs.pop(0)
        self.push(Frame("heredoc", delimiter=delimiter, quoted=quoted, strip_tabs=strip))

    # --- words and commands ---

    def end_word(self, frame: Frame) -> None:
        if not frame.word:
            return
        word = "".join(frame.word)
        plain = rules.unquoted(word)
        slots = frame.word_slots
        frame.word, frame.word_slots = [], []
        self.events.append("w")
        if frame.dbracket:
            self.dbracket_word(frame, word, plain, slots)
        elif frame.case and frame.case[-1] in ("subject", "in", "pattern"):
            self.case_word(frame, plain)
        elif frame.command_position:
            self.command_word(frame, word, plain)
        else:
            frame.words.append(word)

    def dbracket_word(self, frame: Frame, word: str, plain: str, slots: list[int]) -> None:
        if plain == "]]":
            frame.dbracket = False
        elif plain in rules.ARITH_OPERATORS:
            for index in frame.last_operand:  # the operand before the operator
                slot = self.slots[index]
                if slot.numeric_only is None and slot.refused is None:
                    reason = rules.operand_reason(plain)
                    self.slots[index] = Slot(slot.context, slot.line, slot.backticks, reason, None)
        frame.last_operand = slots
        frame.words.append(word)

    def case_word(self, frame: Frame, plain: str) -> None:
        state = frame.case[-1]
        if state == "subject":
            frame.case[-1] = "in"
        elif state == "in" and plain == "in":
            frame.case[-1] = "pattern"
        elif state == "pattern" and plain == "esac":
            frame.case.pop()
            frame.command_position = False

    def command_word(self, frame: Frame, word: str, plain: str) -> None:
        if plain == "case":
            frame.case.append("subject")
            frame.command_position = False
        elif plain == "esac" and frame.case:
            frame.case.pop()
            frame.command_position = False
        elif plain == "[[":
            frame.dbracket = True
            frame.words = [word]
            frame.command_position = False
        elif plain in rules.COMMAND_WORDS or rules.ASSIGNMENT.fullmatch(plain):
            return  # a reserved word or an assignment: a command may still follow
        else:
            frame.command_position = False
            frame.words = [word]

    def end_command(self, frame: Frame) -> None:
        frame.words = []
        frame.command_position = True
        frame.last_operand = []
        frame.dbracket = False

    # --- quotes ---

    def in_single(self) -> None:
        c = self.peek()
        if c == SENTINEL:
            self.word_slot(Context.SINGLE)
        elif c == "'":
            self.pop()
        self.cmd_frame().word.append(c)
        self.advance()

    def in_double(self) -> None:
        c = self.peek()
        word = self.cmd_frame().word
        if c == "$":
            self.dollar(word, in_quotes=True)
            return
        if c == "`":
            word.append(c)
            self.push(Frame("cmd", end="`", backtick=True), advance=1)
            return
        if c == SENTINEL:
            self.word_slot(Context.DOUBLE)
        elif c == "\\":
            if self.peek(1) == SENTINEL:
                self.slot(Context.DOUBLE, refused=_BACKSLASH)
            c += self.peek(1)
        elif c == '"':
            self.pop()
        word.append(c)
        self.advance(len(c))

    def in_ansi(self) -> None:
        c = self.peek()
        if c == SENTINEL:
            self.word_slot(Context.ANSI)
        elif c == "\\":
            if self.peek(1) == SENTINEL:
                self.slot(Context.ANSI, refused=_BACKSLASH)
            c += self.peek(1)
        elif c == "'":
            self.pop()
        self.cmd_frame().word.append(c)
        self.advance(len(c))

    # --- ${…}, arithmetic, comments, heredocs ---

    def nested(self, scratch: list[str]) -> bool:
        """Quotes and substitutions inside ${…}, arithmetic and heredoc bodies; True if one began."""
        c = self.peek()
        if c == "$":
            self.dollar(scratch, in_quotes=True)
        elif c == "`":
            self.push(Frame("cmd", end="`", backtick=True), advance=1)
        elif c in "'\"" and self.top.kind != "heredoc":
            self.push(Frame("single" if c == "'" else "double"), advance=1)
        else:
            return False
        return True

    def in_param(self) -> None:
        c = self.peek()
        if c == SENTINEL:
            self.slot(Context.BARE)  # refused: it is inside ${…}
            self.advance()
        elif c == "}":
            self.pop()
            self.advance()
        elif c == "{":
            self.push(Frame("param"), advance=1)  # a nested brace, closed by its own `}`
        elif not self.nested([]):
            self.advance(2 if c == "\\" else 1)

    def in_arith(self) -> None:
        frame = self.top
        c = self.peek()
        if c == SENTINEL:
            self.slot(Context.ARITHMETIC)  # numeric only: it is in an arithmetic expression
            self.advance()
        elif c == "(":
            frame.depth += 1
            self.advance()
        elif c == ")" and frame.depth:
            frame.depth -= 1
            self.advance()
        elif (frame.end == "))" and c == ")" and self.peek(1) == ")") or (frame.end == "]" and c == "]"):
            self.pop()
            self.advance(len(frame.end))
        elif not self.nested([]):
            self.advance(2 if c == "\\" else 1)

    def in_comment(self) -> None:
        c = self.peek()
        if c == "\n":
            self.pop()  # the newline itself ends the command, in the frame below
            return
        if c == SENTINEL:
            self.slot(Context.COMMENT)
        self.advance()

    def at_delimiter_line(self) -> bool:
        frame = self.top
        end = self.text.find("\n", self.i)
        line = self.text[self.i : len(self.text) if end < 0 else end]
        return (line.lstrip("\t") if frame.strip_tabs else line) == frame.delimiter

    def in_heredoc(self) -> None:
        frame = self.top
        if frame.at_line_start:
            frame.at_line_start = False
            if self.at_delimiter_line():
                end = self.text.find("\n", self.i)
                self.advance((len(self.text) if end < 0 else end) - self.i)
                self.pop()
                below = self.top
                if below.kind == "cmd" and below.pending_heredocs and self.peek() == "\n":
                    self.advance()
                    self.start_heredoc(below)
                return
        c = self.peek()
        if c == "\n":
            frame.at_line_start = True
            self.advance()
        elif c == SENTINEL:
            self.slot(Context.HEREDOC_LITERAL if frame.quoted else Context.HEREDOC)
            self.advance()
        elif frame.quoted or not self.nested([]):
            if c == "\\" and not frame.quoted and self.peek(1) == SENTINEL:
                self.slot(Context.HEREDOC, refused=_BACKSLASH)
            self.advance(2 if c == "\\" and not frame.quoted else 1)


def describe(frame: Frame) -> str:
    return {
        "single": "single quote",
        "double": "double quote",
        "ansi": "$'…' quote",
        "param": "${…}",
        "arith": "arithmetic expression",
        "heredoc": f"heredoc (no line {frame.delimiter!r} ends it)",
        "cmd": "`…` substitution" if frame.backtick else "$(…) or ( … )",
        "comment": "comment",
    }[frame.kind]
