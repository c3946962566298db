"""The calculator's answer fields that hold a dotted-quad address.

Apart from `netcalc.calculator`, whose package imports its routes: the
OpenAPI shapes name these fields too, and the routes import those shapes.
"""

DOTTED_FIELDS = (
    "subnet_mask",
    "wildcard_mask",
    "network_address",
    "broadcast_address",
    "first_assignable_host",
    "last_assignable_host",
)
"""In answer order; with binary forms asked for, each is shown in binary too."""
