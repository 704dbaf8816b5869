"""Parser errors in plain words: what is wrong with a line of JSON, for someone who does not write code.

orjson and the json module explain errors in parser terms ("invalid literal, expected 'true'", "Expecting ','
delimiter"); `plain_json_error` turns them into a sentence that says what to look for and where.
"""

from __future__ import annotations

import re

_RULES: list[tuple[re.Pattern[str], str]] = [
    (
        re.compile(r"unexpected end of data|eof while parsing|unterminated string", re.I),
        "it ends early; a closing quote, ] or }} is missing",
    ),
    (
        re.compile(r"invalid literal|expected 'true'|expected 'false'|expected 'null'", re.I),
        "a word at column {col} is not a JSON value; put text in double quotes, and write true, false and "
        "null in lower case",
    ),
    (
        re.compile(r"trailing comma", re.I),
        "a comma stands before a closing ] or }} at column {col}; remove it",
    ),
    (
        re.compile(r"expected a string key|property name enclosed in double quotes", re.I),
        "a field name at column {col} is not in double quotes; JSON needs \"name\", not 'name' or name",
    ),
    (
        re.compile(r"expected ':'|expecting ':'", re.I),
        "a colon is missing after the field name at column {col}",
    ),
    (
        re.compile(r"expected ',' or|expecting ',' delimiter|expected `,` or", re.I),
        "a comma is missing between two values at column {col}",
    ),
    (
        re.compile(r"unexpected content after document|extra data", re.I),
        "more text follows the end of the record at column {col}; two records on one line, or an extra }} or ]",
    ),
    (
        re.compile(r"control character", re.I),
        "a text at column {col} holds a raw tab or line break; write it as \\t or \\n",
    ),
    (re.compile(r"leading zero", re.I), "a number at column {col} starts with 0; put it in double quotes"),
    (
        re.compile(r"escape", re.I),
        "a backslash at column {col} starts an unknown escape; write a backslash as \\\\",
    ),
    (
        re.compile(r"lone leading surrogate|surrogate", re.I),
        "a broken character escape (\\u…) at column {col}",
    ),
]


def plain_json_error(message: str, column: int | None = None, first_char: str = "") -> str:
    """`"not valid JSON (it ends early: ...)"` from a parser's message (and the column it points at)."""
    col = column if column is not None else "?"
    if re.search(r"expected a json value|expecting value", message, re.I):
        if column in (None, 1) and first_char not in ("{", "["):
            return "not valid JSON (this line is not a record; a record starts with {)"
        return f"not valid JSON (a value is missing or not in double quotes at column {col})"
    for pattern, text in _RULES:
        if pattern.search(message):
            return f"not valid JSON ({text.format(col=col)})"
    detail = message.split(": line")[0].strip().rstrip(".")
    return f"not valid JSON (at column {col}: {detail})"


def line_sentence(line: int, message: str) -> str:
    """`"line 12 is not valid JSON (it ends early; ...)"` / `"line 3: no assistant turn"`."""
    if message.startswith("not valid JSON"):
        return f"line {line} is {message}"
    return f"line {line}: {message}"
