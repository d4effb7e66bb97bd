"""What the shell does with a word of a simple command beyond quoting it: runs it again as code
(`eval`, `trap`, `bash -c`), or evaluates it as arithmetic or as a variable name with a subscript
(`let`, `unset`, `read`, `declare`, `[[ a -eq b ]]`, `a[i]=…`). A quoted value is not safe there."""

from __future__ import annotations

import re
from collections.abc import Sequence

NAME_SUBSCRIPT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\[[^\]]*\Z")
ASSIGNMENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\[[^\]]*\])?\+?=.*", re.DOTALL)
ARRAY_OPENING = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\+?=")
ARITH_OPERATORS = frozenset({"-eq", "-ne", "-lt", "-le", "-gt", "-ge"})
# Reserved words after which the next word is again a command.
COMMAND_WORDS = frozenset({"if", "then", "else", "elif", "do", "while", "until", "!", "{", "time"})
_SHELLS = frozenset({"sh", "bash", "dash", "zsh", "ksh", "mksh", "ash", "yash", "busybox"})
_EVALUATORS = frozenset({"eval", "trap"})
_NAME_BUILTINS = frozenset({"unset", "read", "mapfile", "readarray", "getopts", "let"})
_DECLARERS = frozenset({"declare", "typeset", "local", "readonly", "export"})
_WRAPPERS = frozenset({"builtin", "command", "exec"})
_OPTIONS_WITH_VALUE = frozenset({"-o", "+o", "-O", "+O"})


def unquoted(word: str) -> str:
    """A word's text with its quote characters removed (for keywords and names)."""
    return word.replace("'", "").replace('"', "").replace("\\", "")


def _names(words: Sequence[str]) -> list[str]:
    return [unquoted(word).rsplit("/", 1)[-1] for word in words]


def refusal(words: Sequence[str]) -> str | None:
    """Why no value can stand in the word after `words` (the simple command so far): a shell would
    run it again as code."""
    if not words:
        return None
    names = _names(words)
    start = 1 if names[0] in _WRAPPERS and len(names) > 1 else 0
    if names[start] in _EVALUATORS:
        return f"it is an argument of `{names[start]}`, which runs it as shell code"
    shell_at = next((k for k, name in enumerate(names) if name in _SHELLS), None)
    if shell_at is None:
        return None
    options = [unquoted(word) for word in words[shell_at + 1 :]]
    k = 0
    while k < len(options):
        option = options[k]
        if option == "--" or option in ("-", "+") or not option.startswith(("-", "+")):
            return None  # a script or the command string came before: this is one of their arguments
        if not option.startswith("--") and "c" in option[1:]:
            if k == len(options) - 1:
                return f"it is the command string of `{names[shell_at]} -c`, which runs it as code"
            return None
        k += 2 if option in _OPTIONS_WITH_VALUE else 1
    return None


def numeric_reason(words: Sequence[str], word: str, *, dbracket: bool, array: bool) -> str | None:
    """Why only an integer may stand in `word` (the word being read, after the simple command's
    `words`): the shell evaluates it as arithmetic, or as a variable name whose subscript is."""
    text = unquoted(word)
    if NAME_SUBSCRIPT.search(text) or (array and text.startswith("[") and "]" not in text):
        return "it is an array subscript, which the shell evaluates as arithmetic"
    plain = [unquoted(w) for w in words]
    if dbracket:
        if plain and plain[-1] in (*ARITH_OPERATORS, "-v"):
            return f"it is an operand of `{plain[-1]}` in [[ ]], which the shell evaluates as arithmetic"
        return None
    if not plain:
        return None
    name = _names(words)[0]
    if name in _NAME_BUILTINS:
        return f"it is an argument of `{name}`, which the shell reads as a variable name or arithmetic"
    if name in _DECLARERS:
        if "=" not in text:
            return f"it is a variable name given to `{name}`, whose subscript would be evaluated"
        if any(w.startswith("-") and "i" in w for w in plain[1:]):
            return f"`{name} -i` evaluates the value as arithmetic"
    if (name, plain[-1]) in (("printf", "-v"), ("wait", "-p"), ("test", "-v"), ("[", "-v")):
        return f"it names a variable for `{name} {plain[-1]}`, whose subscript would be evaluated"
    return None


def operand_reason(operator: str) -> str:
    return f"it is an operand of `{operator}` in [[ ]], which the shell evaluates as arithmetic"
