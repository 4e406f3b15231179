"""The error tree. Every error the service answers with is one of these.

    ClinscribeError                 status + stable machine code + message telling what to do
    ├── BadRequest (4xx)            the caller must change the request
    │   ├── InvalidAudio (422)      not decodable audio, empty, truncated, zero duration
    │   ├── UploadTooLarge (413)
    │   ├── UnsupportedLanguage (422)
    │   ├── NotFound (404), Conflict (409)
    │   ├── Unauthenticated (401), Forbidden (403)
    │   └── RateLimited (429)           with a Retry-After header
    ├── ConfigurationError (500)    the operator must fix a setting
    └── ProviderError               a speech-to-text or LLM vendor call failed
        ├── ProviderTransientError  retry with backoff (network, timeouts, 408/409/429/5xx)
        └── ProviderPermanentError  fail the consultation at once (bad key, bad input, quota)

Messages never contain PHI (no transcript or note text, no patient names, no file contents):
they are logged and shown to users.
"""

from __future__ import annotations

import math
from typing import Any


class ClinscribeError(Exception):
    status_code = 500
    code = "internal_error"
    # Whether retrying the consultation can help once the cause is fixed (a key, a quota).
    retryable = True

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code

    # Errors cross process boundaries inside DBOS checkpoints (pickled): keep them rebuildable.
    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (type(self), self.message, self.__dict__.copy()))

    def to_json(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "message": self.message}}

    def headers(self) -> dict[str, str]:
        """HTTP headers that belong with this error's response."""
        return {}


def _rebuild(cls: type[ClinscribeError], message: str, state: dict[str, Any]) -> ClinscribeError:
    error = cls.__new__(cls)
    Exception.__init__(error, message)
    error.__dict__.update(state)
    return error


class BadRequest(ClinscribeError):
    status_code = 400
    code = "bad_request"
    retryable = False  # the input itself must change


class Unauthenticated(BadRequest):
    status_code = 401
    code = "unauthenticated"

    def headers(self) -> dict[str, str]:
        return {"WWW-Authenticate": 'Bearer realm="clinscribe"'}


class Forbidden(BadRequest):
    status_code = 403
    code = "forbidden"


class RateLimited(BadRequest):
    status_code = 429
    code = "rate_limited"

    def __init__(self, message: str, *, retry_after_s: float) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(max(1, math.ceil(self.retry_after_s)))}


class TryAgainShortly(ClinscribeError):
    """The request cannot be answered yet, but the same request will be soon (503)."""

    status_code = 503
    code = "try_again"

    def __init__(self, message: str, *, retry_after_s: float = 2.0) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(max(1, math.ceil(self.retry_after_s)))}


class ConsultationGone(ClinscribeError):
    status_code = 409
    code = "consultation_deleted"
    retryable = False


class InvalidAudio(BadRequest):
    status_code = 422
    code = "invalid_audio"


class UploadTooLarge(BadRequest):
    status_code = 413
    code = "upload_too_large"


class UnsupportedLanguage(BadRequest):
    status_code = 422
    code = "unsupported_language"


class NotFound(ClinscribeError):
    status_code = 404
    code = "not_found"


class Conflict(ClinscribeError):
    status_code = 409
    code = "conflict"


class ConfigurationError(ClinscribeError):
    status_code = 500
    code = "configuration_error"


class ProviderError(ClinscribeError):
    """A vendor call failed. ``provider`` names the vendor, never the payload."""

    status_code = 502
    code = "provider_error"
    retryable = True

    def __init__(
        self,
        message: str,
        *,
        provider: str,
        code: str | None = None,
        http_status: int | None = None,
        retry_after_s: float | None = None,
    ) -> None:
        super().__init__(message, code=code)
        self.provider = provider
        self.http_status = http_status
        self.retry_after_s = retry_after_s


class ProviderTransientError(ProviderError):
    code = "provider_unavailable"
    retryable = True


class ProviderPermanentError(ProviderError):
    code = "provider_rejected"
    # A permanent error fails the consultation at once. Retrying later may still help once the
    # operator fixed the cause (a key, a quota), so the consultation stays retryable.
    retryable = True
