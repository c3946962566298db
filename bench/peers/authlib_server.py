"""Authlib's Flask authorization server with the client credentials grant.

Built as Authlib's Flask guide lays it out: SQLAlchemy models from its
`sqla_oauth2` mixins, an `AuthorizationServer` with `query_client` and
`save_token`, `ClientCredentialsGrant` registered, one confidential client
(client_secret_basic). Tokens are Authlib's default opaque bearer strings,
saved to an SQLite file with netcalc's pragmas (WAL, synchronous=NORMAL).
gunicorn serves the module's `app`; `python authlib_server.py setup` creates
the tables and the client from PEER_DB, PEER_CLIENT_ID and PEER_CLIENT_SECRET.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from authlib.integrations.flask_oauth2 import AuthorizationServer
from authlib.integrations.sqla_oauth2 import (
    OAuth2ClientMixin,
    OAuth2TokenMixin,
    create_query_client_func,
    create_save_token_func,
)
from authlib.oauth2.rfc6749.grants import ClientCredentialsGrant
from flask import Flask
from sqlalchemy import Integer, create_engine, event
from sqlalchemy.orm import DeclarativeBase, mapped_column, scoped_session, sessionmaker

TOKEN_TTL = 3600
"""Seconds an access token lives: netcalc's default."""


class Base(DeclarativeBase):
    """The declarative base of the two tables."""


class Client(Base, OAuth2ClientMixin):
    """A registered client, with its secret kept as Authlib's mixin keeps it."""

    __tablename__ = "oauth2_client"
    id = mapped_column(Integer, primary_key=True)


class Token(Base, OAuth2TokenMixin):
    """An issued access token."""

    __tablename__ = "oauth2_token"
    id = mapped_column(Integer, primary_key=True)
    # Authlib's save_token passes the resource owner; this grant has none.
    user_id = mapped_column(Integer, nullable=True)


def _engine() -> Any:
    engine = create_engine(f"sqlite:///{os.environ['PEER_DB']}")

    @event.listens_for(engine, "connect")
    def _pragmas(connection: Any, record: Any) -> None:
        # The same durability trade as netcalc's SQLite, so that neither side
        # pays more per write than the other.
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("PRAGMA synchronous=NORMAL")
        connection.execute("PRAGMA busy_timeout=5000")

    return engine


session = scoped_session(sessionmaker(bind=_engine()))
app = Flask(__name__)
# Read when the server is made, so it must be set before.
app.config["OAUTH2_TOKEN_EXPIRES_IN"] = {"client_credentials": TOKEN_TTL}
server = AuthorizationServer(
    app,
    query_client=create_query_client_func(session, Client),
    save_token=create_save_token_func(session, Token),
)
server.register_grant(ClientCredentialsGrant)


@app.teardown_appcontext
def _end_session(error: BaseException | None) -> None:
    session.remove()


@app.post("/oauth/token")
def issue_token() -> Any:
    """The token endpoint (RFC 6749 §3.2)."""
    return server.create_token_response()


def setup() -> None:
    """Create the tables and the one confidential client."""
    Base.metadata.create_all(session.get_bind())
    client = Client(
        client_id=os.environ["PEER_CLIENT_ID"],
        client_secret=os.environ["PEER_CLIENT_SECRET"],
    )
    client.set_client_metadata(
        {
            "grant_types": ["client_credentials"],
            "token_endpoint_auth_method": "client_secret_basic",
            "scope": "api",
        }
    )
    session.add(client)
    session.commit()


if __name__ == "__main__" and sys.argv[1:] == ["setup"]:
    setup()
