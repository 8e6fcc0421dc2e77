"""SendcloudClient against HTTP mocked with `responses`.

Every response example and error body of the official spec is replayed (loaded from the YAML, so
a new example in a new spec version fails `test_every_spec_example_is_in_the_table` until it is
given an expected outcome), then the cases the spec does not show: 409, 429, 5xx, transport
failures, pagination, hooks, timeouts and the secret key's secrecy."""

from __future__ import annotations

import base64
import functools
import json
import logging
import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import pytest
import requests
import responses
import yaml
from hypothesis import given
from hypothesis import strategies as st
from requests import PreparedRequest

from pipeline.client import (
    SendcloudClient,
    UpsertedOrder,
    batch_pointers,
    parse_pointer,
    parse_retry_after,
)
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

SPEC = (Path(__file__).resolve().parents[2].parent
        / "shared/reference/sendcloud/orders/openapi.yaml")
BASE = "https://panel.example.test/api/v3"
PUBLIC, SECRET = "pub-key-123", "s3cr3t-DO-NOT-LEAK-9f8e"
ORDERS = f"{BASE}/orders"
ORDER_669 = f"{BASE}/orders/669"


# ---------------------------------------------------------------------------------------------
# the spec's examples


@dataclass(frozen=True)
class SpecExample:
    method: str
    path: str
    status: int
    name: str
    body: Any  # None: the response has no content (204)

    @property
    def id(self) -> str:
        return f"{self.method} {self.path} {self.status} {self.name}"


@functools.cache
def _load_spec() -> dict[str, Any] | None:
    if not SPEC.exists():
        return None
    loaded = yaml.safe_load(SPEC.read_text(encoding="utf-8"))
    assert isinstance(loaded, dict)
    return loaded


def _resolve(spec: Mapping[str, Any], node: Mapping[str, Any]) -> Mapping[str, Any]:
    ref = node.get("$ref")
    if not isinstance(ref, str):
        return node
    target: Any = spec
    for part in ref.removeprefix("#/").split("/"):
        target = target[part]
    return _resolve(spec, target)


def _examples_of(spec: Mapping[str, Any], response: Mapping[str, Any]) -> dict[str, Any]:
    content = _resolve(spec, response).get("content") or {}
    examples = (content.get("application/json") or {}).get("examples") or {}
    return {name: example["value"] for name, example in examples.items()}


def spec_examples() -> list[SpecExample]:
    spec = _load_spec()
    if spec is None:
        return []
    unauthorized = _examples_of(spec, spec["components"]["responses"]["Unauthorized"])
    out = []
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            if method == "parameters":
                continue
            for status, response in operation["responses"].items():
                examples = _examples_of(spec, response) or {"(no content)": None}
                out += [SpecExample(method.upper(), path, int(status), name, body)
                        for name, body in examples.items()]
            # 401 is documented once, for every operation (components.responses.Unauthorized).
            out += [SpecExample(method.upper(), path, 401, name, body)
                    for name, body in unauthorized.items()]
    return out


def spec_request_example(path: str, method: str, name: str) -> Any:
    spec = _load_spec()
    assert spec is not None
    body = spec["paths"][path][method]["requestBody"]["content"]["application/json"]
    return body["examples"][name]["value"]


EXAMPLES = spec_examples()


def test_the_spec_file_is_there() -> None:
    if SPEC.exists():
        assert EXAMPLES
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"the official spec is missing at {SPEC}")
    pytest.skip(f"the official spec is not at {SPEC}")


@dataclass(frozen=True)
class Raises:
    error: type[ApiError]
    pointers: dict[int, list[FieldError]] | None = None  # only checked for BatchRejected


def required(path: str) -> FieldError:
    return FieldError(path, "Field required")


UPSERTED_669 = UpsertedOrder(669, "555413", "OXSDFGHTD-12")
POST, GET_LIST, GET_ONE, PATCH, DELETE = (
    ("POST", "/orders"), ("GET", "/orders"), ("GET", "/orders/{id}"),
    ("PATCH", "/orders/{id}"), ("DELETE", "/orders/{id}"))

