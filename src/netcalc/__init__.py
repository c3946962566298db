"""netcalc: an OAuth 2.0 client-credentials server with the NetworkCalc API."""

__version__ = "0.1.0"
