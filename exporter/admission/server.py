"""The webhook's HTTPS endpoints: ``POST /mutate``, ``POST /validate``, ``GET /healthz``, ``GET /readyz``.

Bad input is answered, never crashed on: a body over 3 MiB gets 413, a body that is not an AdmissionReview
gets 400 with a message saying what is wrong, and an unexpected failure inside the engine still produces
an AdmissionReview (denied, with the reason) rather than a 500 the API server would have to interpret.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable

from aiohttp import web

from exporter.admission.engine import AdmissionEngine, Webhook
from exporter.admission.review import AdmissionResponse, ReviewError, parse_review, render_response
from exporter.metrics import ServiceMetrics

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 3 * 1024 * 1024


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"message": message}, status=status)


class WebhookHandlers:
    """Request handling around one engine; ``ready`` says whether policies are loaded."""

    def __init__(self, engine: AdmissionEngine, metrics: ServiceMetrics, ready: Callable[[], bool]) -> None:
        self._engine = engine
        self._metrics = metrics
        self._ready = ready

    async def mutate(self, request: web.Request) -> web.Response:
        return await self._handle(request, "mutate")

    async def validate(self, request: web.Request) -> web.Response:
        return await self._handle(request, "validate")

    async def healthz(self, _request: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    async def readyz(self, _request: web.Request) -> web.Response:
        if self._ready():
            return web.Response(text="ok\n")
        return web.Response(status=503, text="policies not loaded yet\n")

    def _rejected(self, webhook: Webhook, status: int, message: str) -> web.Response:
        self._metrics.admission_requests.labels(
            webhook=webhook, operation="", kind="", decision="error"
        ).inc()
        log.warning(
            "rejected an admission request", extra={"webhook": webhook, "status": status, "reason": message}
        )
        return _error(status, message)

    async def _handle(self, request: web.Request, webhook: Webhook) -> web.Response:
        if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
            return self._rejected(webhook, 413, f"body exceeds {MAX_BODY_BYTES} bytes")
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            return self._rejected(webhook, 413, f"body exceeds {MAX_BODY_BYTES} bytes")
        try:
            review = parse_review(body)
        except ReviewError as exc:
            return self._rejected(webhook, 400, f"not a valid AdmissionReview: {exc}")
        try:
            decision = await self._engine.review(webhook, review)
            response = decision.response
        except Exception:
            log.exception("admission review failed", extra={"webhook": webhook, "uid": review.uid})
            self._metrics.admission_requests.labels(
                webhook=webhook, operation=review.operation, kind=review.kind, decision="error"
            ).inc()
            response = AdmissionResponse(
                allowed=False,
                code=500,
                message="trustwatch could not evaluate this request because of an internal error; "
                "see the webhook's log",
            )
        body_out = render_response(review.api_version, review.uid, response)
        return web.json_response(body_out, dumps=json.dumps)


def build_webhook_app(
    engine: AdmissionEngine, metrics: ServiceMetrics, ready: Callable[[], bool] = lambda: True
) -> web.Application:
    """The aiohttp application serving the webhook endpoints (serve it over TLS with
    :func:`exporter.listen.start_site`)."""
    handlers = WebhookHandlers(engine, metrics, ready)
    app = web.Application(client_max_size=MAX_BODY_BYTES)
    app.router.add_post("/mutate", handlers.mutate)
    app.router.add_post("/validate", handlers.validate)
    app.router.add_get("/healthz", handlers.healthz)
    app.router.add_get("/readyz", handlers.readyz)
    return app
