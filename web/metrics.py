"""`GET /metrics`: request counts and latency per route in the Prometheus text format (prometheus-client).

Each app has its own registry; under gunicorn each worker counts its own requests (a scrape reaches one worker:
docs/api.md, "Metrics"). Labels name the route rule, never the path (a relay session id in a path is a secret).
"""

from __future__ import annotations

import time
from typing import Final

from flask import Blueprint, Flask, Response, current_app, g, request
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest

EXTENSION: Final = "tsm_metrics"

bp = Blueprint("metrics", __name__)


class Metrics:
    """The app's registry and its two instruments."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("tsm_http_requests", "HTTP requests answered", ("method", "route", "status"),
                                registry=self.registry)
        self.latency = Histogram("tsm_http_request_seconds", "Time to answer an HTTP request", ("method", "route"),
                                 registry=self.registry)


def _start() -> None:
    g.metrics_started = time.perf_counter()


def _record(response: Response) -> Response:
    metrics: Metrics = current_app.extensions[EXTENSION]
    route = request.url_rule.rule if request.url_rule is not None else "unmatched"
    metrics.requests.labels(request.method, route, str(response.status_code)).inc()
    started = g.get("metrics_started")
    if started is not None:
        metrics.latency.labels(request.method, route).observe(time.perf_counter() - started)
    return response


@bp.get("/metrics")
def metrics() -> Response:
    """The counters, in the Prometheus exposition format."""
    registry = current_app.extensions[EXTENSION].registry
    return Response(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)


def init_app(app: Flask) -> None:
    app.extensions[EXTENSION] = Metrics()
    app.before_request(_start)
    app.after_request(_record)
    app.register_blueprint(bp)
