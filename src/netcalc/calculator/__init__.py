"""The public IPv4 subnet calculator, `GET /api/ip/{subnet}` (CONTRACT.md §4)."""

from netcalc.calculator.routes import router

__all__ = ["router"]
