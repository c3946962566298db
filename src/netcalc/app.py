"""The application factory: routers, error handling and the lifespan."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

from fastapi import FastAPI, Request
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text
from starlette.responses import Response
from starlette.staticfiles import StaticFiles

from netcalc import calculator, subnets
from netcalc.accounts.console import console_router
from netcalc.audit import purge_events
from netcalc.auth import oauth, routes
from netcalc.auth.store import purge_expired_revocations
from netcalc.calculator import routes as calculator_routes
from netcalc.db import Arrivals
from netcalc.direct import DirectApp, query_value
from netcalc.errors import UnexpectedError
from netcalc.metrics import COLLECTOR, worker_files
from netcalc.observe import configure_logging
from netcalc.openapi import without_validation_errors
from netcalc.outages import log_background_failure, log_unhandled
from netcalc.responses import error_body, install_error_handlers, ok
from netcalc.runtime import Runtime, runtime_of
from netcalc.settings import Settings, load_settings
from netcalc.startup import StartOutages
from netcalc.subnets import routes as subnet_routes


async def _maintain(runtime: Runtime) -> None:
    """Keep keys in step with other instances; drop stale revocations,
    expired console sessions with the forms they sent, and audit events past
    their retention."""
    retention_days = runtime.settings.audit_retention_days
    while True:
        await asyncio.sleep(runtime.settings.key_refresh_seconds)
        try:
            await runtime.keys.refresh()
            await purge_expired_revocations(runtime.engine)
            await runtime.console.sessions.purge_expired()
            if retention_days:
                await purge_events(runtime.engine, timedelta(days=retention_days))
        except Exception as exc:
            log_background_failure("periodic maintenance", exc)


@contextlib.asynccontextmanager
async def _lifespan(app: DirectApp) -> AsyncIterator[dict[str, Any]]:
    runtime = app.runtime
    await runtime.keys.start()
    await runtime.revocations.start()
    runtime.usage.start()
    maintenance = asyncio.create_task(_maintain(runtime))
    shared_metrics = COLLECTOR.files = worker_files()
    if shared_metrics is not None:
        shared_metrics.start()
    try:
        # The state reaches the server's protocol, which counts arrivals.
        yield {Arrivals.ASGI_STATE: runtime.arrivals}
    finally:
        maintenance.cancel()
        await asyncio.gather(maintenance, return_exceptions=True)
        if shared_metrics is not None:
            await shared_metrics.stop()
        await runtime.usage.stop()
        await runtime.revocations.stop()
        await runtime.throttle.close()
        if runtime.shared_counts is not None:
            await runtime.shared_counts.close()
        await runtime.reads.dispose()
        await runtime.engine.dispose()


def _operations(app: FastAPI) -> None:
    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> Response:
        return ok()

    @app.get("/readyz", include_in_schema=False)
    async def readyz(request: Request) -> Response:
        runtime = runtime_of(request)
        try:
            async with runtime.engine.connect() as connection:
                await connection.execute(text("SELECT 1"))
        except Exception as exc:
            # Polled every few seconds: an outage is logged as for any route.
            log_unhandled(request.method, request.scope["path"], exc)
            return error_body(UnexpectedError("The database is not reachable."))
        # Ready without Redis, which every instance shares: failing here
        # would take every instance out at once, though each can serve.
        shared = runtime.shared_counts
        if shared is not None and not await shared.reachable():
            return ok({"degraded": ["redis"]})
        return ok()

    @app.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)


def _direct_routes(app: DirectApp) -> None:
    """The routes every token and account call takes, past FastAPI's routing."""
    app.add_direct_route("POST", "/api/auth/token", routes.token_endpoint)
    app.add_direct_route("POST", "/oauth2/token", oauth.token)
    app.add_direct_route("POST", "/oauth2/introspect", oauth.introspect)
    app.add_scope_route(
        "GET",
        "/api/account/subnets",
        subnet_routes.list_subnets,
        subnet_routes.list_subnets_directly,
    )
    app.add_direct_prefix(
        "GET",
        calculator_routes.PREFIX,
        calculator_routes.calculate,
        rest="subnet",
        binary=query_value("binary"),
        fields=query_value("fields"),
    )


class _NetcalcApp(DirectApp):
    """The app, whose OpenAPI document lists what each route really answers."""

    def openapi(self) -> dict[str, Any]:
        return without_validation_errors(super().openapi())


def create_app(settings: Settings | None = None) -> DirectApp:
    """Build the netcalc ASGI app; the database must already be migrated."""
    settings = settings or load_settings()
    configure_logging(settings.log_level)
    app = _NetcalcApp(
        title="netcalc",
        version="0.1.0",
        lifespan=_lifespan,
        # Swagger UI would load scripts from a CDN; the schema itself is
        # served for tools at openapi_url.
        docs_url=None,
        redirect_slashes=False,
        redoc_url=None,
        openapi_url="/api/openapi.json",
    )
    app.runtime = Runtime.build(settings)
    app.state.public_url = settings.issuer
    install_error_handlers(app)
    app.add_middleware(StartOutages)
    app.include_router(routes.router)
    app.include_router(oauth.router)
    app.include_router(subnets.router)
    app.include_router(calculator.router)
    app.include_router(console_router)
    static = StaticFiles(packages=[("netcalc.accounts", "static")])
    app.mount("/static", static, name="static")
    _operations(app)
    _direct_routes(app)
    return app
