"""HTML pages of the console: templates, their filters, and error pages.

Console routes use `PageRoute`, so a netcalc error raised inside one is
answered as an HTML page here, while the API keeps its JSON errors.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from datetime import datetime
from typing import Any

from fastapi.routing import APIRoute
from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from netcalc.accounts.passwords import MIN_LENGTH
from netcalc.errors import (
    CsrfRejected,
    FormAlreadySent,
    NetcalcError,
    NotFound,
    SignUpClosed,
)

NO_STORE = {"Cache-Control": "no-store"}
"""Console pages hold account data, and some a secret: never cached."""

_TITLES = {
    CsrfRejected: "This form cannot be used",
    FormAlreadySent: "This form was already sent",
    NotFound: "Not found",
    SignUpClosed: "Sign-up is closed",
}

_WAYS_BACK: dict[type[NetcalcError], tuple[str, str]] = {
    FormAlreadySent: ("/credentials", "Back to your credentials"),
}
"""Where an error page leads, when not back to the console's start."""


def _stamp(value: str | datetime | None, zone: bool = True) -> str:
    """A UTC time as the console shows it; tables name the zone once instead."""
    if value is None:
        return ""
    when = datetime.fromisoformat(value) if isinstance(value, str) else value
    return when.strftime("%Y-%m-%d %H:%M UTC" if zone else "%Y-%m-%d %H:%M")


def _duration(seconds: int) -> str:
    """Seconds in the largest unit that divides them evenly, kept on one line."""
    for unit, size in (("h", 3600), ("min", 60)):
        if seconds % size == 0:
            return f"{seconds // size}\u00a0{unit}"
    return f"{seconds}\u00a0s"


_environment = Environment(
    loader=PackageLoader("netcalc.accounts", "templates"),
    autoescape=select_autoescape(default=True),
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
_environment.filters["stamp"] = _stamp
_environment.filters["duration"] = _duration
_environment.globals["min_length"] = MIN_LENGTH


def render(
    template: str,
    status_code: int = 200,
    headers: dict[str, str] | None = None,
    **context: Any,
) -> HTMLResponse:
    """A console page; every page is kept out of caches."""
    context.setdefault("account_email", None)
    context.setdefault("csrf_token", "")
    html = _environment.get_template(template).render(context)
    return HTMLResponse(html, status_code, headers=NO_STORE | (headers or {}))


def redirect(path: str) -> RedirectResponse:
    """See Other: after a form post the browser follows with a GET."""
    return RedirectResponse(path, status_code=303, headers=NO_STORE)


def error_page(error: NetcalcError) -> HTMLResponse:
    """A netcalc error as an HTML page.

    NotFound answers 404 here: the API's 400 is its own contract's code.
    """
    status_code = 404 if isinstance(error, NotFound) else error.http_status
    back, back_label = _WAYS_BACK.get(type(error), ("/", "Back to the console"))
    return render(
        "error.html",
        status_code,
        error.headers(),
        title=_TITLES.get(type(error), "This did not work"),
        message=error.message,
        back=back,
        back_label=back_label,
    )


class SignInRequired(Exception):
    """The page needs a signed-in account; the visitor is sent to sign in."""


class PageRoute(APIRoute):
    """A console route: its errors become HTML pages, not the API's JSON."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def handle(request: Request) -> Response:
            try:
                return await handler(request)
            except SignInRequired:
                return redirect("/signin")
            except NetcalcError as error:
                return error_page(error)

        return handle
