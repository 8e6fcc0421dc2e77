"""Bad input never gives a 500 or kills the emulator (issue point 11), fuzzed with hypothesis."""

from __future__ import annotations

import contextlib
import copy
import json
import os
import socket
from typing import Any
from urllib.parse import quote, urlsplit

import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.emulator.conftest import AUTH, Api, make_order

# EMULATOR_FUZZ_EXAMPLES=3000 for a long hunt; the default keeps the suite quick.
FUZZ = settings(max_examples=int(os.environ.get("EMULATOR_FUZZ_EXAMPLES", "150")), deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow])


def raw_post(api: Api, body: bytes, content_type: str = "application/json",
             path: str = "/orders", method: str = "POST") -> requests.Response:
    return requests.request(method, api.url + path, data=body, auth=AUTH, timeout=30,
                            headers={"Content-Type": content_type})


def assert_api_error(response: requests.Response, status: int | None = None) -> None:
    assert 400 <= response.status_code < 500, (response.status_code, response.text[:300])
    if status is not None:
        assert response.status_code == status, response.text[:300]
    body = response.json()
    assert body["errors"] and all(
        {"status", "code", "detail"} <= set(e) for e in body["errors"]), body


def test_malformed_json(api: Api) -> None:
    for body in (b"", b"[", b"{'a': 1}", b"[1,]", b"NaN", b"[Infinity]", b"[1e999999]",
                 b"[" * 100_000, b"\xef\xbb\xbf[]", b"[\"\\ud800\"]x", b"1" * 5000):
        response = raw_post(api, body)
        assert_api_error(response, 400)
    assert raw_post(api, b"[]").status_code == 201  # still alive


def test_lone_surrogates_are_refused_pairs_are_fine(api: Api) -> None:
    # A lone surrogate decodes fine but could never be sent back as UTF-8: refuse it at once.
    response = raw_post(api, json.dumps([make_order("A\ud800")]).encode())
    assert_api_error(response, 400)
    order = make_order("B-\U0001f600")
    order["order_details"]["order_items"][0]["properties"] = {"\udfff": 1}
    assert_api_error(raw_post(api, json.dumps([order]).encode()), 400)
    [pk] = api.create(make_order("C-\U0001f600 é"))  # ASCII-escaped pairs (json's default)
    assert api.get(f"/orders/{pk}").json()["data"]["order_id"] == "C-\U0001f600 é"
    assert api.get("/orders").status_code == 200


def test_links_echo_the_raw_query(api: Api) -> None:
    api.create(make_order("A"), make_order("B"))
    response = api.get("/orders?x=%ED%A0%80&page_size=1&y=a+b%2B")
    link = response.headers["Link"]
    assert "x=%ED%A0%80&page_size=1&y=a+b%2B&cursor=" in link
    weird = requests.get(f"{api.url}/orders?page_size=1", auth=AUTH, timeout=30,
                         headers={"Host": "odd host:1"})
    assert weird.status_code == 200 and "odd host:1" in weird.headers["Link"]


def test_parse_errors_use_a_spec_error_code(api: Api) -> None:
    response = raw_post(api, b"{nope")
    error = response.json()["errors"][0]
    assert error["code"] == "invalid" and error["detail"].startswith("JSON parse error - ")


def test_non_utf8(api: Api) -> None:
    body = json.dumps([make_order("é")]).encode("utf-16")
    assert_api_error(raw_post(api, body), 400)
    assert_api_error(raw_post(api, '[{"order_id": "é"}]'.encode("latin-1")), 400)


def test_wrong_content_type(api: Api) -> None:
    body = json.dumps([make_order("A")]).encode()
    for ctype in ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data", ""):
        assert_api_error(raw_post(api, body, ctype), 415)
    assert raw_post(api, body, "application/json; charset=utf-8").status_code == 201
    assert raw_post(api, body, "application/vnd.api+json").status_code == 201


def test_bodies_over_10_mib_get_413(api: Api) -> None:
    big = b"[" + b" " * (10 * 1024 * 1024) + b"]"
    assert_api_error(raw_post(api, big), 413)

    def chunks() -> Any:  # no Content-Length: the limit is enforced while reading
        yield b"["
        for _ in range(11):
            yield b" " * (1024 * 1024)
        yield b"]"

    response = requests.post(api.url + "/orders", data=chunks(), auth=AUTH, timeout=30,
                             headers={"Content-Type": "application/json"})
    assert_api_error(response, 413)
    assert raw_post(api, b"[]").status_code == 201


def test_deeply_nested_free_form_properties(api: Api) -> None:
    nested: Any = "leaf"
    for _ in range(200):
        nested = {"x": nested}
    order = make_order("A")
    order["order_details"]["order_items"][0]["properties"] = nested
    response = api.post([order])
    assert response.json()["errors"][0]["detail"] == "Input is nested too deeply"


def test_patch_and_delete_bodies(api: Api) -> None:
    [pk] = api.create(make_order("A"))
    for body in (b"", b"[", b"null", b"[1]", b'"x"'):
        assert_api_error(raw_post(api, body, path=f"/orders/{pk}", method="PATCH"), 400)
    assert_api_error(raw_post(api, b"{}", "text/plain", path=f"/orders/{pk}", method="PATCH"),
                     415)
    assert requests.delete(f"{api.url}/orders/{pk}", data=b"garbage", auth=AUTH,
                           timeout=30).status_code == 204