# (method, path, status, example name) → the result the client returns, or what it raises.
EXPECTED: dict[tuple[str, str, int, str], Any] = {
    (*POST, 201, "SingleOrderCreation"): [UpsertedOrder(664, "555413", "OXSDFGHTD-12")],
    (*POST, 201, "BatchOrderCreation"): [UPSERTED_669,
                                         UpsertedOrder(1337, "555414", "OXSDFGHTD-13")],
    (*POST, 400, "WrongPayloadFormatRequested"): Raises(BatchRejected, {}),
    (*POST, 400, "MissingRequiredField"): Raises(
        BatchRejected, {1: [required("/order_details/integration")]}),
    (*POST, 400, "MissingOrderId"): Raises(BatchRejected, {0: [required("/order_id")]}),
    (*POST, 400, "InvalidFieldValue"): Raises(BatchRejected, {0: [FieldError(
        "/order_details/order_items/0/quantity", "Input should be greater than 0")]}),
    (*POST, 400, "DuplicateOrderProcessing"): Raises(Conflict),
    (*POST, 400, "BatchSizeLimitExceeded"): Raises(BatchRejected, {}),  # `/data/attributes/`
    (*POST, 400, "MultipleValidationErrors"): Raises(BatchRejected, {0: [
        required("/shipping_details/ship_with/properties"),
        required("/shipping_details/ship_with/type")]}),
    (*POST, 400, "IntegrationNotFound"): Raises(BatchRejected, {0: [FieldError(
        "/order_details/integration/id", "Integration with id 99999 does not exist")]}),
    (*POST, 400, "ImmutableFieldChange"): Raises(BatchRejected, {0: [FieldError(
        "/order_id", "Order id abc-123 cannot be changed")]}),
    (*POST, 400, "InvalidIdType"): Raises(BatchRejected, {0: [FieldError(
        "/id", "Input should be a valid string")]}),
    (*GET_LIST, 200, "Response"): "the data list",
    (*GET_LIST, 400, "FilteringANonValidIntegration"): Raises(ApiError),
    (*GET_LIST, 404, "FilteringNonExistingCursor"): Raises(NotFound),
    (*GET_ONE, 200, "RetrievingSpecificOrder"): "the data object",
    (*GET_ONE, 404, "OrderDoesNotExist"): Raises(NotFound),
    (*DELETE, 204, "(no content)"): None,
    (*DELETE, 404, "OrderDoesNotExist"): Raises(NotFound),
    (*PATCH, 200, "UpdateOrder"): {"id": 669, "order_id": "555413",
                                   "order_number": "OXSDFGHTD-12"},
    (*PATCH, 400, "MissingRequiredField"): Raises(ApiError),  # one order: nothing to isolate
    (*PATCH, 404, "OrderNotFound"): Raises(NotFound),
}
for _method, _path in (POST, GET_LIST, GET_ONE, PATCH, DELETE):
    for _name in ("InvalidCredentials", "AuthenticationRequired"):
        EXPECTED[(_method, _path, 401, _name)] = Raises(AuthError)


def test_every_spec_example_is_in_the_table() -> None:
    missing = [example.id for example in EXAMPLES
               if (example.method, example.path, example.status, example.name) not in EXPECTED]
    assert not missing


def call_for(example: SpecExample, client: SendcloudClient) -> Any:
    """Make the call the example answers, with the spec's own request bodies."""
    if example.method == "POST":
        return client.upsert_orders(spec_request_example("/orders", "post", "CreateBasicOrder"))
    if example.path == "/orders":
        return list(client.iter_orders(integration=739283))
    if example.method == "GET":
        return client.get_order(669)
    if example.method == "PATCH":
        changes = spec_request_example("/orders/{id}", "patch", "UpdateOrderStatus")
        return client.patch_order(669, changes)
    return client.delete_order(669)


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda example: example.id)
def test_spec_example(example: SpecExample, mocked: responses.RequestsMock,
                      client: SendcloudClient) -> None:
    url = ORDERS if example.path == "/orders" else ORDER_669
    if example.body is None:
        mocked.add(example.method, url, status=example.status)
    else:
        mocked.add(example.method, url, json=example.body, status=example.status)
    expected = EXPECTED[(example.method, example.path, example.status, example.name)]
    if not isinstance(expected, Raises):
        assert call_for(example, client) == _materialize(expected, example.body)
        return
    with pytest.raises(expected.error) as caught:
        call_for(example, client)
    error = caught.value
    assert type(error) is expected.error  # not a subclass: 400 on PATCH is no BatchRejected
    assert error.status == example.status
    assert error.errors == [_item(raw) for raw in example.body["errors"]]
    if isinstance(error, BatchRejected):
        assert error.pointers == expected.pointers
    assert SECRET not in f"{error} {error!r} {error.body} {error.headers}"


