"""structlog setup: one line per event, key=value in development, JSON in production.

Log calls pass ids, stages, durations and counts only. Never pass transcript or note text,
patient references, file names or exception messages from vendors (they can echo input).
"""

from __future__ import annotations

import logging
import sys
import traceback

import structlog


class _NoExceptionText(logging.Filter):
    """Keep exception messages out of DBOS's log lines; they can quote data (SQL parameters,
    vendor replies). Our own errors are ordinary outcomes already reported on the
    consultation: dropped. Anything else keeps one line with its type and place."""

    def filter(self, record: logging.LogRecord) -> bool:
        from clinscribe.errors import ClinscribeError

        error = record.exc_info[1] if record.exc_info else None
        if error is None:
            return True
        if isinstance(error, ClinscribeError):
            return False
        frames = traceback.extract_tb(error.__traceback__)
        where = f"{frames[-1].filename.rsplit('/', 1)[-1]}:{frames[-1].lineno}" if frames else "?"
        record.msg = f"{record.getMessage()} ({type(error).__name__} at {where})"
        record.args = None
        record.exc_info = None
        record.exc_text = None
        return True


def configure_logging(level: str = "INFO", fmt: str = "console") -> None:
    renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer()
        if fmt == "json"
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=False,
    )
    logging.basicConfig(
        level=level.upper(), stream=sys.stderr, format="%(levelname)s %(name)s %(message)s"
    )
    dbos_logger = logging.getLogger("dbos")
    if not any(isinstance(f, _NoExceptionText) for f in dbos_logger.filters):
        dbos_logger.addFilter(_NoExceptionText())
    # httpx logs full request URLs at INFO; keep them out of production logs.
    logging.getLogger("httpx").setLevel(logging.WARNING)
