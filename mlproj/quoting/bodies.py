"""What the lexer reads inside quotes, `${…}`, arithmetic, comments and heredocs."""

from __future__ import annotations

from mlproj.quoting.reader import BACKSLASH, SENTINEL, Reader
from mlproj.quoting.slots import Context, Frame


class BodyReader(Reader):
    """The parts of a command that are not command words: quotes, substitutions' bodies, heredocs."""

    def heredoc_delimiter(self, frame: Frame, *, strip: bool) -> None:
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
                self.slot(Context.DOUBLE, refused=BACKSLASH)
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
                self.slot(Context.ANSI, refused=BACKSLASH)
            c += self.peek(1)
        elif c == "'":
            self.pop()
        self.cmd_frame().word.append(c)
        self.advance(len(c))

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
                self.slot(Context.HEREDOC, refused=BACKSLASH)
            self.advance(2 if c == "\\" and not frame.quoted else 1)
