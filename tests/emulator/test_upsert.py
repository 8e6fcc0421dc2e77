"""POST /orders: the batch upsert (issue point 1)."""

from __future__ import annotations

from tests.emulator.conftest import Api, make_order, pointers


def test_create_answers_201_with_integer_ids(api: Api) -> None:
    response = api.post([make_order("A-1"), make_order("A-2", integration=102)])
    assert response.status_code == 201
    data = response.json()["data"]
    assert [(d["order_id"], d["order_number"]) for d in data] == [("A-1", "N-A-1"),
                                                                   ("A-2", "N-A-2")]
    assert all(isinstance(d["id"], int) for d in data)
    assert data[0]["id"] != data[1]["id"]


def test_trailing_slash_is_optional(api: Api) -> None:
    assert api.post([make_order("A-1")], path="/orders/").status_code == 201
    assert api.get("/orders/").status_code == 200
    assert api.get("/orders").status_code == 200


def test_upsert_matches_on_order_id_and_integration(api: Api) -> None:
    [first] = api.create(make_order("A-1"))
    [again] = api.create(make_order("A-1", order_number="CHANGED"))
    [other_integration] = api.create(make_order("A-1", integration=102))
    assert again == first
    assert other_integration != first
    stored = {(o["integration_id"], o["order_id"]): o for o in api.stored()}
    assert len(stored) == 2
    assert stored[(101, "A-1")]["order"]["order_number"] == "CHANGED"


def test_update_keeps_created_at_and_moves_modified_at(api: Api) -> None:
    [pk] = api.create(make_order("A-1"))
    before = api.get(f"/orders/{pk}").json()["data"]
    api.create(make_order("A-1", order_number="N2"))
    after = api.get(f"/orders/{pk}").json()["data"]
    assert after["created_at"] == before["created_at"]
    assert after["modified_at"] > before["modified_at"]
    assert after["order_number"] == "N2"


def test_not_a_list_is_the_documented_format_error(api: Api) -> None:
    response = api.post(make_order("A-1"))
    assert response.status_code == 400
    assert response.json() == {"errors": [{
        "status": "400", "code": "non_field_errors", "title": "Wrong format",
        "detail": "Wrong request format, expected list of objects"}]}


def test_more_than_100_orders_is_refused(api: Api) -> None:
    response = api.post([make_order(f"A-{i}") for i in range(101)])
    assert response.status_code == 400
    assert response.json() == {"errors": [{
        "status": "400", "code": "invalid",
        "detail": "Orders list should have at most 100 items, not 101",
        "source": {"pointer": "/data/attributes/"}}]}
    assert api.create(*[make_order(f"A-{i}") for i in range(100)])


def test_all_errors_at_once_and_nothing_written(api: Api) -> None:
    bad_quantity = make_order("A-2")
    bad_quantity["order_details"]["order_items"][0]["quantity"] = 0
    no_integration = make_order("A-3")
    del no_integration["order_details"]["integration"]
    bad_country = make_order("A-4", shipping_address__country_code="Netherlands")
    response = api.post([make_order("A-1"), bad_quantity, no_integration, bad_country])
    assert response.status_code == 400
    assert pointers(response) == [
        ("/data/attributes/[1]/order_details/order_items/0/quantity",
         "Input should be greater than 0"),
        ("/data/attributes/[2]/order_details/integration", "Field required"),
        ("/data/attributes/[3]/shipping_address/country_code", "Invalid country alpha2 code"),
    ]
    assert api.stored() == []


def test_non_object_items_get_their_own_pointer(api: Api) -> None:
    response = api.post([make_order("A-1"), 7, "x"])
    assert pointers(response) == [
        ("/data/attributes/[1]", "Input should be a valid dictionary"),
        ("/data/attributes/[2]", "Input should be a valid dictionary"),
    ]


def test_empty_list_is_accepted(api: Api) -> None:
    response = api.post([])
    assert response.status_code == 201
    assert response.json() == {"data": []}


