"""Client secrets, signing keys, the grant, tokens and the bearer guard."""

from netcalc.auth.routes import router

__all__ = ["router"]
