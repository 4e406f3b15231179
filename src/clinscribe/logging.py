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
    """Keep exception messages out of log lines; they can quote data (SQL parameters, vendor
    replies, request bytes). Our own errors are ordinary outcomes already reported on the
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


class _NoQueryStrings(logging.Filter):
    """Access log lines keep the path and drop the query: searches (?q=) and sign-in
    redirects (?next=) carry patient references."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) >= 3 and isinstance(args[2], str):
            path, _, query = args[2].partition("?")
            if query:
                record.args = (*args[:2], f"{path}?…", *args[3:])
        return True


_QUIET_LIBRARIES = (
    "aiosqlite",
    "sqlalchemy",
    "httpx",
    "httpcore",
    "hpack",
    "multipart",
    "python_multipart",
    "asyncio",
    "faster_whisper",
    "alembic",
    "psycopg",
    "urllib3",
)


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
    # DBOS logs workflow errors; uvicorn logs the traceback of an unhandled request error
    # after our handler has answered 500. Both would print exception messages.
    for name in ("dbos", "uvicorn.error"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, _NoExceptionText) for f in logger.filters):
            logger.addFilter(_NoExceptionText())
    access = logging.getLogger("uvicorn.access")
    if not any(isinstance(f, _NoQueryStrings) for f in access.filters):
        access.addFilter(_NoQueryStrings())
    # Libraries log data at DEBUG/INFO (aiosqlite and SQLAlchemy: SQL parameters; httpx: full
    # URLs; multipart: field values). CLINSCRIBE_LOG_LEVEL=DEBUG is for our own code only.
    for name in _QUIET_LIBRARIES:
        logging.getLogger(name).setLevel(max(logging.WARNING, logging.getLevelName(level.upper())))