def _materialize(expected: Any, body: Any) -> Any:
    if expected == "the data list":
        return body["data"]
    if expected == "the data object":
        return body["data"]
    return expected


def _item(raw: Mapping[str, Any]) -> ApiErrorItem:
    source = raw.get("source", {})
    return ApiErrorItem(status=raw.get("status"), code=raw.get("code"), title=raw.get("title"),
                        detail=raw.get("detail"), pointer=source.get("pointer"),
                        parameter=source.get("parameter"))


# ---------------------------------------------------------------------------------------------
# fixtures


@pytest.fixture
def mocked() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock


@pytest.fixture
def client() -> Iterator[SendcloudClient]:
    with SendcloudClient(BASE, (PUBLIC, SECRET)) as sendcloud:
        yield sendcloud


def order(order_id: str = "A-1", integration: int = 7, **extra: Any) -> dict[str, Any]:
    return {"order_id": order_id, "order_number": f"N-{order_id}",
            "order_details": {"integration": {"id": integration}}, **extra}


def sent_json(mocked: responses.RequestsMock, index: int = -1) -> Any:
    body = mocked.calls[index].request.body
    assert body is not None
    return json.loads(body)


# ---------------------------------------------------------------------------------------------
# requests as sent


@pytest.mark.parametrize("base", [BASE, BASE + "/", BASE + "//"])
def test_base_url_with_or_without_slash(base: str, mocked: responses.RequestsMock) -> None:
    mocked.add("POST", ORDERS, json={"data": []}, status=201)
    mocked.add("GET", ORDER_669, json={"data": {"id": 669}})
    with SendcloudClient(base, (PUBLIC, SECRET)) as sendcloud:
        sendcloud.upsert_orders([order()])
        sendcloud.get_order(669)
    assert [call.request.url for call in mocked.calls] == [ORDERS, ORDER_669]


def test_requests_carry_basic_auth_user_agent_and_default_timeouts(
        mocked: responses.RequestsMock, client: SendcloudClient) -> None:
    mocked.add("POST", ORDERS, json={"data": []}, status=201)
    client.upsert_orders([order()])
    request = mocked.calls[0].request
    token = base64.b64encode(f"{PUBLIC}:{SECRET}".encode()).decode()
    assert request.headers["Authorization"] == f"Basic {token}"
    assert request.headers["User-Agent"] == "ordersync/0.1"
    assert request.headers["Accept"] == "application/json"
    assert request.req_kwargs["timeout"] == (5.0, 30.0)  # type: ignore[attr-defined]


@pytest.mark.parametrize("timeout", [2.5, (1.0, 9.0)])
def test_a_chosen_timeout_is_used_on_every_request(
        timeout: float | tuple[float, float], mocked: responses.RequestsMock) -> None:
    mocked.add("GET", ORDER_669, json={"data": {}})
    mocked.add("DELETE", ORDER_669, status=204)
    with SendcloudClient(BASE, (PUBLIC, SECRET), timeout=timeout) as sendcloud:
        sendcloud.get_order(669)
        sendcloud.delete_order(669)
    assert [call.request.req_kwargs["timeout"]  # type: ignore[attr-defined]
            for call in mocked.calls] == [timeout, timeout]


def test_timeout_none_is_refused() -> None:
    with pytest.raises(ValueError):
        SendcloudClient(BASE, (PUBLIC, SECRET), timeout=None)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("given_id", "sent_id"),
    [(669, "669"), ("669", "669"), (None, "(absent)"), ("(absent)", "(absent)")],
)
def test_upsert_sends_the_sendcloud_id_as_a_string(
        given_id: Any, sent_id: str, mocked: responses.RequestsMock,
        client: SendcloudClient) -> None:
    mocked.add("POST", ORDERS, json={"data": []}, status=201)
    original = order() if given_id == "(absent)" else order(id=given_id)
    client.upsert_orders([original])
    assert sent_json(mocked)[0].get("id", "(absent)") == sent_id
    assert original.get("id", "(absent)") == given_id  # the caller's dict is left alone


