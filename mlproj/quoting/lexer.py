"""A lexer of shell commands, as bash reads them, for one purpose: to say where each placeholder of a
command template stands (quotes, comments, heredocs, substitutions, arithmetic, `case`, `[[ … ]]`),
and to describe a command's structure (words, operators, substitutions, heredocs) so that two
renderings can be compared."""

from __future__ import annotations

from collections.abc import Callable

from mlproj.quoting import rules
from mlproj.quoting.bodies import BodyReader
from mlproj.quoting.reader import BACKSLASH, SENTINEL
from mlproj.quoting.slots import Context, Frame, Slot

__all__ = ["SENTINEL", "Lexer"]


class Lexer(BodyReader):
    """Reads a command template (placeholders marked by SENTINEL) as bash would."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
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
            self.slot(Context.BARE, refused=BACKSLASH)
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
            self.heredoc_delimiter(frame, strip=strip)
            return
        length = 1
        while self.peek(length) in ("<", ">", "&", "|") and self.peek(length) and length < 3:
            length += 1
        self.events.append(self.text[self.i : self.i + length])
        self.advance(length)

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
