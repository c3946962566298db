"""The web console at `/`: sign up, sign in, and manage client credentials.

Server-rendered HTML that works without JavaScript; a script only adds the
copy buttons and keeps a double click from sending a single-use form twice.
Every form carries its session's CSRF token, and every change goes through
`netcalc.accounts.service`, which commits before it returns, so the token
endpoint and the bearer guard see it at once.

The pages live by subject: `visitors` (sign-up, sign-in, sign-out),
`credential_pages`, and `activity` (the audit trail); `holders` tells who
is asking.
"""

from __future__ import annotations

from fastapi import APIRouter

from netcalc.accounts.activity import activity_router
from netcalc.accounts.credential_pages import credentials_router
from netcalc.accounts.pages import PageRoute
from netcalc.accounts.visitors import visitor_router

console_router = APIRouter(route_class=PageRoute, include_in_schema=False)
console_router.include_router(visitor_router)
console_router.include_router(credentials_router)
console_router.include_router(activity_router)
