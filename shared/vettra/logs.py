"""Structured JSON logs in Cloud Logging's format (one object per line on stderr).

Fields: ``severity``, ``message``, ``time``, ``logging.googleapis.com/trace`` and
whatever ``extra`` the caller passed. Header values and bodies are never logged;
:func:`redact` scrubs anything that looks like a bearer token or key from messages.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
from typing import Any

TRACE_FIELD = "logging.googleapis.com/trace"
_SEVERITY = {
    logging.DEBUG: "DEBUG",
    logging.INFO: "INFO",
    logging.WARNING: "WARNING",
    logging.ERROR: "ERROR",
    logging.CRITICAL: "CRITICAL",
}
_SECRETISH = re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]+|eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9._-]+")
_RESERVED = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime"}


def redact(text: str) -> str:
    return _SECRETISH.sub(lambda m: (m.group(1) or "") + "[redacted]", text)


class CloudLoggingFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "severity": _SEVERITY.get(record.levelno, "DEFAULT"),
            "message": redact(record.getMessage()),
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "logger": record.name,
        }
        for key, value in vars(record).items():
            if key not in _RESERVED and not key.startswith("_"):
                entry[TRACE_FIELD if key == "trace" else key] = value
        if record.exc_info:
            entry["stack_trace"] = redact(self.formatException(record.exc_info))
        return json.dumps(entry, default=str, separators=(",", ":"))


def configure(level: str = "INFO", stream: Any = None) -> None:
    """Route the ``vettra`` loggers to JSON lines; idempotent."""
    logger = logging.getLogger("vettra")
    for handler in list(logger.handlers):
        if getattr(handler, "_vettra", False):
            logger.removeHandler(handler)
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(CloudLoggingFormatter())
    handler._vettra = True  # type: ignore[attr-defined]
    logger.addHandler(handler)
    logger.setLevel(level)
    logger.propagate = False
