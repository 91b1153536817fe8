"""OpenTelemetry traces in: OTLP/HTTP decoding and the mapping of spans to the event log.

``decode`` turns a request body (protobuf or OTLP JSON, maybe gzip) into plain
``Span`` values; ``mapping`` turns spans into pipeline events and AI usage;
``ingest`` stores them through the same paths as native events
(``events.log_events``, ``costs.record_usage``, ``budgets.add_spend``).
Nothing here knows about the web: the route in ``web/api_otlp.py`` calls it.
"""
