"""Tokenizer of rule expressions."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from monitor.durations import DurationError, parse_duration
from rules.expr.errors import ExpressionError

TokenKind = Literal[
    "number", "duration", "string", "name", "operator", "punctuation", "end"
]


@dataclass(frozen=True, slots=True)
class Token:
    """One token with its kind, its source text and its offset in the text."""

    kind: TokenKind
    text: str
    offset: int
    value: float | str | None = None
    """Parsed value: a float for numbers, seconds for durations, the decoded
    text for strings."""


_DIGITS = r"\d(?:_?\d)*"
_NUMBER = re.compile(
    rf"(?:{_DIGITS}(?:\.(?:{_DIGITS})?)?|\.{_DIGITS})(?:[eE][+-]?{_DIGITS})?"
)
_DURATION = re.compile(r"(?:\d+(?:ms|s|m|h|d|w))+")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_WORD_CHARACTERS = re.compile(r"[\w.]*")
# Two-character operators come first so that "<=" is not read as "<".
_OPERATORS: tuple[str, ...] = ("==", "!=", "<=", ">=", "=~", "!~")
_OPERATORS += ("+", "-", "*", "/", "%", "^", "<", ">", "=")
_PUNCTUATION = ("(", ")", ",")
_ESCAPES = {
    "\\": "\\",
    '"': '"',
    "'": "'",
    "n": "\n",
    "t": "\t",
    "r": "\r",
    "0": "\0",
}
_HEX_ESCAPE_LENGTHS = {"x": 2, "u": 4, "U": 8}

# Characters and pairs that belong to Python or other query languages, with
# the message that suggests what to write instead.
_REJECTED = {
    "**": "Power is written '^', not '**', as in 2 ^ 10.",
    "//": "Floor division '//' is not supported; use round(a / b, 0) instead.",
    "&&": "Write 'and' instead of '&&'.",
    "||": "Write 'or' instead of '||'.",
    "&": "Write 'and' instead of '&'.",
    "|": "Write 'or' instead of '|'.",
    "!": "Write 'not' instead of '!'.",
    "[": "Subscripts and lists with '[' are not supported; window functions "
    'take the duration as an argument, such as avg_over(kpi("orders"), 1h).',
    "]": "Subscripts and lists with ']' are not supported.",
    "{": "Braces are not supported; write label matchers as keyword "
    'arguments, such as kpi("orders", region="eu").',
    "}": "Braces are not supported; write label matchers as keyword "
    'arguments, such as kpi("orders", region="eu").',
    ":": "':' is not supported; expressions have no lambdas, slices or dictionaries.",
    ".": "Attribute access with '.' is not supported; call a function "
    'instead, such as last(kpi("orders")).',
    ";": "';' is not supported; write one expression per rule.",
    "@": "'@' is not supported; window functions always end at the evaluation time.",
    "#": "Comments with '#' are not supported inside an expression; put them "
    "in the YAML file instead.",
}


def tokenize(text: str) -> list[Token]:
    """Split ``text`` into tokens, ending with one ``end`` token.

    Raises
    ------
    ExpressionError
        On a character that is not part of the language, a malformed number,
        duration or string, or a dunder name.
    """
    tokens: list[Token] = []
    position = 0
    length = len(text)
    while position < length:
        char = text[position]
        if char.isspace():
            position += 1
            continue

        if char.isdigit() or (
            char == "." and text[position + 1 : position + 2].isdigit()
        ):
            token = _read_number_or_duration(text, position)
        elif char in "\"'`":
            token = _read_string(text, position)
        elif char.isascii() and (char.isalpha() or char == "_"):
            token = _read_name(text, position)
        else:
            token = _read_symbol(text, position)
        tokens.append(token)
        position = token.offset + len(token.text)

    tokens.append(Token("end", "", length))
    return tokens


def _read_number_or_duration(text: str, start: int) -> Token:
    duration = _DURATION.match(text, start)
    if duration and not _continues_word(text, duration.end()):
        source = duration.group()
        try:
            seconds = parse_duration(source).total_seconds()
        except DurationError as error:
            raise ExpressionError(str(error), start) from error
        return Token("duration", source, start, seconds)

    number = _NUMBER.match(text, start)
    if number is None or _continues_word(text, number.end()):
        word = _WORD_CHARACTERS.match(text, start)
        source = word.group() if word else text[start]
        raise ExpressionError(
            f"Invalid number or duration {source!r}; write a number such as 42, "
            "1.5, 1_000 or 1e3, or a duration with whole units such as 90s, "
            "1h30m or 7d.",
            start,
        )
    source = number.group()
    return Token("number", source, start, float(source.replace("_", "")))


def _continues_word(text: str, position: int) -> bool:
    if position >= len(text):
        return False
    char = text[position]
    return char.isalnum() or char in "_."


def _read_name(text: str, start: int) -> Token:
    match = _NAME.match(text, start)
    name = match.group() if match else text[start]
    if name.startswith("__"):
        raise ExpressionError(
            f"Names starting with '__' such as {name!r} are not allowed in "
            "expressions.",
            start,
        )
    return Token("name", name, start)


def _read_symbol(text: str, start: int) -> Token:
    pair = text[start : start + 2]
    if pair in _REJECTED:
        raise ExpressionError(_REJECTED[pair], start)

    for operator in _OPERATORS:
        if text.startswith(operator, start):
            return Token("operator", operator, start)

    char = text[start]
    if char in _PUNCTUATION:
        return Token("punctuation", char, start)

    if char in _REJECTED:
        raise ExpressionError(_REJECTED[char], start)

    raise ExpressionError(
        f"Unexpected character {char!r}; expressions contain numbers, "
        "durations, quoted strings, function calls and the operators "
        "+ - * / % ^ == != < <= > >= and, or, unless, not.",
        start,
    )


def _read_string(text: str, start: int) -> Token:
    quote = text[start]
    position = start + 1
    parts: list[str] = []
    while True:
        if position >= len(text):
            raise ExpressionError(f"Unterminated string; close it with {quote}.", start)

        char = text[position]
        if char == quote:
            break

        if char == "\n" and quote != "`":
            raise ExpressionError(
                "Unterminated string at the end of the line; close it with "
                f"{quote} on the same line.",
                start,
            )

        if char == "\\" and quote != "`":
            decoded, position = _read_escape(text, position)
            parts.append(decoded)
            continue

        parts.append(char)
        position += 1

    return Token("string", text[start : position + 1], start, "".join(parts))


def _read_escape(text: str, start: int) -> tuple[str, int]:
    """Decode the escape at ``text[start]`` (a backslash); return it and the end."""
    code = text[start + 1 : start + 2]
    if code in _ESCAPES:
        return _ESCAPES[code], start + 2

    if code in _HEX_ESCAPE_LENGTHS:
        digits_end = start + 2 + _HEX_ESCAPE_LENGTHS[code]
        digits = text[start + 2 : digits_end]
        if len(digits) == _HEX_ESCAPE_LENGTHS[code] and all(
            digit in "0123456789abcdefABCDEF" for digit in digits
        ):
            point = int(digits, 16)
            if point <= 0x10FFFF:
                return chr(point), digits_end

        raise ExpressionError(
            f"Invalid escape {text[start:digits_end]!r}; \\{code} takes exactly "
            f"{_HEX_ESCAPE_LENGTHS[code]} hexadecimal digits.",
            start,
        )

    raise ExpressionError(
        f"Invalid escape '\\{code}' in a string; write '\\\\' for a backslash, "
        'for example "eu\\\\.west" in a regular expression, or use a raw '
        "string in backticks such as `eu\\.west`.",
        start,
    )
