"""The webhook's HTTPS endpoints: ``POST /mutate``, ``POST /validate``, ``GET /healthz``, ``GET /readyz``.

Bad input is answered, never crashed on: a body over 3 MiB gets 413, a compressed body 415, a body not
sent within :data:`BODY_TIMEOUT` 408, a body that is not an AdmissionReview 400 with a message naming the
field at fault. Every accepted review is answered before its deadline: what is not decided by then (or
fails inside the engine) is answered as each rule's ``failurePolicy`` says, counted in
``trustwatch_admission_fallback_decisions_total`` and logged.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from aiohttp import web

from exporter.admission.engine import AdmissionEngine, Decision, Webhook
from exporter.admission.review import AdmissionRequest, ReviewError, parse_review, render_response
from exporter.metrics import ServiceMetrics

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 3 * 1024 * 1024
# Seconds a client has to send the whole body once its headers arrived (a trickled body is cut here).
BODY_TIMEOUT = 5.0
# Bodies above this are parsed on a worker thread, so a few large ones cannot stall the event loop.
INLINE_PARSE_BYTES = 64 * 1024
PARSE_THREADS = 2


# Rejections answered without reading the whole body.
_BODY_UNREAD = frozenset({408, 413, 415})


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"message": message}, status=status)


class WebhookHandlers:
    """Request handling around one engine; ``ready`` says whether every input of a decision (policies,
    namespace labels) is loaded."""

    def __init__(self, engine: AdmissionEngine, metrics: ServiceMetrics, ready: Callable[[], bool]) -> None:
        self._engine = engine
        self._metrics = metrics
        self._ready = ready
        self._parsers = ThreadPoolExecutor(PARSE_THREADS, thread_name_prefix="trustwatch-parse")

    def close(self) -> None:
        self._parsers.shutdown(wait=False, cancel_futures=True)

    async def mutate(self, request: web.Request) -> web.Response:
        return await self._handle(request, "mutate")

    async def validate(self, request: web.Request) -> web.Response:
        return await self._handle(request, "validate")

    async def healthz(self, _request: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    async def readyz(self, _request: web.Request) -> web.Response:
        if self._ready():
            return web.Response(text="ok\n")
        return web.Response(status=503, text="not ready: namespace labels or policies not loaded yet\n")

    def _rejected(self, webhook: Webhook, status: int, message: str) -> web.Response:
        self._metrics.admission_requests.labels(
            webhook=webhook, operation="", kind="", decision="error"
        ).inc()
        log.warning(
            "rejected an admission request", extra={"webhook": webhook, "status": status, "reason": message}
        )
        response = _error(status, message)
        if status in _BODY_UNREAD:
            # The rest of the body is still on the wire: "Connection: close" tells the client not to send
            # its next request on this connection, which is closed once the answer is out.
            response.force_close()
        return response

    async def _handle(self, request: web.Request, webhook: Webhook) -> web.Response:
        loop = asyncio.get_running_loop()
        arrived = loop.time()
        config = self._engine.config
        # Verification settles by the decision budget; the answer itself is forced out halfway between
        # the budget and the API server's timeout, whatever is still running.
        deadline = arrived + config.decision_budget
        answer_by = arrived + (config.decision_budget + config.timeout) / 2
        encoding = request.headers.get("Content-Encoding", "identity").strip().lower()
        if encoding not in ("", "identity"):
            return self._rejected(
                webhook, 415, f"Content-Encoding {encoding[:40]!r} is not accepted; send JSON"
            )
        if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
            return self._rejected(webhook, 413, f"body exceeds {MAX_BODY_BYTES} bytes")
        try:
            async with asyncio.timeout(min(BODY_TIMEOUT, max(0.0, deadline - loop.time()))):
                body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            return self._rejected(webhook, 413, f"body exceeds {MAX_BODY_BYTES} bytes")
        except TimeoutError:
            return self._rejected(webhook, 408, "the request body was not received in time")
        try:
            review = await self._parse(body, deadline)
        except ReviewError as exc:
            return self._rejected(webhook, 400, f"not a valid AdmissionReview: {exc}")
        except TimeoutError:
            return self._rejected(webhook, 429, "too many large requests at once; retry")
        decision = await self._decide(webhook, review, deadline, answer_by)
        body_out = render_response(review.api_version, review.uid, decision.response)
        return web.json_response(body_out, dumps=json.dumps)

    async def _parse(self, body: bytes, deadline: float) -> AdmissionRequest:
        if len(body) <= INLINE_PARSE_BYTES:
            return parse_review(body)
        loop = asyncio.get_running_loop()
        async with asyncio.timeout_at(deadline):
            return await loop.run_in_executor(self._parsers, parse_review, body)

    async def _decide(
        self, webhook: Webhook, review: AdmissionRequest, deadline: float, answer_by: float
    ) -> Decision:
        try:
            async with asyncio.timeout_at(answer_by):
                return await self._engine.review(webhook, review, deadline)
        except TimeoutError:
            reason = "deadline"
            problem = f"no decision within the {self._engine.config.decision_budget:g}s admission deadline"
            log.warning("admission review ran out of time", extra={"webhook": webhook, "uid": review.uid})
        except Exception:
            reason = "error"
            problem = "internal error"
            log.exception("admission review failed", extra={"webhook": webhook, "uid": review.uid})
        self._metrics.admission_fallbacks.labels(webhook=webhook, reason=reason).inc()
        return self._engine.fallback(webhook, review, problem)


def build_webhook_app(
    engine: AdmissionEngine, metrics: ServiceMetrics, ready: Callable[[], bool]
) -> web.Application:
    """The aiohttp application serving the webhook endpoints (serve it over TLS with
    :func:`exporter.listen.start_site`)."""
    handlers = WebhookHandlers(engine, metrics, ready)
    app = web.Application(client_max_size=MAX_BODY_BYTES)

    async def close_parsers(_app: web.Application) -> None:
        handlers.close()

    app.on_cleanup.append(close_parsers)
    app.router.add_post("/mutate", handlers.mutate)
    app.router.add_post("/validate", handlers.validate)
    app.router.add_get("/healthz", handlers.healthz)
    app.router.add_get("/readyz", handlers.readyz)
    return app
