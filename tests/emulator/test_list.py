"""GET /orders: filters, sorting, cursor pagination with Link headers (issue point 4)."""

from __future__ import annotations

import base64
import re
from typing import Any

import pytest
import requests

from tests.emulator.conftest import OTHER_AUTH, Api, make_order

_LINK = re.compile(r'<([^>]+)>; rel="(next|prev)"')


def links(response: requests.Response) -> dict[str, str]:
    return {rel: url for url, rel in _LINK.findall(response.headers.get("Link", ""))}


def follow(api: Api, url: str) -> requests.Response:
    assert url.startswith(api.url + "/orders"), url  # absolute, on this server
    return api.get(url[len(api.url):])


def walk(api: Api, path: str) -> list[str]:
    """All order_ids, following `next` links from `path`."""
    seen: list[str] = []
    response = api.get(path)
    while True:
        assert response.status_code == 200, response.text
        seen += [o["order_id"] for o in response.json()["data"]]
        nxt = links(response).get("next")
        if nxt is None:
            return seen
        response = follow(api, nxt)


def seed(api: Api, n: int, **kw: Any) -> list[int]:
    ids: list[int] = []
    for start in range(0, n, 100):
        chunk = range(start, min(n, start + 100))
        ids += api.create(*[make_order(f"O-{i:03d}", **kw) for i in chunk])
    return ids


def test_default_is_minus_pk_and_100_a_page(api: Api) -> None:
    ids = seed(api, 130)
    first = api.get("/orders")
    data = first.json()["data"]
    assert [int(o["id"]) for o in data] == sorted(ids, reverse=True)[:100]
    nav = links(first)
    assert set(nav) == {"next"}
    second = follow(api, nav["next"])
    assert [int(o["id"]) for o in second.json()["data"]] == sorted(ids, reverse=True)[100:]
    assert set(links(second)) == {"prev"}
    back = follow(api, links(second)["prev"])
    assert back.json()["data"] == data


def test_no_link_header_on_a_single_page(api: Api) -> None:
    seed(api, 3)
    assert "Link" not in api.get("/orders").headers


@pytest.mark.parametrize("sort", ["pk", "-pk", "order_number", "-order_number", "integration",
                                  "-integration,order_number", "order_created_at",
                                  "-order_updated_at,-order_number"])
def test_every_sort_pages_through_everything_once(api: Api, sort: str) -> None:
    orders = []
    for i in range(45):
        orders.append(make_order(
            f"S-{i:02d}", integration=101 + i % 3,
            order_number=f"N{(i * 7) % 10}-{i}",
            order_details__order_created_at=f"2024-01-{1 + i % 5:02d}T10:00:00Z",
            order_details__order_updated_at=f"2024-02-{1 + i % 4:02d}T10:00:00+01:00"))
    orders[3]["order_details"].pop("order_updated_at")  # a missing date sorts first
    api.create(*orders)
    seen = walk(api, f"/orders?sort={sort}&page_size=7")
    assert sorted(seen) == sorted(o["order_id"] for o in orders)
    everything = api.get(f"/orders?sort={sort}&page_size=200").json()["data"]
    assert [o["order_id"] for o in everything] == seen
    assert everything == sorted(everything, key=sort_key(sort))


def sort_key(sort: str) -> Any:
    fields = [(f.lstrip("-"), f.startswith("-")) for f in sort.split(",")]
    if "pk" not in {f for f, _ in fields}:
        fields.append(("pk", True))

    def value(o: dict[str, Any], name: str) -> Any:
        if name == "pk":
            return int(o["id"])
        if name == "integration":
            return o["order_details"]["integration"]["id"]
        if name == "order_number":
            return o["order_number"]
        raw = o["order_details"].get(name)
        return "" if raw is None else raw[:10]  # same-day test data: the date orders it

    class Key:
        def __init__(self, o: dict[str, Any]) -> None:
            self.o = o

        def __lt__(self, other: Key) -> bool:
            for name, desc in fields:
                a, b = value(self.o, name), value(other.o, name)
                if a != b:
                    return bool((a > b) if desc else (a < b))
            return False

    return Key


