"""Client secrets, signing keys, the grant, tokens and the bearer guard."""

from netcalc.auth.oauth import router as oauth_router
from netcalc.auth.routes import router

__all__ = ["oauth_router", "router"]
