"""Client secrets, signing keys, the grant, tokens and the bearer guard.

The HTTP routes live in `netcalc.auth.routes` (the seed token endpoint and
the key set) and `netcalc.auth.oauth` (the standard OAuth 2.0 endpoints).
"""
