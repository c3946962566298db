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


_BLANK_LETTERS = frozenset("\u034f\u115f\u1160\u17b4\u17b5\u3164\uffa0")
"""Characters that are not formatting (Cf) but that Unicode also lists as
default ignorable, drawn as nothing: the combining grapheme joiner, the
Hangul fillers, and two Khmer vowels kept only for compatibility."""


def shows_anything(text: str) -> bool:
    """True if some character of `text` is neither a space, formatting, a
    variation selector nor a blank letter: whether it draws anything."""
    return any(
        not char.isspace()
        and char not in _BLANK_LETTERS
        and not _is_variation_selector(char)
        for char in without_formatting(text)
    )


def _is_variation_selector(char: str) -> bool:
    code = ord(char)
    return 0xFE00 <= code <= 0xFE0F or 0xE0100 <= code <= 0xE01EF
