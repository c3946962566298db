"""Text that callers choose, which netcalc stores and prints back."""

from __future__ import annotations

import unicodedata

_UNPRINTABLE = frozenset({"Cc", "Cs", "Zl", "Zp"})
"""Unicode categories refused: control characters, lone surrogates, and line
and paragraph separators."""

_BIDI_CONTROLS = frozenset(
    "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
)
"""The marks that reorder the text after them (Unicode bidirectional controls)."""


def is_printable(text: str) -> bool:
    """True if `text` holds no control character, lone surrogate, line or
    paragraph separator, or bidirectional control.

    PostgreSQL refuses NUL and UTF-8 cannot encode a lone surrogate, so
    neither can be stored faithfully; and the CLI prints emails and names
    to an operator's terminal, which escape sequences would rewrite, and
    separators or bidirectional controls would break or reorder.
    """
    return not any(
        char in _BIDI_CONTROLS or unicodedata.category(char) in _UNPRINTABLE
        for char in text
    )


def is_visible(text: str) -> bool:
    """True if `text` is printable and holds no invisible formatting at all.

    Names may need joiners, as some scripts do; an identifier such as an
    email must not, or two that look the same could be different.
    """
    return is_printable(text) and without_formatting(text) == text


def without_formatting(text: str) -> str:
    """`text` without its invisible formatting characters (Unicode Cf), as
    it reads: what a check for hidden content must look at."""
    return "".join(char for char in text if unicodedata.category(char) != "Cf")


def shows_anything(text: str) -> bool:
    """True if some character of `text` is neither a space nor formatting."""
    return any(not char.isspace() for char in without_formatting(text))
