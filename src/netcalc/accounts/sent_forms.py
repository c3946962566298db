"""Single-use console forms: a generate or rotate form acts at most once.

Each such form carries a random form id. Its first post is recorded
against the console session that sent it, in the transaction of the change
it asks for. Posting it again, as a reload of the answer page, the back
button or a double click do, is refused: no second credentials whose
secret nobody saw, no second rotation that cuts short the first one's grace
period. The table's key does the refusing, so two posts of one form racing
on different instances cannot both pass. Sent forms are deleted with their
session.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from netcalc.accounts.forms import Form
from netcalc.accounts.sessions import ConsoleSession
from netcalc.accounts.tables import sent_forms
from netcalc.db import utcnow
from netcalc.errors import FormAlreadySent, InvalidRequest

FORM_ID_FIELD = "form_id"
"""The hidden field that carries a single-use form's id."""

_FORM_ID = re.compile(r"[A-Za-z0-9_-]{22}")
"""A form id's shape: 16 random bytes in url-safe base64, unpadded."""


def new_form_id() -> str:
    """A fresh id for a single-use form about to be shown."""
    return secrets.token_urlsafe(16)


@dataclass(frozen=True)
class SentForm:
    """One post of a single-use form, by the session that sent it."""

    session_hash: str
    form_id: str

    @classmethod
    def of(cls, session: ConsoleSession, form: Form) -> SentForm:
        """The post of `form` in `session`.

        Raises:
            InvalidRequest: the form id is missing or malformed.
        """
        form_id = form.get(FORM_ID_FIELD)
        if _FORM_ID.fullmatch(form_id) is None:
            raise InvalidRequest(
                "This form has no valid form id, so it was not acted on. "
                "Open it again from the credentials list."
            )
        return cls(session.token_hash, form_id)

    async def record(self, connection: AsyncConnection) -> None:
        """Record the form as sent, in the transaction of the change it asks for.

        Raises:
            FormAlreadySent: the session sent this form before; the caller's
                transaction must roll back, taking the change with it.
        """
        statement = sent_forms.insert().values(
            session_hash=self.session_hash, form_id=self.form_id, sent_at=utcnow()
        )
        try:
            await connection.execute(statement)
        except IntegrityError:
            raise FormAlreadySent() from None
