"""One error tree for ordersync.

    OrderSyncError
    ├── ConfigError               bad settings or unreachable services: operator must act
    ├── RecordRejected            normalize/validate: field errors, never sent
    └── ApiError                  status, body, headers, parsed errors
        ├── BatchRejected (400)   .pointers: batch index → errors
        ├── Conflict (400 "still processing a previous request" / 409)
        ├── RateLimited (429)     .retry_after
        ├── ServerError (5xx)
        ├── AuthError (401/403)
        ├── NotFound (404)
        └── TransportError        timeout, connection (raised from requests' exceptions)

`pipeline.client` is the one place that turns HTTP answers and `requests` exceptions into these.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class FieldError:
    """One problem with one field. `pointer` is a JSON pointer relative to the order
    (`/order_details/order_items/0/quantity`); "" means the record as a whole."""

    pointer: str
    detail: str

    def as_dict(self) -> dict[str, str]:
        return {"pointer": self.pointer, "detail": self.detail}


class OrderSyncError(Exception):
    """Base of every error ordersync raises on purpose."""


class ConfigError(OrderSyncError):
    """A setting is missing or wrong, or a service cannot be reached. Not retried: an operator
    must act. The message is one line naming the problem and the fix."""


class RecordRejected(OrderSyncError):
    """A record cannot be sent as it is. Carries field-level errors; it never costs a request."""

    def __init__(self, reason: str, errors: list[FieldError] | None = None,
                 key: tuple[int, str] | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.errors: list[FieldError] = list(errors or [])
        # (integration_id, order_id) when the record got far enough to have one: for the DLQ.
        self.key = key


@dataclass
class ApiErrorItem:
    """One entry of a JSON:API `errors` list as Sendcloud sends it."""

    status: str | None = None
    code: str | None = None
    title: str | None = None
    detail: str | None = None
    pointer: str | None = None
    parameter: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name in ("status", "code", "title", "detail", "pointer", "parameter"):
            value = getattr(self, name)
            if value is not None:
                out[name] = value
        return out


class ApiError(OrderSyncError):
    """The API answered with an error, or did not answer at all (TransportError).

    Carries what an operator needs to understand it: status, parsed errors, the raw body (cut to
    a few KB) and the response headers. Never the credentials."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        body: str = "",
        headers: Mapping[str, str] | None = None,
        errors: list[ApiErrorItem] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.body = body[:4000]
        self.headers: dict[str, str] = dict(headers or {})
        self.errors: list[ApiErrorItem] = list(errors or [])

    def __repr__(self) -> str:
        return f"{type(self).__name__}(status={self.status!r}, message={self.message!r})"


class BatchRejected(ApiError):
    """400 for a batch. `pointers` maps a batch index to the errors the API named for that
    order (from `/data/attributes/[N]/…`); empty when no pointer named a usable index."""

    def __init__(self, message: str, *, pointers: Mapping[int, list[FieldError]] | None = None,
                 **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.pointers: dict[int, list[FieldError]] = dict(pointers or {})


class Conflict(ApiError):
    """Another request is still processing one of these orders (the documented 400 with pointer
    `/data`, or a 409). Retry the same batch after a short delay; never bisect."""


class RateLimited(ApiError):
    """429. `retry_after` in seconds when the API said so."""

    def __init__(self, message: str, *, retry_after: float | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.retry_after = retry_after


class ServerError(ApiError):
    """5xx: nothing is known to be applied; safe to repeat an upsert."""


class AuthError(ApiError):
    """401/403: credentials or permissions are wrong. Stop; nothing is dead-lettered."""


class NotFound(ApiError):
    """404."""


class TransportError(ApiError):
    """No answer: timeout, refused or reset connection. The request may or may not have been
    applied; upserts are safe to repeat."""
