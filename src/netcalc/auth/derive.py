"""Purpose-bound subkeys of the one server secret (RFC 5869 HKDF)."""

from __future__ import annotations

from cryptography.hazmat.primitives.hashes import SHA256
from cryptography.hazmat.primitives.kdf.hkdf import HKDF


def derive_key(server_secret: bytes, purpose: str) -> bytes:
    """A 32-byte key for one purpose, so no two uses share key material."""
    hkdf = HKDF(
        algorithm=SHA256(),
        length=32,
        salt=b"netcalc",
        info=purpose.encode(),
    )
    return hkdf.derive(server_secret)