def test_foreign_integration_does_not_exist(api: Api) -> None:
    response = api.post([make_order("A-1"), make_order("A-2", integration=201)])
    assert response.status_code == 400
    assert pointers(response) == [("/data/attributes/[1]/order_details/integration/id",
                                   "Integration with id 201 does not exist")]
    assert api.as_(("other-public", "other-secret")).post(
        [make_order("A-2", integration=201)]).status_code == 201


def test_id_must_be_a_string(api: Api) -> None:
    [pk] = api.create(make_order("A-1"))
    response = api.post([make_order("A-1", id=pk)])
    assert response.status_code == 400
    assert pointers(response) == [("/data/attributes/[0]/id", "Input should be a valid string")]


def test_id_targets_an_existing_order(api: Api) -> None:
    [pk] = api.create(make_order("A-1"))
    response = api.post([make_order("A-1", id=str(pk), order_number="BY-ID")])
    assert response.status_code == 201
    assert response.json()["data"][0]["id"] == pk
    assert api.get(f"/orders/{pk}").json()["data"]["order_number"] == "BY-ID"


def test_id_of_a_missing_or_foreign_order_is_refused(api: Api) -> None:
    [foreign] = api.as_(("other-public", "other-secret")).create(
        make_order("B-1", integration=201))
    response = api.post([make_order("A-1", id="999999"), make_order("A-2", id=str(foreign)),
                         make_order("A-3", id="abc")])
    assert pointers(response) == [
        ("/data/attributes/[0]/id", "Order with id 999999 does not exist"),
        ("/data/attributes/[1]/id", f"Order with id {foreign} does not exist"),
        ("/data/attributes/[2]/id", "Order with id abc does not exist"),
    ]


def test_order_id_of_a_targeted_order_cannot_change(api: Api) -> None:
    [pk] = api.create(make_order("abc-123"))
    response = api.post([make_order("other-id", id=str(pk))])
    assert response.status_code == 400
    assert response.json() == {"errors": [{
        "status": "400", "code": "invalid", "detail": "Order id abc-123 cannot be changed",
        "source": {"pointer": "/data/attributes/[0]/order_id"}}]}


def test_integration_of_a_targeted_order_cannot_change(api: Api) -> None:
    [pk] = api.create(make_order("A-1"))
    response = api.post([make_order("A-1", integration=102, id=str(pk))])
    assert pointers(response) == [("/data/attributes/[0]/order_details/integration/id",
                                   f"Integration of order {pk} cannot be changed")]


def test_same_order_twice_in_one_batch_is_refused(api: Api) -> None:
    response = api.post([make_order("A-1"), make_order("A-2"), make_order("A-1")])
    assert response.status_code == 400
    assert pointers(response) == [(
        "/data/attributes/[2]/order_id",
        "Order id A-1 of integration 101 is already at [0] in this request")]
    assert api.stored() == []


def test_unknown_fields_are_dropped_and_readonly_fields_ignored(api: Api) -> None:
    order = make_order("A-1", surprise=1, created_at="2000-01-01T00:00:00Z")
    order["order_details"]["mystery"] = {"x": 1}
    [pk] = api.create(order)
    stored = api.stored()[0]["order"]
    assert "surprise" not in stored and "created_at" not in stored
    assert "mystery" not in stored["order_details"]
    assert api.get(f"/orders/{pk}").json()["data"]["created_at"] != "2000-01-01T00:00:00Z"


def test_orders_of_several_integrations_in_one_batch(api: Api) -> None:
    ids = api.create(make_order("A", integration=101), make_order("A", integration=102),
                     make_order("A", integration=103))
    assert len(set(ids)) == 3


def test_errors_without_pointers_flag() -> None:
    from emulator.testing import emulator_in_thread

    with emulator_in_thread("--no-rate-limit", "--errors-without-pointers") as url:
        response = Api(url).post([make_order("A-1", integration=999)])
    assert response.status_code == 400
    assert response.json()["errors"] == [{"status": "400", "code": "invalid",
                                          "detail": "Integration with id 999 does not exist"}]
