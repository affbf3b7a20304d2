"""Exporting spans to the Carrot ingest API: schema, conversion, transport, exporter and processor."""

from __future__ import annotations

from carrot_ai.export._convert import record_id, span_to_trace_record
from carrot_ai.export._exporter import CarrotSpanExporter, ExportStats
from carrot_ai.export._processor import CarrotSpanProcessor
from carrot_ai.export._schema import INGEST_PATH, TraceRecord, trace_record_schema

__all__ = [
    "INGEST_PATH",
    "CarrotSpanExporter",
    "CarrotSpanProcessor",
    "ExportStats",
    "TraceRecord",
    "record_id",
    "span_to_trace_record",
    "trace_record_schema",
]
