"""Conformance with the official spec: its request examples are accepted, its error examples are
reproduced byte for byte, and (through the `Api` client) every response the tests provoke
validates against the spec's response schemas.
"""

from __future__ import annotations

import copy
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from emulator.testing import emulator_in_thread
from tests.emulator.conftest import CONFORMANCE, Api, Conformance, make_order

pytestmark = pytest.mark.usefixtures("spec")


def examples(spec: dict[str, Any], path: str, method: str, status: str | None = None
             ) -> dict[str, Any]:
    operation = spec["paths"][path][method]
    if status is None:
        content = operation["requestBody"]["content"]["application/json"]
    else:
        content = operation["responses"][status]["content"]["application/json"]
    return {name: ex["value"] for name, ex in content["examples"].items()}


@pytest.fixture(scope="module")
def spec_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    """A fresh emulator whose account owns the integrations the spec's examples use."""
    accounts = tmp_path_factory.mktemp("accounts") / "accounts.json"
    accounts.write_text(json.dumps([
        {"public_key": "demo-public", "secret_key": "demo-secret",
         "integrations": [7, 739283, 101]},
    ]))
    with emulator_in_thread("--no-rate-limit", "--accounts", str(accounts)) as url:
        yield Api(url)


def fill_until(api: Api, pk: int) -> None:
    """Create throw-away orders until the next new order gets id `pk`."""
    next_pk = max([o["id"] for o in api.stored(include_deleted=True)], default=0) + 1
    while next_pk < pk:
        n = min(100, pk - next_pk)
        api.create(*[make_order(f"FILL-{next_pk + i}", integration=7) for i in range(n)])
        next_pk += n


def test_every_request_example_is_accepted(spec: dict[str, Any], spec_api: Api) -> None:
    posts = examples(spec, "/orders", "post")
    # UpdateBatchOrders targets ids 669 and 1337: make those exist, as those orders.
    fill_until(spec_api, 669)
    assert spec_api.create(*posts["CreateInternationalOrder"]) == [669]
    fill_until(spec_api, 1337)
    assert spec_api.create(*posts["CreateServicePointOrderByCarrierId"]) == [1337]
    for name, body in posts.items():
        response = spec_api.post(body)
        assert response.status_code == 201, (name, response.text)
        assert [d["order_id"] for d in response.json()["data"]] == [o["order_id"] for o in body]
    assert [d["id"] for d in spec_api.post(posts["UpdateBatchOrders"]).json()["data"]] == \
        [669, 1337]
    for name, body in examples(spec, "/orders/{id}", "patch").items():
        response = spec_api.patch(body["id"], body)
        assert response.status_code == 200, (name, response.text)
        assert response.json() == {"data": {"id": 669, "order_id": "555413",
                                            "order_number": "OXSDFGHTD-12"}}
    stored = spec_api.get("/orders/669").json()["data"]
    assert stored["order_details"]["tags"] == ["october_campaign"]
    assert stored["order_details"]["order_items"][0]["quantity"] == 2
    # The stored examples read back, as single orders and as a list, conforming.
    assert spec_api.get("/orders?integration=739283&page_size=200").status_code == 200


def test_post_error_examples_are_reproduced(spec: dict[str, Any], spec_api: Api) -> None:
    expected = examples(spec, "/orders", "post", "400")
    order = examples(spec, "/orders", "post")["CreateBasicOrder"][0]

    def changed(**kw: Any) -> dict[str, Any]:
        o: dict[str, Any] = copy.deepcopy(order)
        o["order_id"] = kw.pop("order_id", "example-errors")
        for key, value in kw.items():
            *parents, leaf = key.split("__")
            node = o
            for p in parents:
                node = node[p]
            if value is None:
                del node[leaf]
            else:
                node[leaf] = value
        return o

    [abc] = spec_api.create(changed(order_id="abc-123"))
    provoke = {
        "WrongPayloadFormatRequested": order,
        "MissingRequiredField": [changed(order_id="e-1"),
                                 changed(order_id="e-2", order_details__integration=None)],
        "MissingOrderId": [_without(order, "order_id")],
        "InvalidFieldValue": [changed(order_details__order_items=[
            {**order["order_details"]["order_items"][0], "quantity": 0}])],
        "BatchSizeLimitExceeded": [changed(order_id=f"b-{i}") for i in range(101)],
        "MultipleValidationErrors": [changed(shipping_details__ship_with={})],
        "IntegrationNotFound": [changed(order_details__integration={"id": 99999})],
        "ImmutableFieldChange": [changed(order_id="new-id", id=str(abc))],
        "InvalidIdType": [changed(id=abc)],
    }
    for name, body in provoke.items():
        response = spec_api.post(body)
        assert response.status_code == 400, name
        assert response.json() == expected[name], name
    assert set(expected) - set(provoke) == {"DuplicateOrderProcessing"}  # see the next test


