"""GET / PATCH / DELETE /orders/{id} (issue point 5) and asynchronous saving (point 3)."""

from __future__ import annotations

import time

from emulator.testing import emulator_in_thread
from tests.emulator.conftest import OTHER_AUTH, Api, make_order, pointers

NOT_FOUND = {"errors": [{"status": "404", "code": "not_found", "title": "Not found",
                         "detail": "The order could not be found with the search criteria given"}]}


def test_get_shows_the_order_with_string_id_and_timestamps(api: Api) -> None:
    order = make_order("A-1")
    [pk] = api.create(order)
    response = api.get(f"/orders/{pk}")
    assert response.status_code == 200
    data = response.json()["data"]
    assert data["id"] == str(pk)
    assert list(data)[:5] == ["id", "order_id", "order_number", "created_at", "modified_at"]
    assert data["created_at"].endswith("Z") and "T" in data["created_at"]
    for key, value in order.items():
        assert data[key] == value
    assert api.get(f"/orders/{pk}/").status_code == 200


def test_unknown_foreign_and_malformed_ids_are_404(api: Api) -> None:
    [pk] = api.as_(OTHER_AUTH).create(make_order("B-1", integration=201))
    for path in (f"/orders/{pk}", "/orders/999999", "/orders/abc", "/orders/0", "/orders/-1"):
        response = api.get(path)
        assert response.status_code == 404, path
        assert response.json() == NOT_FOUND


def test_delete_removes_from_get_and_list(api: Api) -> None:
    [pk, keep] = api.create(make_order("A-1"), make_order("A-2"))
    response = api.delete(pk)
    assert response.status_code == 204 and response.content == b""
    assert api.get(f"/orders/{pk}").status_code == 404
    assert [o["id"] for o in api.get("/orders").json()["data"]] == [str(keep)]
    assert api.delete(pk).json() == NOT_FOUND
    # The key is free again: the same order comes back as a new one.
    [again] = api.create(make_order("A-1"))
    assert again != pk


def test_delete_of_a_foreign_order_is_404(api: Api) -> None:
    [pk] = api.as_(OTHER_AUTH).create(make_order("B-1", integration=201))
    assert api.delete(pk).status_code == 404
    assert api.as_(OTHER_AUTH).get(f"/orders/{pk}").status_code == 200


def test_patch_changes_only_the_given_fields(api: Api) -> None:
    [pk] = api.create(make_order("A-1"))
    response = api.patch(pk, {"id": str(pk), "order_id": "A-1", "order_details": {
        "status": {"code": "shipped"}, "tags": ["october_campaign"]}})
    assert response.status_code == 200
    assert response.json() == {"data": {"id": pk, "order_id": "A-1", "order_number": "N-A-1"}}
    data = api.get(f"/orders/{pk}").json()["data"]
    assert data["order_details"]["status"] == {"code": "shipped", "message": "Fulfilled"}
    assert data["order_details"]["tags"] == ["october_campaign"]
    assert data["payment_details"] == make_order("A-1")["payment_details"]


def test_patch_matches_items_by_name(api: Api) -> None:
    order = make_order("A-1")
    order["order_details"]["order_items"].append(
        {"name": "Scented candle", "quantity": 1, "total_price": {"value": 5, "currency": "EUR"}})
    [pk] = api.create(order)
    assert api.patch(pk, {"order_details": {"order_items": [
        {"name": "Scented candle", "quantity": 3, "unit_price": {"value": 5, "currency": "EUR"}},
    ]}}).status_code == 200
    items = api.get(f"/orders/{pk}").json()["data"]["order_details"]["order_items"]
    assert items[0] == order["order_details"]["order_items"][0]
    assert items[1]["quantity"] == 3 and items[1]["unit_price"]["value"] == 5


def test_patch_of_an_unknown_item(api: Api) -> None:
    [pk] = api.create(make_order("A-1"))
    response = api.patch(pk, {"order_details": {"order_items": [{"name": "Nope", "quantity": 2}]}})
    assert response.status_code == 400
    assert response.json() == {"errors": [{
        "status": "400", "code": "invalid", "title": "Invalid",
        "detail": "Could not find specified item.",
        "source": {"pointer": "order/order_details/order_items"}}]}


def test_patch_item_without_name(api: Api) -> None:
    [pk] = api.create(make_order("A-1"))
    response = api.patch(pk, {"order_details": {"order_items": [{"quantity": 2}]}})
    assert pointers(response) == [("/data/attributes/order_details/order_items/0/name",
                                   "Field required")]


def test_patch_order_id_is_immutable(api: Api) -> None:
    [pk] = api.create(make_order("A-1"))
    response = api.patch(pk, {"order_id": "B-2"})
    assert pointers(response) == [("/data/attributes/order_id", "Order id A-1 cannot be changed")]


def test_patch_validates_types_and_the_merged_order(api: Api) -> None:
    [pk] = api.create(make_order("A-1"))
    response = api.patch(pk, {"order_details": {"status": {"code": 5}},
                              "shipping_address": {"country_code": "XX"}})
    assert pointers(response) == [
        ("/data/attributes/order_details/status/code", "Input should be a valid string"),
        ("/data/attributes/shipping_address/country_code", "Invalid country alpha2 code"),
    ]
    response = api.patch(pk, {"order_details": {"order_items": [
        {"name": "Cylinder candle", "quantity": 0}]}})
    assert pointers(response) == [
        ("/data/attributes/order_details/order_items/0/quantity",
         "Input should be greater than 0")]
    assert api.patch(pk, []).json()["errors"][0]["code"] == "non_field_errors"


def test_patch_of_missing_or_foreign_order(api: Api) -> None:
    [pk] = api.as_(OTHER_AUTH).create(make_order("B-1", integration=201))
    response = api.patch(pk, {"order_number": "X"})
    assert response.status_code == 404
    assert response.json() == {"errors": [{"status": "404", "code": "not_found",
                                           "title": "Not found",
                                           "detail": "Could not find specified item."}]}


def test_visibility_delay() -> None:
    delay = 0.5
    with emulator_in_thread("--no-rate-limit", "--visibility-delay", str(delay)) as url:
        api = Api(url)
        [pk] = api.create(make_order("A-1"))
        assert api.get(f"/orders/{pk}").status_code == 404
        assert api.get("/orders").json()["data"] == []
        time.sleep(delay + 0.1)
        assert api.get(f"/orders/{pk}").json()["data"]["order_number"] == "N-A-1"
        # An update: the previous version stays readable until the new one is saved.
        api.create(make_order("A-1", order_number="V2"))
        assert api.get(f"/orders/{pk}").json()["data"]["order_number"] == "N-A-1"
        assert api.get("/orders").json()["data"][0]["order_number"] == "N-A-1"
        api.patch(pk, {"order_number": "V3"})  # writes see the newest version at once
        time.sleep(delay + 0.1)
        assert api.get(f"/orders/{pk}").json()["data"]["order_number"] == "V3"
        # The helper endpoint shows what was accepted.
        assert api.stored()[0]["order"]["order_number"] == "V3"
        assert api.delete(pk).status_code == 204
        assert api.get(f"/orders/{pk}").status_code == 404