def test_conflicting_and_unsupported_sorts(api: Api) -> None:
    ids = api.create(make_order("B", integration=102), make_order("A", integration=101),
                     make_order("C", integration=103))
    order = [o["order_id"] for o in api.get("/orders?sort=integration,-integration").json()["data"]]
    assert order == ["A", "B", "C"]
    for bad in ("bogus", "integration,bogus", "-", "created_at"):
        data = api.get(f"/orders?sort={bad}").json()["data"]
        assert [int(o["id"]) for o in data] == sorted(ids, reverse=True), bad


def test_paging_is_stable_while_others_insert(api: Api) -> None:
    seed(api, 60)
    for sort in ("-pk", "order_number", "pk"):
        seen: list[str] = []
        response = api.get(f"/orders?sort={sort}&page_size=9")
        n = 0
        while True:
            seen += [o["order_id"] for o in response.json()["data"]
                     if o["order_id"].startswith("O-")]
            # Another client inserts between every two pages, all over the sort order.
            api.create(*[make_order(f"O-{i:03d}x{sort}{n}") for i in range(0, 60, 13)])
            n += 1
            nxt = links(response).get("next")
            if nxt is None:
                break
            response = follow(api, nxt)
        originals = [s for s in seen if "x" not in s]
        assert sorted(originals) == [f"O-{i:03d}" for i in range(60)], sort


def test_prev_links_walk_back_to_the_start(api: Api) -> None:
    seed(api, 25)
    pages = [api.get("/orders?page_size=10&sort=order_number")]
    while "next" in links(pages[-1]):
        pages.append(follow(api, links(pages[-1])["next"]))
    assert len(pages) == 3
    response = pages[-1]
    for expected in reversed(pages[:-1]):
        response = follow(api, links(response)["prev"])
        assert response.json()["data"] == expected.json()["data"]
    assert "prev" not in links(response)


def test_page_size_bounds(api: Api) -> None:
    seed(api, 210)
    sizes = {"1": 1, "150": 150, "200": 200, "500": 200, "0": 100, "-3": 100, "abc": 100,
             "1.5": 100, "": 100}
    for given, expected in sizes.items():
        assert len(api.get(f"/orders?page_size={given}").json()["data"]) == expected, given


def test_invalid_cursors_are_404(api: Api) -> None:
    seed(api, 3)
    for cursor in ("nonsense!", "Zm9v", base64.b64encode(b"r=2&p=1").decode(),
                   base64.b64encode(b"p=abc").decode(), base64.b64encode(b"x=1").decode(),
                   base64.b64encode(b"p=[1]").decode()):
        response = api.get("/orders", params={"cursor": cursor})
        assert response.status_code == 404, cursor
        assert response.json() == {"errors": [{"status": "404", "title": "Invalid cursor",
                                               "code": "not_found", "detail": "Invalid cursor"}]}
    # A composite sort's position must match the sort.
    bad = base64.b64encode(b'p=["x",1]').decode()
    assert api.get("/orders", params={"cursor": bad, "sort": "integration"}).status_code == 404


def test_the_spec_example_cursor_is_understood(api: Api) -> None:
    ids = seed(api, 5)
    # cj0xJnA9MzAw = "r=1&p=300": the page before pk 300 in -pk order (pks above 300).
    assert base64.b64decode("cj0xJnA9MzAw") == b"r=1&p=300"
    response = api.get("/orders?cursor=cj0xJnA9MzAw")
    assert response.status_code == 200
    assert [int(o["id"]) for o in response.json()["data"]] == \
        sorted((i for i in ids if i > 300), reverse=True)


def test_integration_filter(api: Api) -> None:
    api.create(make_order("A", integration=101), make_order("B", integration=102),
               make_order("C", integration=103))
    api.as_(OTHER_AUTH).create(make_order("D", integration=201))
    assert sorted(walk(api, "/orders")) == ["A", "B", "C"]  # every order of the account
    assert sorted(walk(api, "/orders?integration=101,103")) == ["A", "C"]
    assert walk(api, "/orders?integration=102") == ["B"]
    for bad in ("128", "201", "abc", "101,128"):
        response = api.get(f"/orders?integration={bad}")
        assert response.status_code == 400, bad
        wrong = bad.split(",")[-1]
        assert response.json() == {"errors": [{
            "status": "400", "code": "invalid_choice", "title": "Invalid Choice",
            "detail": f"Select a valid choice. {wrong} is not one of the available choices.",
            "source": {"parameter": "integration"}}]}