def test_patch_sends_the_id_as_a_string(mocked: responses.RequestsMock,
                                        client: SendcloudClient) -> None:
    mocked.add("PATCH", ORDER_669, json={"data": {"id": 669}})
    client.patch_order(669, {"id": 669, "order_details": {"tags": ["x"]}})
    assert sent_json(mocked) == {"id": "669", "order_details": {"tags": ["x"]}}


def test_more_than_100_orders_are_refused_before_sending(
        mocked: responses.RequestsMock, client: SendcloudClient) -> None:
    with pytest.raises(ValueError):
        client.upsert_orders([order(str(n)) for n in range(101)])
    assert not mocked.calls


def test_100_orders_go_out_in_one_request(mocked: responses.RequestsMock,
                                          client: SendcloudClient) -> None:
    mocked.add("POST", ORDERS, json={"data": []}, status=201)
    client.upsert_orders([order(str(n)) for n in range(100)])
    assert len(sent_json(mocked)) == 100


def test_an_empty_batch_costs_no_request(mocked: responses.RequestsMock,
                                         client: SendcloudClient) -> None:
    assert client.upsert_orders([]) == []
    assert not mocked.calls


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (200, {"data": [{"id": 5, "order_id": "A", "order_number": "N"}]},
         [UpsertedOrder(5, "A", "N")]),
        (201, {"data": [{"id": "5", "order_id": "A"}]}, [UpsertedOrder(5, "A", None)]),
        (202, None, []),  # accepted without a body: confirm finds the ids later
        (201, "not json", []),
        (201, {"data": [{"order_id": "A"}, {"id": "x", "order_id": "B"}, 3]}, []),
    ],
)
def test_any_2xx_is_success(status: int, body: Any, expected: list[UpsertedOrder],
                            mocked: responses.RequestsMock, client: SendcloudClient) -> None:
    if isinstance(body, str):
        mocked.add("POST", ORDERS, body=body, status=status)
    elif body is None:
        mocked.add("POST", ORDERS, status=status)
    else:
        mocked.add("POST", ORDERS, json=body, status=status)
    assert client.upsert_orders([order()]) == expected


@pytest.mark.parametrize(
    ("order_id", "path"),
    [(669, "/orders/669"), ("669", "/orders/669"), ("a/b?c", "/orders/a%2Fb%3Fc")],
)
def test_order_ids_cannot_escape_their_path(order_id: int | str, path: str,
                                            mocked: responses.RequestsMock,
                                            client: SendcloudClient) -> None:
    mocked.add("GET", BASE + path, json={"data": {"id": 1}})
    assert client.get_order(order_id) == {"id": 1}


@pytest.mark.parametrize("order_id", ["", "  ", True])
def test_empty_order_ids_are_refused(order_id: Any, client: SendcloudClient) -> None:
    with pytest.raises(ValueError):
        client.get_order(order_id)


# ---------------------------------------------------------------------------------------------
# listing and pagination


def link(url: str, rel: str) -> str:
    return f'<{url}>; rel="{rel}"'


def test_filters_are_sent_and_sequences_comma_joined(mocked: responses.RequestsMock,
                                                     client: SendcloudClient) -> None:
    mocked.add("GET", ORDERS, json={"data": []})
    list(client.iter_orders(integration=[101, 102], order_id="A-1", page_size=50,
                            sort=["integration", "-order_created_at"]))
    request = mocked.calls[0].request
    assert request.params == {  # type: ignore[attr-defined]
        "integration": "101,102", "order_id": "A-1", "page_size": "50",
        "sort": "integration,-order_created_at"}


def pages_callback(pages: dict[str | None, tuple[list[dict[str, Any]], str]]
                   ) -> Callable[[PreparedRequest], tuple[int, dict[str, str], str]]:
    """A GET /orders that serves `pages` by cursor: cursor → (items, Link header)."""
    def answer(request: PreparedRequest) -> tuple[int, dict[str, str], str]:
        cursor = request.params.get("cursor")  # type: ignore[attr-defined]
        items, header = pages[cursor]
        return 200, ({"Link": header} if header else {}), json.dumps({"data": items})
    return answer


