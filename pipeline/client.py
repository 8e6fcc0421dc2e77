"""SendcloudClient: the Orders API v3 over one `requests.Session`.

This module is the one place where HTTP answers and `requests` exceptions become ordersync
errors (see `pipeline.errors`): `_send` turns exceptions into `TransportError`/`ConfigError`,
`error_from_response` turns non-2xx answers into the rest of the tree. Everything else here only
builds requests and reads successful bodies.

Rules the client keeps:
- Timeouts are always on (connect 5 s, read 30 s by default); `None` is not accepted.
- The secret key never leaves `requests`' Basic auth: it is not in `repr`, log lines or errors.
- No retries here (the adapter has `max_retries=0`): `pipeline.retry` decides, because only the
  caller knows the attempt count and the rate-limit budget.
- Writes never follow redirects: `requests` would turn a redirected POST into a GET and report a
  "success" that wrote nothing. A 3xx on a write is an `ApiError` (usually a wrong base URL).
"""

from __future__ import annotations

import email.utils
import logging
import re
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from types import TracebackType
from typing import Any
from urllib.parse import quote, urljoin, urlsplit

import requests
from requests.adapters import HTTPAdapter

from pipeline.errors import (
    ApiError,
    ApiErrorItem,
    AuthError,
    BatchRejected,
    ConfigError,
    Conflict,
    FieldError,
    NotFound,
    RateLimited,
    ServerError,
    TransportError,
)

log = logging.getLogger(__name__)

MAX_BATCH = 100  # the API rejects larger batches; we refuse before spending a request
# Connections kept per host. Celery's thread/gevent pools share one client across tasks; prefork
# processes each hold their own, where a few spare connections cost nothing.
POOL_MAXSIZE = 16
PROCESSING_CONFLICT = "we are still processing a previous request"
_POINTER = re.compile(r"^/data/attributes/\[?(\d+)\]?(/.*)?$")
_WRITES = frozenset({"POST", "PATCH", "DELETE", "PUT"})

Timeout = float | tuple[float, float]
FilterValue = str | int | Sequence[str | int]


@dataclass(frozen=True)
class UpsertedOrder:
    """One entry of the 201 answer of POST /orders: how Sendcloud now knows the order."""

    id: int
    order_id: str
    order_number: str | None


