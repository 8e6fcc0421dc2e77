"""JSON:API error bodies, shaped like the spec's examples (field order included).

Handlers raise `ApiError`; the middleware turns it into a response. The bodies of the
documented errors are reproduced exactly, so a client tested here parses the real thing.
"""

from __future__ import annotations

from typing import Any

ErrorObject = dict[str, Any]

CONFLICT_DETAIL = "We are still processing a previous request. Please try again in a moment."
NOT_FOUND_DETAIL = "The order could not be found with the search criteria given"
ITEM_NOT_FOUND_DETAIL = "Could not find specified item."


class ApiError(Exception):
    """An error answer: HTTP status, JSON:API error objects and extra headers."""

    def __init__(
        self, status: int, errors: list[ErrorObject], headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(status, errors)
        self.status = status
        self.errors = errors
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        return {"errors": self.errors}


def error(
    status: int,
    code: str,
    detail: str,
    *,
    title: str | None = None,
    pointer: str | None = None,
    parameter: str | None = None,
    header: str | None = None,
) -> ErrorObject:
    obj: ErrorObject = {"status": str(status), "code": code}
    if title is not None:
        obj["title"] = title
    obj["detail"] = detail
    if pointer is not None:
        obj["source"] = {"pointer": pointer}
    elif parameter is not None:
        obj["source"] = {"parameter": parameter}
    elif header is not None:
        obj["source"] = {"header": header}
    return obj


def invalid(pointer: str, detail: str) -> ErrorObject:
    """A field error as the batch endpoint reports it (no title, like the spec's examples)."""
    return error(400, "invalid", detail, pointer=pointer)


def no_credentials() -> ApiError:
    return ApiError(
        401,
        [error(401, "authentication_failed", "Authentication credentials were not provided.",
               title="No credentials")],
        {"WWW-Authenticate": 'Basic realm="api"'},
    )


def bad_credentials() -> ApiError:
    return ApiError(
        401,
        [error(401, "authentication_failed",
               "The username or password provided is incorrect. Please make a request with "
               "the valid credentials.", title="Invalid username/password.")],
        {"WWW-Authenticate": 'Basic realm="api"'},
    )


def order_not_found(detail: str = NOT_FOUND_DETAIL) -> ApiError:
    return ApiError(404, [error(404, "not_found", detail, title="Not found")])


def route_not_found() -> ApiError:
    return ApiError(404, [error(404, "not_found", "Not found.", title="Not found")])


def invalid_cursor() -> ApiError:
    return ApiError(404, [error(404, "not_found", "Invalid cursor", title="Invalid cursor")])


def conflict(status: int) -> ApiError:
    return ApiError(status, [error(status, "invalid", CONFLICT_DETAIL, pointer="/data")])


def wrong_format(detail: str) -> ApiError:
    return ApiError(400, [error(400, "non_field_errors", detail, title="Wrong format")])


def parse_error(detail: str) -> ApiError:
    # DRF says "parse_error"; the spec's error-code enum has no such code, so "invalid".
    return ApiError(400, [error(400, "invalid", f"JSON parse error - {detail}",
                                title="Parse error")])


def rate_limited(retry_after: int) -> ApiError:
    return ApiError(
        429,
        [error(429, "hit_rate_limit",
               f"Request was throttled. Expected available in {retry_after} seconds.",
               title="Too many requests")],
        {"Retry-After": str(retry_after)},
    )


def method_not_allowed(method: str, allowed: str) -> ApiError:
    return ApiError(
        405,
        [error(405, "method_not_allowed", f'Method "{method}" not allowed.',
               title="Method not allowed")],
        {"Allow": allowed},
    )


def unsupported_media_type(content_type: str) -> ApiError:
    return ApiError(
        415,
        [error(415, "unsupported_media_type",
               f'Unsupported media type "{content_type}" in request.',
               title="Unsupported media type")],
    )


def too_large(limit: int) -> ApiError:
    return ApiError(
        413,
        [error(413, "request_too_large",
               f"The request body is larger than {limit} bytes.", title="Payload too large")],
    )


def server_error() -> ApiError:
    return ApiError(500, [error(500, "server_error", "A server error occurred.",
                                title="Internal server error")])