def _without(order: dict[str, Any], key: str) -> dict[str, Any]:
    o = copy.deepcopy(order)
    del o[key]
    return o


def test_duplicate_processing_example_from_real_overlap(spec: dict[str, Any]) -> None:
    expected = examples(spec, "/orders", "post", "400")["DuplicateOrderProcessing"]
    with emulator_in_thread("--no-rate-limit", "--latency", "0.4") as url:
        box: dict[str, Any] = {}
        first = threading.Thread(target=lambda: box.setdefault(
            "first", Api(url).post([make_order("A-1")])))
        first.start()
        time.sleep(0.15)
        second = Api(url).post([make_order("A-1")])
        first.join()
    assert box["first"].status_code == 201
    assert second.status_code == 400
    assert second.json() == expected


def test_read_error_examples_are_reproduced(spec: dict[str, Any], spec_api: Api) -> None:
    listing = {**examples(spec, "/orders", "get", "400"),
               **examples(spec, "/orders", "get", "404")}
    assert spec_api.get("/orders?integration=128").json() == \
        listing["FilteringANonValidIntegration"]
    assert spec_api.get("/orders?cursor=bm90LWEtY3Vyc29y!").json() == \
        listing["FilteringNonExistingCursor"]
    missing = 10**9
    assert spec_api.get(f"/orders/{missing}").json() == \
        examples(spec, "/orders/{id}", "get", "404")["OrderDoesNotExist"]
    assert spec_api.delete(missing).json() == \
        examples(spec, "/orders/{id}", "delete", "404")["OrderDoesNotExist"]
    assert spec_api.patch(missing, {"order_number": "x"}).json() == \
        examples(spec, "/orders/{id}", "patch", "404")["OrderNotFound"]
    [pk] = spec_api.create(make_order("item-test", integration=7))
    unknown_item = spec_api.patch(pk, {"order_details": {"order_items": [{"name": "Nope"}]}})
    assert unknown_item.json() == \
        examples(spec, "/orders/{id}", "patch", "400")["MissingRequiredField"]


def test_unauthorized_examples_are_reproduced(spec: dict[str, Any], spec_api: Api) -> None:
    content = spec["components"]["responses"]["Unauthorized"]["content"]["application/json"]
    bodies = {name: ex["value"] for name, ex in content["examples"].items()}
    assert spec_api.as_(None).get("/orders").json() == bodies["AuthenticationRequired"]
    assert spec_api.as_(("demo-public", "nope")).get("/orders").json() == \
        bodies["InvalidCredentials"]


def test_response_examples_conform_to_their_schemas(spec: dict[str, Any]) -> None:
    """The checker itself: the spec's own success examples pass, broken bodies do not."""
    checker = Conformance(spec)

    class Fake:
        def __init__(self, status: int, body: Any) -> None:
            self.status_code = status
            self._body = body

        def json(self) -> Any:
            return self._body

    for name, body in examples(spec, "/orders", "post", "201").items():
        checker.check("/orders", "POST", Fake(201, body))  # type: ignore[arg-type]
        assert name
    with pytest.raises(AssertionError):
        checker.check("/orders", "GET", Fake(200, {"data": [{"id": 1}]}))  # type: ignore[arg-type]
    with pytest.raises(AssertionError):
        checker.check("/orders/{id}", "GET", Fake(404, {"errors": [{"status": 404}]}))  # type: ignore[arg-type]


def test_the_client_checks_every_answer(spec: dict[str, Any], spec_api: Api) -> None:
    assert CONFORMANCE is not None
    before = CONFORMANCE.checked
    [pk] = spec_api.create(make_order("checked", integration=7))
    spec_api.get(f"/orders/{pk}")
    spec_api.get("/orders")
    spec_api.patch(pk, {"order_number": "n"})
    spec_api.get("/orders/0")
    spec_api.as_(None).get("/orders")
    assert CONFORMANCE.checked == before + 6


def test_spec_path_is_where_the_brief_says() -> None:
    from tests.emulator.conftest import SPEC_PATH

    assert Path(__file__).resolve().parents[2].parent / \
        "shared/reference/sendcloud/orders/openapi.yaml" == SPEC_PATH