def test_garbage_on_the_socket_does_not_kill_it(api: Api) -> None:
    parts = urlsplit(api.url)
    for garbage in (b"\x00\x01\x02 nonsense\r\n\r\n",
                    b"GET /" + b"a" * 70000 + b" HTTP/1.1\r\n\r\n",
                    b"POST /api/v3/orders HTTP/1.1\r\nContent-Length: 9999999999999999999\r\n"
                    b"\r\n"):
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 80),
                                      timeout=5) as sock:
            sock.sendall(garbage)
            with contextlib.suppress(OSError):
                sock.recv(1000)
    assert api.get("/orders").status_code == 200


def test_methods_and_paths(api: Api) -> None:
    for method, path in (("PUT", "/orders"), ("DELETE", "/orders"), ("POST", "/orders/1"),
                         ("GET", "/orderz"), ("GET", "/orders/1/2"), ("GET", "")):
        response = api.request(method, path)
        assert 400 <= response.status_code < 500


# --- fuzzing ---------------------------------------------------------------------------------

# Text includes lone surrogates: json.dumps escapes them, and the emulator must refuse them.
any_text = st.text(st.characters(exclude_categories=()), max_size=12)
json_scalars = st.none() | st.booleans() | st.integers(-(2**70), 2**70) | \
    st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=12) | any_text
json_values = st.recursive(
    json_scalars,
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20,
)


def paths_of(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix]
    if isinstance(value, dict):
        for k, v in value.items():
            found += paths_of(v, (*prefix, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            found += paths_of(v, (*prefix, i))
    return found


def mutate(order: dict[str, Any], path: tuple[Any, ...], value: Any, delete: bool) -> Any:
    if not path:
        return value
    copied = copy.deepcopy(order)
    node: Any = copied
    for step in path[:-1]:
        node = node[step]
    if delete and isinstance(node, dict):
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return copied


ORDER_PATHS = paths_of(make_order("F"))


@FUZZ
@given(value=json_values)
def test_fuzz_any_json_body(api: Api, value: Any) -> None:
    response = api.post(value)
    assert response.status_code in (201, 400), response.text[:300]


@FUZZ
@given(path=st.sampled_from(ORDER_PATHS), value=json_values, delete=st.booleans(),
       count=st.integers(1, 3))
def test_fuzz_one_field_of_a_valid_order(api: Api, path: tuple[Any, ...], value: Any,
                                         delete: bool, count: int) -> None:
    orders = [mutate(make_order(f"F-{i}"), path, value, delete) for i in range(count)]
    response = api.post(orders)
    assert response.status_code in (201, 400), response.text[:300]
    if response.status_code == 400:
        for error in response.json()["errors"]:
            if error["detail"].startswith("JSON parse error"):  # a lone surrogate
                continue
            assert error["source"]["pointer"].startswith("/data/attributes/[")
    else:
        # What was accepted reads back, and a list page renders.
        pk = response.json()["data"][0]["id"]
        assert api.get(f"/orders/{pk}").status_code == 200
        assert api.get("/orders").status_code == 200


@FUZZ
@given(path=st.sampled_from(ORDER_PATHS), value=json_values, delete=st.booleans())
def test_fuzz_patch(api: Api, path: tuple[Any, ...], value: Any, delete: bool) -> None:
    [pk] = api.create(make_order("P"))
    body = mutate(make_order("P"), path, value, delete)
    response = api.patch(pk, body)
    assert response.status_code in (200, 400), response.text[:300]
    assert api.get(f"/orders/{pk}").status_code == 200


params = st.dictionaries(
    st.sampled_from(["integration", "order_number", "order_id", "status", "order_created_at",
                     "order_created_at_min", "order_updated_at_max", "sort", "page_size",
                     "cursor", "unknown"]),
    st.text(max_size=20), max_size=5)


@FUZZ
@given(query=params)
def test_fuzz_list_query(api: Api, query: dict[str, str]) -> None:
    response = api.get("/orders", params=query)
    assert response.status_code in (200, 400, 404), response.text[:300]


@FUZZ
@given(content_type=st.text(max_size=40), host=st.text(max_size=30))
def test_fuzz_content_type_and_host(api: Api, content_type: str, host: str) -> None:
    headers = {"Content-Type": content_type.encode("latin-1", "ignore").decode("latin-1"),
               "Host": host.encode("latin-1", "ignore").decode("latin-1")}
    try:
        response = requests.post(f"{api.url}/orders?page_size=1", data=b"[]", auth=AUTH,
                                 headers=headers, timeout=30)
    except (ValueError, requests.ConnectionError):  # requests refuses some header values
        return
    assert response.status_code in (201, 400, 415), response.text[:300]


@FUZZ
@given(header=st.text(max_size=40), path=st.text(max_size=20))
def test_fuzz_auth_header_and_id(api: Api, header: str, path: str) -> None:
    try:
        headers = {"Authorization": header.encode("latin-1", "ignore").decode("latin-1")}
        response = requests.get(f"{api.url}/orders/{quote(path)}",
                                headers=headers, timeout=30)
    except ValueError:  # requests refuses some header values itself
        return
    assert 400 <= response.status_code < 500, response.text[:300]