def test_pages_are_followed_through_the_link_header(mocked: responses.RequestsMock) -> None:
    calls: list[tuple[str, Any]] = []
    pages = {
        None: ([{"id": 1}, {"id": 2}], link(f"{ORDERS}?integration=7&cursor=p2", "next")),
        "p2": ([{"id": 3}], ", ".join([link(f"{ORDERS}?integration=7", "prev"),
                                       link(f"{ORDERS}?integration=7&cursor=p3", "next")])),
        "p3": ([{"id": 4}], link(f"{ORDERS}?integration=7&cursor=p2", "prev")),
    }
    mocked.add_callback("GET", ORDERS, callback=pages_callback(pages))
    with SendcloudClient(BASE, (PUBLIC, SECRET),
                         throttle=lambda method: calls.append(("throttle", method)),
                         observe=lambda method, status: calls.append((method, status))
                         ) as sendcloud:
        assert [item["id"] for item in sendcloud.iter_orders(integration=7)] == [1, 2, 3, 4]
    assert calls == [("throttle", "GET"), ("GET", 200)] * 3
    assert [call.request.params for call in mocked.calls] == [  # type: ignore[attr-defined]
        {"integration": "7"}, {"integration": "7", "cursor": "p2"},
        {"integration": "7", "cursor": "p3"}]


def test_pages_are_fetched_lazily(mocked: responses.RequestsMock,
                                  client: SendcloudClient) -> None:
    pages = {None: ([{"id": 1}], link(f"{ORDERS}?cursor=p2", "next")), "p2": ([{"id": 2}], "")}
    mocked.add_callback("GET", ORDERS, callback=pages_callback(pages))
    orders = client.iter_orders()
    assert next(orders) == {"id": 1}
    assert len(mocked.calls) == 1


def test_a_relative_next_link_is_resolved(mocked: responses.RequestsMock,
                                          client: SendcloudClient) -> None:
    pages = {None: ([{"id": 1}], link("/api/v3/orders?cursor=p2", "next")), "p2": ([], "")}
    mocked.add_callback("GET", ORDERS, callback=pages_callback(pages))
    assert list(client.iter_orders()) == [{"id": 1}]
    assert len(mocked.calls) == 2


def test_a_link_loop_is_an_error_not_an_endless_read(mocked: responses.RequestsMock,
                                                     client: SendcloudClient) -> None:
    pages = {None: ([{"id": 1}], link(f"{ORDERS}?cursor=a", "next")),
             "a": ([{"id": 2}], link(f"{ORDERS}?cursor=a", "next"))}
    mocked.add_callback("GET", ORDERS, callback=pages_callback(pages))
    with pytest.raises(ApiError, match="points back"):
        list(client.iter_orders())
    assert len(mocked.calls) == 2


@pytest.mark.parametrize("next_url", ["https://evil.example/api/v3/orders?cursor=x",
                                      "http://panel.example.test/api/v3/orders?cursor=x"])
def test_credentials_are_not_sent_to_another_origin(next_url: str,
                                                    mocked: responses.RequestsMock,
                                                    client: SendcloudClient) -> None:
    mocked.add("GET", ORDERS, json={"data": [{"id": 1}]}, headers={"Link": link(next_url, "next")})
    with pytest.raises(ApiError, match="another origin"):
        list(client.iter_orders())
    assert len(mocked.calls) == 1


# ---------------------------------------------------------------------------------------------
# error translation beyond the spec's examples


CONFLICT_BODY = {"errors": [{"status": "400", "code": "invalid", "detail": (
    "We are still processing a previous request. Please try again in a moment."),
    "source": {"pointer": "/data"}}]}
HTML_503 = "<html><body><h1>503 Service Unavailable</h1></body></html>"