class SendcloudClient:
    """Orders API v3 client. Thread-safe as far as `requests.Session` is (one pool per host)."""

    def __init__(
        self,
        base_url: str,
        auth: tuple[str, str],
        *,
        session: requests.Session | None = None,
        timeout: Timeout = (5.0, 30.0),
        throttle: Callable[[str], None] | None = None,
        observe: Callable[[str, int | None], None] | None = None,
        user_agent: str = "ordersync/0.1",
    ) -> None:
        if not base_url.startswith(("http://", "https://")):
            raise ConfigError(f"API URL {base_url!r} must start with http:// or https://")
        if timeout is None:  # a caller ignoring the type hint would hang a worker forever
            raise ValueError("timeout is required: a request without one can hang a worker")
        self.base_url = base_url.rstrip("/")
        self._auth = auth
        self._owns_session = session is None
        self._session = session if session is not None else _new_session()
        self._timeout = timeout
        self._throttle = throttle
        self._observe = observe
        self._headers = {"User-Agent": user_agent, "Accept": "application/json"}

    def __repr__(self) -> str:  # the public key names the account; the secret is never shown
        return f"SendcloudClient(base_url={self.base_url!r}, public_key={self._auth[0]!r})"

    # -- lifecycle -----------------------------------------------------------------------------

    def close(self) -> None:
        """Close the session if this client created it (a caller's session is the caller's)."""
        if self._owns_session:
            self._session.close()

    def __enter__(self) -> SendcloudClient:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    # -- endpoints -----------------------------------------------------------------------------

    def upsert_orders(self, orders: Sequence[Mapping[str, Any]]) -> list[UpsertedOrder]:
        """POST /orders. Any 2xx is success; returns the ids the API gave (may be fewer than the
        orders if the API answered without a body: confirm then finds them with GET).

        An empty batch sends nothing and returns []. More than 100 orders → ValueError."""
        if len(orders) > MAX_BATCH:
            raise ValueError(f"a batch holds at most {MAX_BATCH} orders, got {len(orders)}")
        if not orders:
            return []
        body = [_id_as_string(order) for order in orders]
        response = self._request("POST", "/orders", json_body=body)
        return _upserted(_json(response))

    def iter_orders(self, **filters: FilterValue) -> Iterator[dict[str, Any]]:
        """GET /orders with filters (sequences are comma-joined: integration=[1, 2] → "1,2"),
        then every page the `Link` header's rel="next" names, until there is none."""
        params = {name: _filter_value(value) for name, value in filters.items()}
        response = self._request("GET", "/orders", params=params)
        seen: set[str] = set()
        while True:
            data = _json(response).get("data")
            if isinstance(data, list):
                yield from (item for item in data if isinstance(item, dict))
            next_url = _next_link(response)
            if next_url is None:
                return
            if next_url in seen:  # a server bug must not become an endless loop of reads
                raise ApiError(f"GET /orders: the Link header points back to {next_url}",
                               status=response.status_code, headers=response.headers)
            seen.add(next_url)
            self._check_same_origin(next_url)
            response = self._request("GET", next_url)

    def _check_same_origin(self, url: str) -> None:
        # We send Basic credentials with every request: never to a host the base URL does not
        # name, nor over plain HTTP when the base URL is HTTPS.
        base, other = urlsplit(self.base_url), urlsplit(url)
        if other.netloc.lower() != base.netloc.lower() or (
                base.scheme == "https" and other.scheme != "https"):
            raise ApiError(f"GET /orders: the next page is on another origin ({other.scheme}://"
                           f"{other.netloc}); not sending credentials there")

    def get_order(self, order_id: int | str) -> dict[str, Any]:
        """GET /orders/{id}: the order object (the answer's `data`)."""
        return _data_object(_json(self._request("GET", _order_path(order_id))))

    def patch_order(self, order_id: int | str, changes: Mapping[str, Any]) -> dict[str, Any]:
        """PATCH /orders/{id} with only the fields that change; returns the answer's `data`
        ({id, order_id, order_number}). An integer `id` in `changes` is sent as a string."""
        response = self._request("PATCH", _order_path(order_id), json_body=_id_as_string(changes))
        return _data_object(_json(response))

    def delete_order(self, order_id: int | str) -> None:
        """DELETE /orders/{id}. 204 on success; 404 raises NotFound and the caller decides that
        an order already gone is a successful delete."""
        self._request("DELETE", _order_path(order_id))

    # -- the one way out to the network ----------------------------------------------------------

    def _request(self, method: str, path_or_url: str, *, params: Mapping[str, str] | None = None,
                 json_body: Any = None) -> requests.Response:
        url = path_or_url if "://" in path_or_url else self.base_url + path_or_url
        if self._throttle is not None:
            # May block for a rate-limit token; if it raises, nothing is sent.
            self._throttle(method)
        started = time.monotonic()
        response = self._send(method, url, params=params, json_body=json_body)
        log.debug("%s %s → %s in %.3fs", method, _path_of(url), response.status_code,
                  time.monotonic() - started)
        if not 200 <= response.status_code < 300:
            raise error_from_response(method, response)
        return response

    def _send(self, method: str, url: str, *, params: Mapping[str, str] | None,
              json_body: Any) -> requests.Response:
        try:
            response = self._session.request(
                method, url, params=params, json=json_body, auth=self._auth,
                headers=self._headers, timeout=self._timeout,
                allow_redirects=method not in _WRITES,
            )
        except (requests.exceptions.InvalidURL, requests.exceptions.MissingSchema,
                requests.exceptions.InvalidSchema) as exc:
            self._notify(method, None)
            raise ConfigError(f"API URL is not usable ({url}): {exc}") from exc
        except requests.RequestException as exc:
            # Timeout, ConnectionError (incl. SSL, proxy), ChunkedEncodingError,
            # ContentDecodingError...: there is no answer to read. The request may have been
            # applied, which is fine for upserts.
            self._notify(method, None)
            raise TransportError(f"{method} {_path_of(url)}: no answer ({type(exc).__name__}: "
                                 f"{exc})") from exc
        self._notify(method, response.status_code)
        return response

    def _notify(self, method: str, status: int | None) -> None:
        if self._observe is None:
            return
        try:
            self._observe(method, status)
        except Exception:  # a broken metrics hook must not turn a done write into a retried one
            log.exception("observe hook failed for %s %s", method, status)