def test_text_filters_are_case_insensitive(api: Api) -> None:
    api.create(make_order("Abc-1", order_number="ORDER_284565"),
               make_order("abc-2", order_details__status={"code": "Unshipped"}),
               make_order("X-3"))
    assert walk(api, "/orders?order_id=ABC-1") == ["Abc-1"]
    assert walk(api, "/orders?order_number=order_284565") == ["Abc-1"]
    assert walk(api, "/orders?status=UNSHIPPED") == ["abc-2"]
    assert walk(api, "/orders?status=fulfilled&order_id=x-3") == ["X-3"]
    assert walk(api, "/orders?order_id=nothing") == []


def test_date_filters_are_inclusive_days(api: Api) -> None:
    def at(order_id: str, created: str, updated: str | None) -> dict[str, Any]:
        order = make_order(order_id, order_details__order_created_at=created)
        if updated:
            order["order_details"]["order_updated_at"] = updated
        return order

    api.create(at("A", "2023-04-27T23:59:59Z", "2023-04-28T00:00:00Z"),
               at("B", "2023-04-28T00:00:00Z", "2023-04-29T12:00:00Z"),
               # 01:30 on the 29th in Amsterdam is 23:30 on the 28th in UTC.
               at("C", "2023-04-29T01:30:00+02:00", None),
               at("D", "2023-04-30T10:00:00Z", "2023-05-01T10:00:00Z"))
    q = "/orders?sort=order_created_at"
    assert walk(api, f"{q}&order_created_at=2023-04-28") == ["B", "C"]
    assert walk(api, f"{q}&order_created_at_min=2023-04-28") == ["B", "C", "D"]
    assert walk(api, f"{q}&order_created_at_max=2023-04-28") == ["A", "B", "C"]
    assert walk(api, f"{q}&order_created_at_min=2023-04-28&order_created_at_max=2023-04-29") \
        == ["B", "C"]
    assert walk(api, f"{q}&order_updated_at=2023-04-28") == ["A"]
    assert walk(api, f"{q}&order_updated_at_min=2023-04-29") == ["B", "D"]
    assert walk(api, f"{q}&order_updated_at_max=2023-04-29") == ["A", "B"]
    for name in ("order_created_at", "order_updated_at_min", "order_created_at_max"):
        for bad in ("yesterday", "2023-13-01", "20230428", "2023-04-28T10:00:00Z"):
            response = api.get(f"/orders?{name}={bad}")
            assert response.status_code == 400
            assert response.json()["errors"][0]["source"] == {"parameter": name}


def test_cursors_past_either_end_point_back_at_the_data(api: Api) -> None:
    ids = seed(api, 3)
    past_end = base64.b64encode(f"p={min(ids)}".encode()).decode()  # -pk: nothing after it
    response = api.get("/orders", params={"cursor": past_end})
    assert response.json()["data"] == []
    back = follow(api, links(response)["prev"])
    assert [int(o["id"]) for o in back.json()["data"]] == sorted(ids, reverse=True)
    before_start = base64.b64encode(f"r=1&p={max(ids)}".encode()).decode()
    response = api.get("/orders", params={"cursor": before_start, "sort": "-pk"})
    assert response.json()["data"] == []
    first = follow(api, links(response)["next"])
    assert "cursor" not in links(response)["next"]
    assert [int(o["id"]) for o in first.json()["data"]] == sorted(ids, reverse=True)
    # The same on a composite sort (full-scan path).
    past_end = base64.b64encode(b'p=["zzz",1]').decode()
    response = api.get("/orders", params={"cursor": past_end, "sort": "order_number"})
    assert response.json()["data"] == []
    back = follow(api, links(response)["prev"])
    assert [o["order_id"] for o in back.json()["data"]] == ["O-000", "O-001", "O-002"]