@pytest.mark.parametrize(
    ("method", "status", "body", "error"),
    [
        ("POST", 409, {"errors": [{"status": "409", "detail": "Conflict"}]}, Conflict),
        ("POST", 409, "", Conflict),
        ("PATCH", 400, CONFLICT_BODY, Conflict),
        ("DELETE", 400, CONFLICT_BODY, Conflict),
        ("POST", 403, {"errors": [{"status": "403", "code": "forbidden"}]}, AuthError),
        ("GET", 403, "Forbidden", AuthError),
        ("POST", 404, "<html>Not Found</html>", NotFound),
        ("POST", 500, {"errors": [{"status": "500", "detail": "Server Error"}]}, ServerError),
        ("POST", 502, "Bad Gateway", ServerError),
        ("GET", 503, HTML_503, ServerError),
        ("POST", 504, "", ServerError),
        ("POST", 405, "", ApiError),
        ("POST", 413, "Request Entity Too Large", ApiError),
        ("POST", 400, "<html>Bad Request</html>", BatchRejected),
        ("POST", 400, {"errors": {"status": "400", "detail": "one object"}}, BatchRejected),
        ("PATCH", 422, {"errors": [{"detail": "nope"}]}, ApiError),
    ],
)
def test_status_translation(method: str, status: int, body: Any, error: type[ApiError],
                            mocked: responses.RequestsMock, client: SendcloudClient) -> None:
    url = ORDERS if method == "POST" else ORDER_669
    if isinstance(body, str):
        mocked.add(method, url, body=body, status=status)
    else:
        mocked.add(method, url, json=body, status=status)
    with pytest.raises(error) as caught:
        call(client, method)
    assert type(caught.value) is error
    assert caught.value.status == status
    if isinstance(body, str):
        assert caught.value.body == body and caught.value.errors == []
    if isinstance(caught.value, BatchRejected):
        assert caught.value.pointers == {}


def call(client: SendcloudClient, method: str) -> Any:
    if method == "POST":
        return client.upsert_orders([order()])
    if method == "PATCH":
        return client.patch_order(669, {"order_details": {"tags": []}})
    if method == "DELETE":
        return client.delete_order(669)
    return client.get_order(669)


def test_errors_as_an_object_of_fields_are_read(mocked: responses.RequestsMock,
                                                client: SendcloudClient) -> None:
    mocked.add("PATCH", ORDER_669, json={"errors": {"order_id": ["cannot change"]}}, status=400)
    with pytest.raises(ApiError) as caught:
        client.patch_order(669, {"order_id": "B"})
    assert caught.value.errors == [ApiErrorItem(detail="order_id: ['cannot change']",
                                                pointer="/order_id")]


def test_a_conflict_wins_over_validation_errors_in_the_same_body(
        mocked: responses.RequestsMock, client: SendcloudClient) -> None:
    body = {"errors": [*CONFLICT_BODY["errors"], {"status": "400", "detail": "Field required",
                                                  "source": {"pointer": "/data/attributes/[0]/x"}}]}
    mocked.add("POST", ORDERS, json=body, status=400)
    with pytest.raises(Conflict):
        client.upsert_orders([order()])


def test_a_redirect_on_a_write_is_not_followed(mocked: responses.RequestsMock,
                                               client: SendcloudClient) -> None:
    # requests would repeat a redirected POST as a GET and call it a success.
    mocked.add("POST", ORDERS, status=301, headers={"Location": "https://elsewhere/orders"})
    with pytest.raises(ApiError, match="check the API URL") as caught:
        client.upsert_orders([order()])
    assert caught.value.status == 301
    assert len(mocked.calls) == 1


NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("7", 7.0),
        (" 1.5 ", 1.5),
        ("0", 0.0),
        ("-3", 0.0),
        (format_datetime(NOW + timedelta(seconds=30), usegmt=True), 30.0),
        ("Fri, 02 Jan 2026 03:04:35 GMT", 30.0),
        (format_datetime(NOW - timedelta(seconds=30), usegmt=True), 0.0),
        ("soon", None),
        ("", None),
        (None, None),
        ("nan", None),
    ],
)
def test_retry_after_parsing(header: str | None, expected: float | None) -> None:
    assert parse_retry_after(header, now=NOW) == expected


@given(seconds=st.integers(0, 10**6))
def test_retry_after_seconds_and_dates_agree(seconds: int) -> None:
    date = format_datetime(NOW + timedelta(seconds=seconds), usegmt=True)
    assert parse_retry_after(str(seconds), now=NOW) == parse_retry_after(date, now=NOW) == seconds


@pytest.mark.parametrize(("headers", "retry_after"), [
    ({"Retry-After": "12"}, 12.0), ({}, None)])
def test_429_carries_retry_after(headers: dict[str, str], retry_after: float | None,
                                 mocked: responses.RequestsMock,
                                 client: SendcloudClient) -> None:
    mocked.add("POST", ORDERS, status=429, headers=headers,
               json={"errors": [{"status": "429", "detail": "Too many requests"}]})
    with pytest.raises(RateLimited) as caught:
        client.upsert_orders([order()])
    assert caught.value.retry_after == retry_after