# -- error translation (the one place) ----------------------------------------------------------


def error_from_response(method: str, response: requests.Response) -> ApiError:
    """Translate a non-2xx answer into the error tree.

    - 409, or a 400 whose error says "We are still processing a previous request" → Conflict
      (checked first: it must never be bisected, whatever else the body says).
    - 400 on POST (the batch endpoint) → BatchRejected, `.pointers` from `/data/attributes/[N]/…`.
    - 400 elsewhere (PATCH body, GET filter) → plain ApiError: there is no batch to isolate,
      the errors are in `.errors`.
    - 401/403 → AuthError; 404 → NotFound; 429 → RateLimited; 5xx → ServerError;
      anything else (3xx on a write, 405, 413, 415, 422…) → ApiError.
    """
    status = response.status_code
    errors = parse_errors(response)
    kwargs: dict[str, Any] = {"status": status, "body": _text(response),
                              "headers": response.headers, "errors": errors}
    message = _message(method, response, errors)
    if status == 409 or (status == 400 and _is_processing_conflict(errors)):
        return Conflict(message, **kwargs)
    if status == 400 and method == "POST":
        return BatchRejected(message, pointers=batch_pointers(errors), **kwargs)
    if status in (401, 403):
        return AuthError(message, **kwargs)
    if status == 404:
        return NotFound(message, **kwargs)
    if status == 429:
        retry_after = parse_retry_after(response.headers.get("Retry-After"),
                                        now=datetime.now(UTC))
        return RateLimited(message, retry_after=retry_after, **kwargs)
    if status >= 500:
        return ServerError(message, **kwargs)
    return ApiError(message, **kwargs)


def parse_errors(response: requests.Response) -> list[ApiErrorItem]:
    """The JSON:API `errors` of a body; [] when the body is not JSON or has none.

    The spec types `errors` as "array or object": a single object is one error, any other
    object (e.g. Django REST's {"field": ["message"]}) becomes one item per key."""
    try:
        body = response.json()
    except ValueError:
        return []
    raw = body.get("errors") if isinstance(body, dict) else None
    if isinstance(raw, dict):
        if raw.keys() & {"status", "code", "title", "detail", "source"}:
            raw = [raw]
        else:
            raw = [{"detail": f"{key}: {value}", "source": {"pointer": f"/{key}"}}
                   for key, value in raw.items()]
    if not isinstance(raw, list):
        return []
    return [_error_item(item) for item in raw if isinstance(item, dict)]


def _error_item(raw: Mapping[str, Any]) -> ApiErrorItem:
    source = raw.get("source")
    if not isinstance(source, dict):
        source = {}

    def text(value: Any) -> str | None:
        return None if value is None else str(value)

    known = {"status", "code", "title", "detail", "source"}
    return ApiErrorItem(
        status=text(raw.get("status")), code=text(raw.get("code")),
        title=text(raw.get("title")), detail=text(raw.get("detail")),
        pointer=text(source.get("pointer")), parameter=text(source.get("parameter")),
        extra={key: value for key, value in raw.items() if key not in known},
    )


def _is_processing_conflict(errors: Sequence[ApiErrorItem]) -> bool:
    # The detail is the signal (pointer `/data` in the spec's example); we do not insist on the
    # pointer, so a variant pointer cannot turn a conflict into a bisection.
    return any((item.detail or "").strip().lower().startswith(PROCESSING_CONFLICT)
               for item in errors)


def parse_pointer(pointer: str) -> tuple[int, str] | None:
    """`/data/attributes/[N]/<path>` → (N, "/<path>"); `/data/attributes/[N]` → (N, "").

    Also takes the un-bracketed `/data/attributes/N/…` (the same JSON pointer without the
    decoration). `/data/attributes/`, `/data` and anything else name no order → None."""
    match = _POINTER.match(pointer)
    if match is None:
        return None
    return int(match.group(1)), match.group(2) or ""


def batch_pointers(errors: Sequence[ApiErrorItem]) -> dict[int, list[FieldError]]:
    """Batch index → the field errors the API named for that order. Indices are taken as
    given; whether they are inside the batch is for `pipeline.isolate` to judge."""
    pointers: dict[int, list[FieldError]] = {}
    for item in errors:
        parsed = parse_pointer(item.pointer or "")
        if parsed is None:
            continue
        index, path = parsed
        detail = item.detail or item.title or item.code or "invalid"
        pointers.setdefault(index, []).append(FieldError(path, detail))
    return pointers


