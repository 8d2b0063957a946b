"""Optional OpenTelemetry tracing: one server span per request, exported over OTLP.

Off unless the standard OpenTelemetry variables ask for it
(``OTEL_EXPORTER_OTLP_ENDPOINT`` or ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``, or
``OTEL_TRACES_EXPORTER=otlp``) and ``OTEL_SDK_DISABLED`` is not true. Off,
``init_app`` registers nothing, so a request pays nothing for it. On, it needs
``opentelemetry-sdk`` and ``opentelemetry-exporter-otlp-proto-http`` (``pip
install 'mnist-service[tracing]'``; without them it logs a warning and stays
off). Each request's span continues the caller's trace (the ``traceparent``
that ``requestlog`` accepted), carries the route, method, status and model
version, and is batched to the collector by the SDK's background thread; the
response's ``traceparent`` then names this span. The exporter reads the rest
of its configuration (headers, timeouts, ``OTEL_SERVICE_NAME``) from the
standard variables itself.
"""

from __future__ import annotations

import logging
import os

from flask import Flask, g, request

__all__ = ["enabled", "init_app"]

log = logging.getLogger("service.tracing")


def enabled(environ=os.environ) -> bool:
    """Return whether the environment asks for trace export."""
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    return bool(environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
                or environ.get("OTEL_TRACES_EXPORTER", "").strip().lower() == "otlp")


def init_app(app: Flask) -> bool:
    """Export a span per request when configured; return whether tracing is on."""
    if not enabled():
        return False
    try:
        from opentelemetry import trace
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
    except ImportError as exc:
        log.warning("OTEL_* asks for tracing but the OpenTelemetry packages are missing; tracing is off",
                    extra={"error": str(exc)})
        return False

    provider = TracerProvider(resource=Resource.create({"service.name": os.environ.get(
        "OTEL_SERVICE_NAME", "mnist-service")}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    tracer = provider.get_tracer("mnist-service")
    propagator = TraceContextTextMapPropagator()
    app.extensions["tracer_provider"] = provider

    def start() -> None:
        carrier = {"traceparent": g.traceparent} if g.get("traceparent") else {}
        span = tracer.start_span(request.endpoint or "unmatched", context=propagator.extract(carrier),
                                 kind=trace.SpanKind.SERVER,
                                 attributes={"http.request.method": request.method,
                                             "url.path": request.path})
        g.span = span
        out: dict[str, str] = {}
        propagator.inject(out, context=trace.set_span_in_context(span))
        g.traceparent_out = out.get("traceparent")

    def finish(response):
        span = g.pop("span", None)
        if span is not None:
            span.set_attribute("http.response.status_code", response.status_code)
            if g.get("model_version") is not None:
                span.set_attribute("mnist.model_version", g.model_version)
            span.end()
        return response

    app.before_request(start)
    app.after_request(finish)
    log.info("tracing: exporting a span per request over OTLP")
    return True
