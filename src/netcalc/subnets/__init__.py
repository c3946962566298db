"""The Subnets account API."""

from netcalc.subnets.routes import router

__all__ = ["router"]