def parse_retry_after(value: str | None, *, now: datetime) -> float | None:
    """Retry-After as seconds from `now`: delta-seconds ("7", "1.5") or an HTTP-date.
    A date in the past means 0; missing or unreadable → None (the caller backs off)."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:  # HTTP-dates are GMT by definition
            when = when.replace(tzinfo=UTC)
        seconds = (when - now).total_seconds()
    if seconds != seconds:  # NaN
        return None
    return max(0.0, seconds)


def _message(method: str, response: requests.Response,
             errors: Sequence[ApiErrorItem]) -> str:
    summary = "; ".join(_describe(item) for item in errors[:3])
    if len(errors) > 3:
        summary += f"; … ({len(errors)} errors)"
    if not summary:
        summary = response.reason or "no error details"
        location = response.headers.get("Location")
        if location and 300 <= response.status_code < 400:
            summary += f" (redirect to {location}: check the API URL)"
    return f"{method} {_path_of(response.url or '')} → {response.status_code}: {summary}"


def _describe(item: ApiErrorItem) -> str:
    text = item.detail or item.title or item.code or "error"
    where = item.pointer or item.parameter
    return f"{text} (at {where})" if where else text


# -- small helpers ------------------------------------------------------------------------------


def _new_session() -> requests.Session:
    session = requests.Session()
    adapter = HTTPAdapter(pool_connections=4, pool_maxsize=POOL_MAXSIZE, max_retries=0)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    return session


def _order_path(order_id: int | str) -> str:
    text = str(order_id).strip()
    if not text or isinstance(order_id, bool):
        raise ValueError(f"not a Sendcloud order id: {order_id!r}")
    return f"/orders/{quote(text, safe='')}"  # quoted: an id can never reach another path


def _id_as_string(order: Mapping[str, Any]) -> dict[str, Any]:
    """The API returns `id` as an integer but insists on a string in requests; a None id means
    "not known" and is left out rather than rejected."""
    out = dict(order)
    if "id" in out:
        if out["id"] is None:
            del out["id"]
        elif isinstance(out["id"], int) and not isinstance(out["id"], bool):
            out["id"] = str(out["id"])
    return out


def _filter_value(value: FilterValue) -> str:
    if isinstance(value, str | int):
        return str(value)
    return ",".join(str(part) for part in value)


def _next_link(response: requests.Response) -> str | None:
    link = response.links.get("next")
    url = link.get("url") if link else None
    if not url:
        return None
    return urljoin(response.url, url)  # the API sends absolute URLs; a relative one still works


def _json(response: requests.Response) -> dict[str, Any]:
    """The body as an object; {} when it is empty, not JSON or not an object."""
    if not response.content:
        return {}
    try:
        body = response.json()
    except ValueError:
        log.warning("%s answered %s with a body that is not JSON", _path_of(response.url or ""),
                    response.status_code)
        return {}
    return body if isinstance(body, dict) else {}


def _data_object(body: Mapping[str, Any]) -> dict[str, Any]:
    data = body.get("data")
    return dict(data) if isinstance(data, dict) else {}


def _upserted(body: Mapping[str, Any]) -> list[UpsertedOrder]:
    data = body.get("data")
    if not isinstance(data, list):
        return []
    out = []
    for item in data:
        if not isinstance(item, dict) or item.get("id") is None or item.get("order_id") is None:
            continue
        try:
            sendcloud_id = int(item["id"])  # integer in 201 answers, a string in GET answers
        except (TypeError, ValueError):
            continue
        number = item.get("order_number")
        out.append(UpsertedOrder(sendcloud_id, str(item["order_id"]),
                                 None if number is None else str(number)))
    return out


def _text(response: requests.Response) -> str:
    try:
        return response.text
    except (UnicodeDecodeError, LookupError):
        return response.content.decode("utf-8", errors="replace")


def _path_of(url: str) -> str:
    """The path and query of a URL, for messages: never the scheme's userinfo part."""
    parts = urlsplit(url)
    return parts.path + (f"?{parts.query}" if parts.query else "")
