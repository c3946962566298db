"""The table of subnets saved by accounts."""

from __future__ import annotations

from sqlalchemy import Column, ForeignKey, Integer, String, Table

from netcalc.db import UTCDateTime, metadata

subnets = Table(
    "subnets",
    metadata,
    Column("id", String(32), primary_key=True),
    Column(
        "account_id",
        String(32),
        ForeignKey("accounts.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    Column("name", String(100), nullable=False),
    Column("network_address", String(15), nullable=False),
    Column("subnet_bits", Integer, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
)
