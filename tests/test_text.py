"""What text netcalc stores and prints back: names, and emails."""

from __future__ import annotations

import pytest

from netcalc.accounts.service import email_key, normalise_email
from netcalc.errors import UsageError
from netcalc.text import is_printable, is_visible, shows_anything, without_formatting


@pytest.mark.parametrize(
    "name",
    [
        "office",
        "Büro 2",
        "\u0646\u06cc\u0645\u200c\u0641\u0627\u0635\u0644\u0647",
        "dev \U0001f468\u200d\U0001f4bb",
        "a" * 100,
    ],
    ids=["ascii", "accents", "non-joiner", "emoji-joiner", "long"],
)
def test_names_may_use_what_scripts_and_emoji_need(name: str) -> None:
    """Joiners are formatting that real names use, so names may hold them."""
    assert is_printable(name)


@pytest.mark.parametrize(
    "name",
    ["a\x00b", "a\x1b[2J", "a\x85b", "a\ud800b", "a\u2028b", "a\u2029b", "a\u202eb"],
    ids=["nul", "escape", "c1", "surrogate", "line-sep", "para-sep", "rtl-override"],
)
def test_names_refuse_what_breaks_or_reorders_a_printed_line(name: str) -> None:
    """Controls, separators and direction marks would rewrite an operator's
    terminal or make an audit line read other than it is."""
    assert not is_printable(name)


def test_identifiers_refuse_invisible_formatting() -> None:
    """A zero-width character would make two emails look the same."""
    assert is_visible("ops@example.com")
    assert not is_visible("o\u200bps@example.com")
    assert not is_visible("o\u200dps@example.com")


@pytest.mark.parametrize(
    "email",
    ["ops@example.com", " Ops.Team@Mail.Example.com ", "a@b.co", "x" * 64 + "@e.io"],
)
def test_plausible_emails_are_kept_trimmed_and_lower_cased(email: str) -> None:
    """An email of a usual shape is stored trimmed and in lower case."""
    assert normalise_email(email) == email.strip().lower()


def test_an_email_of_254_characters_is_the_longest() -> None:
    """RFC 5321 caps a deliverable address at 254 characters."""
    longest = "a@" + ".".join(["b" * 63] * 3) + "." + "c" * 60
    assert len(longest) == 254
    assert normalise_email(longest) == longest
    with pytest.raises(UsageError, match="not an email address"):
        normalise_email(longest + "c")


def test_an_email_is_kept_in_one_unicode_form() -> None:
    """A decomposed accent and its composed twin are one email, not two
    accounts that look alike."""
    decomposed = "Jose\u0301@example.com"
    assert normalise_email(decomposed) == "jos\u00e9@example.com"
    assert email_key(decomposed) == email_key("jos\u00e9@EXAMPLE.com ")


def test_an_email_holding_a_client_secret_is_refused() -> None:
    """A secret typed into the email field is neither stored nor repeated."""
    secret = "ncs_" + "A" * 49
    with pytest.raises(UsageError) as refused:
        normalise_email(secret + "@example.com")
    assert secret not in refused.value.message


def test_hidden_formatting_is_seen_through() -> None:
    """Checks for hidden content read text without its formatting."""
    assert without_formatting("ncs_AB\u00adCD\u200dEF\u2060") == "ncs_ABCDEF"
    assert not shows_anything("\u200d\u3000 ")
    assert shows_anything("\u200db")


@pytest.mark.parametrize(
    "blank",
    ["\u200b\u200b", "\ufeff", "\u00ad", "\u2060", "\u115f", " \u3164 ", "\ufe0f"],
    ids=["zero-width", "bom", "soft-hyphen", "word-joiner", "filler", "hangul", "vs16"],
)
def test_characters_that_draw_nothing_show_nothing(blank: str) -> None:
    """Formatting, Hangul fillers and variation selectors alone draw nothing,
    but beside a letter they are text."""
    assert not shows_anything(blank)
    assert shows_anything(blank + "x")
