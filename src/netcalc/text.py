"""Text that callers choose, which netcalc stores and prints back."""

from __future__ import annotations

import unicodedata

_UNPRINTABLE = ("Cc", "Cs")
"""Unicode categories refused: control characters and lone surrogates."""


def is_printable(text: str) -> bool:
    """True if `text` holds no control character and no lone surrogate.

    PostgreSQL refuses NUL and UTF-8 cannot encode a lone surrogate, so
    neither can be stored faithfully; and the CLI prints emails and names
    to an operator's terminal, which escape sequences would rewrite.
    """
    return all(unicodedata.category(char) not in _UNPRINTABLE for char in text)
