"""Operations: Prometheus metrics and JSON log lines for the HTTP API.

Metrics are per process unless `PROMETHEUS_MULTIPROC_DIR` names a folder shared by the server's
workers (`puhui serve --workers N` sets one up), in which case /metrics adds up every worker.
Log lines carry the request id and never a raw citizen identifier: request bodies are not logged.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)

REQUESTS = Counter(
    "puhui_http_requests_total", "HTTP requests answered.", ["method", "route", "status"]
)
LATENCY = Histogram(
    "puhui_http_request_seconds",
    "Time to answer an HTTP request.",
    ["method", "route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
RECORDS = Counter(
    "puhui_records_total", "Records answered through the API, by receipt status.", ["status"]
)
GROUP_SUBMISSIONS = Histogram(
    "puhui_settlement_group_submissions",
    "API submissions settled together in one transaction (group commit).",
    buckets=(1, 2, 4, 8, 16, 32, 64, 128),
)
GROUP_RECORDS = Histogram(
    "puhui_settlement_group_records",
    "Records settled together in one transaction (group commit).",
    buckets=(1, 10, 100, 1_000, 5_000, 10_000, 20_000),
)
GROUP_SECONDS = Histogram(
    "puhui_settlement_group_seconds",
    "Time to settle and commit one group of API submissions.",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)


def observe_group(
    submissions: int, records: int, seconds: float, statuses: Mapping[str, int]
) -> None:
    """Record one settled group of API submissions, and its receipts by status."""
    GROUP_SUBMISSIONS.observe(submissions)
    GROUP_RECORDS.observe(records)
    GROUP_SECONDS.observe(seconds)
    for status, n in statuses.items():
        RECORDS.labels(status).inc(n)


def metrics_payload() -> tuple[bytes, str]:
    """The exposition of every metric, and its content type."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(), CONTENT_TYPE_LATEST


_STANDARD = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message"}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message and the record's extra fields."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        line |= {k: v for k, v in record.__dict__.items() if k not in _STANDARD}
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False, default=str)


def log_config(level: str = "INFO") -> dict[str, Any]:
    """A `logging.config.dictConfig` for the server: JSON lines on standard error."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": JsonFormatter}},
        "handlers": {
            "stderr": {
                "class": "logging.StreamHandler",
                "formatter": "json",
                "stream": "ext://sys.stderr",
            }
        },
        "loggers": {
            "puhui": {"handlers": ["stderr"], "level": level, "propagate": False},
            "uvicorn.error": {"handlers": ["stderr"], "level": "WARNING", "propagate": False},
            "uvicorn.access": {"handlers": [], "level": "WARNING", "propagate": False},
        },
    }