def test_429_with_an_http_date_is_read_against_the_clock(mocked: responses.RequestsMock,
                                                         client: SendcloudClient) -> None:
    later = format_datetime(datetime.now(UTC) + timedelta(seconds=120), usegmt=True)
    mocked.add("GET", ORDERS, status=429, headers={"Retry-After": later})
    with pytest.raises(RateLimited) as caught:
        list(client.iter_orders())
    assert caught.value.retry_after is not None and 100 < caught.value.retry_after <= 120


@pytest.mark.parametrize(
    ("pointer", "expected"),
    [
        ("/data/attributes/[1]/order_details/integration", (1, "/order_details/integration")),
        ("/data/attributes/[0]/order_id", (0, "/order_id")),
        ("/data/attributes/[0]/order_details/order_items/0/quantity",
         (0, "/order_details/order_items/0/quantity")),
        ("/data/attributes/[42]", (42, "")),
        ("/data/attributes/7/order_id", (7, "/order_id")),
        ("/data/attributes/", None),
        ("/data/attributes", None),
        ("/data", None),
        ("order/order_details/order_items", None),
        ("/data/attributes/[x]/order_id", None),
        ("", None),
    ],
)
def test_pointer_parsing(pointer: str, expected: tuple[int, str] | None) -> None:
    assert parse_pointer(pointer) == expected


PATHS = st.lists(st.from_regex(r"[a-z_0-9]{1,12}", fullmatch=True), max_size=5).map(
    lambda parts: "".join(f"/{part}" for part in parts))


@given(index=st.integers(0, 10**6), path=PATHS)
def test_pointers_round_trip(index: int, path: str) -> None:
    assert parse_pointer(f"/data/attributes/[{index}]{path}") == (index, path)


def test_pointers_group_by_order_and_keep_their_order() -> None:
    items = [ApiErrorItem(detail="a", pointer="/data/attributes/[2]/x"),
             ApiErrorItem(detail="b", pointer="/data"),
             ApiErrorItem(title="c", pointer="/data/attributes/[2]/y"),
             ApiErrorItem(pointer="/data/attributes/[0]"),
             ApiErrorItem(detail="d", parameter="integration")]
    assert batch_pointers(items) == {2: [FieldError("/x", "a"), FieldError("/y", "c")],
                                     0: [FieldError("", "invalid")]}


# ---------------------------------------------------------------------------------------------
# transport failures


@pytest.mark.parametrize(
    "exception",
    [
        requests.exceptions.ConnectTimeout("connect timed out"),
        requests.exceptions.ReadTimeout("read timed out"),
        requests.exceptions.ConnectionError("connection refused"),
        requests.exceptions.SSLError("bad handshake"),
        requests.exceptions.ChunkedEncodingError("connection broken mid-body"),
        requests.exceptions.ContentDecodingError("bad gzip"),
    ],
    ids=lambda exception: type(exception).__name__,
)
@pytest.mark.parametrize("method", ["POST", "GET", "PATCH", "DELETE"])
def test_no_answer_is_a_transport_error(exception: Exception, method: str,
                                        mocked: responses.RequestsMock) -> None:
    observed: list[tuple[str, int | None]] = []
    mocked.add(method, ORDERS if method == "POST" else ORDER_669, body=exception)
    sendcloud = SendcloudClient(BASE, (PUBLIC, SECRET),
                                observe=lambda m, status: observed.append((m, status)))
    with sendcloud, pytest.raises(TransportError) as caught:
        call(sendcloud, method)
    assert caught.value.__cause__ is exception
    assert caught.value.status is None
    assert observed == [(method, None)]


@pytest.mark.parametrize("url", ["panel.sendcloud.sc/api/v3", "ftp://x/api/v3", ""])
def test_an_unusable_api_url_is_a_config_error(url: str) -> None:
    with pytest.raises(ConfigError):
        SendcloudClient(url, (PUBLIC, SECRET))


def test_an_invalid_host_is_a_config_error(mocked: responses.RequestsMock) -> None:
    mocked.add("GET", "https://exa mple/orders/1",
               body=requests.exceptions.InvalidURL("bad host"))
    with SendcloudClient("https://exa mple", (PUBLIC, SECRET)) as sendcloud, \
            pytest.raises(ConfigError) as caught:
        sendcloud.get_order(1)
    assert isinstance(caught.value.__cause__, requests.exceptions.InvalidURL)


