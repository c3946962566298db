"""The served protocol tells the SQLite reads when requests arrive, so a
revocation made elsewhere bites the very next request, even on a kept
connection whose earlier answers came from memory."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
import uvicorn

from netcalc.app import create_app
from netcalc.db import Arrivals
from netcalc.http_limits import LimitedHttpProtocol
from netcalc.runtime import Runtime
from netcalc.settings import Settings
from tests.support import Console, ThreadedServer, free_port

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


class ServedApp(ThreadedServer):
    """The app under uvicorn with netcalc's protocol, on a thread."""

    def __init__(self, settings: Settings) -> None:
        self.app = create_app(settings)
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        config = uvicorn.Config(
            self.app,
            host="127.0.0.1",
            port=port,
            http=LimitedHttpProtocol,
            log_level="warning",
        )
        super().__init__(config)

    @property
    def arrivals(self) -> Arrivals:
        runtime: Runtime = self.app.runtime
        return runtime.arrivals


@pytest.fixture
def served(settings: Settings, console: Console) -> Iterator[ServedApp]:
    app = ServedApp(settings)
    app.start()
    try:
        yield app
    finally:
        app.stop()


def token_for(http: httpx.Client, client_id: str, secret: str) -> str:
    body = {
        "client_id": client_id,
        "client_secret": secret,
        "grant_type": "client_credentials",
    }
    response = http.post("/api/auth/token", json=body)
    assert response.status_code == 200, response.text
    return str(response.json()["token"]["access_token"])


def test_revocation_elsewhere_bites_the_next_request_on_a_kept_connection(
    served: ServedApp, console: Console
) -> None:
    """Answers from memory end with the first request sent after the
    revocation, on the same connection."""
    issued = console.credentials(console.account("kept@example.com"))
    with httpx.Client(base_url=served.url) as http:
        token = token_for(http, issued.client_id, issued.client_secret)
        headers = {"Authorization": f"Bearer {token}"}
        for _ in range(3):
            assert http.get("/api/account/subnets", headers=headers).status_code == 200
        counted_before = served.arrivals.count
        # Revoked through another engine: this app's own transactions are
        # not involved, only the arrival of the next request.
        console.revoke(issued.client_id)
        refused = http.get("/api/account/subnets", headers=headers)
    assert served.arrivals.counted
    assert counted_before >= 4
    assert refused.status_code == 401
    assert refused.json()["status"] == "INVALID_GRANT"