# ---------------------------------------------------------------------------------------------
# hooks


def test_throttle_and_observe_wrap_every_request(mocked: responses.RequestsMock) -> None:
    events: list[tuple[str, Any]] = []
    mocked.add("POST", ORDERS, json={"data": []}, status=201)
    mocked.add("GET", ORDER_669, json={"data": {}})
    mocked.add("PATCH", ORDER_669, json={"data": {}})
    mocked.add("DELETE", ORDER_669, status=404, json={"errors": []})
    with SendcloudClient(BASE, (PUBLIC, SECRET),
                         throttle=lambda method: events.append(("throttle", method)),
                         observe=lambda method, status: events.append((method, status))
                         ) as sendcloud:
        sendcloud.upsert_orders([order()])
        sendcloud.get_order(669)
        sendcloud.patch_order(669, {})
        with pytest.raises(NotFound):
            sendcloud.delete_order(669)
    assert events == [("throttle", "POST"), ("POST", 201), ("throttle", "GET"), ("GET", 200),
                      ("throttle", "PATCH"), ("PATCH", 200), ("throttle", "DELETE"),
                      ("DELETE", 404)]


def test_throttle_comes_before_the_request(mocked: responses.RequestsMock) -> None:
    def no_token(method: str) -> None:
        raise TimeoutError("no write token within 60 s")

    with SendcloudClient(BASE, (PUBLIC, SECRET), throttle=no_token) as sendcloud, \
            pytest.raises(TimeoutError):
        sendcloud.upsert_orders([order()])
    assert not mocked.calls


def test_a_failing_observer_does_not_undo_a_done_write(mocked: responses.RequestsMock) -> None:
    def broken(method: str, status: int | None) -> None:
        raise RuntimeError("metrics backend down")

    mocked.add("POST", ORDERS, json={"data": [{"id": 1, "order_id": "A-1"}]}, status=201)
    with SendcloudClient(BASE, (PUBLIC, SECRET), observe=broken) as sendcloud:
        assert sendcloud.upsert_orders([order()]) == [UpsertedOrder(1, "A-1", None)]


# ---------------------------------------------------------------------------------------------
# session and secrets


class CountingSession(requests.Session):
    closed = 0

    def close(self) -> None:
        self.closed += 1
        super().close()


def test_a_given_session_is_used_and_left_open(mocked: responses.RequestsMock) -> None:
    session = CountingSession()
    mocked.add("GET", ORDER_669, json={"data": {}})
    with SendcloudClient(BASE, (PUBLIC, SECRET), session=session) as sendcloud:
        sendcloud.get_order(669)
    assert session.closed == 0
    assert session.auth is None  # credentials go per request, the caller's session is untouched


def test_the_own_session_does_not_retry_behind_our_back(client: SendcloudClient) -> None:
    adapter = client._session.get_adapter(BASE)
    assert isinstance(adapter, requests.adapters.HTTPAdapter)
    assert adapter.max_retries.total == 0


def test_the_secret_key_never_shows(mocked: responses.RequestsMock,
                                    caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    mocked.add("POST", ORDERS, status=401, json={"errors": [{"status": "401",
                                                             "detail": "bad credentials"}]})
    mocked.add("GET", ORDER_669, body=requests.exceptions.ConnectionError("refused"))
    mocked.add("PATCH", ORDER_669, status=500, body="<html>oops</html>")
    mocked.add("DELETE", ORDER_669, status=429, headers={"Retry-After": "3"})
    seen: list[str] = []
    with SendcloudClient(BASE, (PUBLIC, SECRET)) as sendcloud:
        seen += [repr(sendcloud), str(sendcloud)]
        for method in ("POST", "GET", "PATCH", "DELETE"):
            with pytest.raises(ApiError) as caught:
                call(sendcloud, method)
            error = caught.value
            seen += [str(error), repr(error), error.message, error.body, str(error.headers),
                     str([item.as_dict() for item in error.errors])]
    seen.append(caplog.text)
    encoded = base64.b64encode(f"{PUBLIC}:{SECRET}".encode()).decode()
    assert all(SECRET not in text and encoded not in text for text in seen)
    assert PUBLIC in repr(SendcloudClient(BASE, (PUBLIC, SECRET)))
