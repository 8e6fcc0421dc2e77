"""Shared fixtures: emulators over real HTTP, a client that checks every answer against the
official spec's response schemas, and valid orders to start from.
"""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from emulator.testing import emulator_in_thread

SPEC_PATH = (Path(__file__).resolve().parents[2].parent
             / "shared/reference/sendcloud/orders/openapi.yaml")
AUTH = ("demo-public", "demo-secret")
OTHER_AUTH = ("other-public", "other-secret")


# --- the official spec ---------------------------------------------------------------------


def load_spec() -> dict[str, Any] | None:
    if not SPEC_PATH.exists():
        return None
    import yaml

    spec: dict[str, Any] = yaml.safe_load(SPEC_PATH.read_text(encoding="utf-8"))
    return spec


_SPEC = load_spec()


@pytest.fixture(scope="session")
def spec() -> dict[str, Any]:
    """The official Orders spec; missing → fail under CI, skip elsewhere."""
    if _SPEC is None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"official spec missing at {SPEC_PATH}")
        pytest.skip(f"official spec not found at {SPEC_PATH}")
    return _SPEC


class Conformance:
    """Validates response bodies against the spec's response schemas (jsonschema, 2020-12)."""

    def __init__(self, spec: dict[str, Any]) -> None:
        from jsonschema import Draft202012Validator
        from referencing import Registry, Resource
        from referencing.jsonschema import DRAFT202012

        self.spec = spec
        resource = Resource.from_contents(spec, default_specification=DRAFT202012)
        self.registry = Registry().with_resource("urn:orders-spec", resource)
        self._validator = Draft202012Validator
        self.checked = 0

    def schema_pointer(self, template: str, method: str, status: int) -> str | None:
        if status == 401:
            return "/components/responses/Unauthorized/content/application~1json/schema"
        operation = self.spec["paths"].get(template, {}).get(method.lower())
        if operation is None:
            return None
        response = operation["responses"].get(str(status))
        if response is None:
            return None
        base = f"/paths/{template.replace('/', '~1')}/{method.lower()}/responses/{status}"
        if "$ref" in response:
            base = response["$ref"][1:]
            response = self.spec["components"]["responses"][base.rsplit("/", 1)[1]]
        if "content" not in response:
            return None
        return base + "/content/application~1json/schema"

    def check(self, template: str, method: str, response: requests.Response) -> None:
        pointer = self.schema_pointer(template, method, response.status_code)
        if pointer is None:
            return
        schema = {"$ref": f"urn:orders-spec#{pointer}"}
        validator = self._validator(schema, registry=self.registry)
        errors = sorted(validator.iter_errors(response.json()), key=lambda e: list(e.path))
        assert not errors, (f"{method} {template} {response.status_code} does not conform: "
                            f"{errors[0].message} at {list(errors[0].path)}")
        self.checked += 1


CONFORMANCE = Conformance(_SPEC) if _SPEC is not None else None


def template_of(path: str) -> str:
    """`/orders/12/` → `/orders/{id}` (the spec's path keys)."""
    parts = [p for p in path.split("?")[0].split("/") if p]
    if len(parts) >= 2 and parts[0] == "orders":
        return "/orders/{id}"
    return "/orders"


# --- a client ------------------------------------------------------------------------------


class Api:
    """requests against one emulator; every answer is checked against the spec when it can be."""

    def __init__(self, url: str, auth: tuple[str, str] | None = AUTH) -> None:
        self.url = url
        self.root = url.split("/api/v3")[0]
        self.session = requests.Session()
        self.session.auth = auth

    def as_(self, auth: tuple[str, str] | None) -> Api:
        return Api(self.url, auth)

    def request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", 30)
        response = self.session.request(method, self.url + path, **kwargs)
        if response.status_code != 204:
            assert response.headers.get("Content-Type", "").startswith("application/json"), \
                f"{method} {path} → {response.status_code} {response.text[:200]}"
            body = response.json()
            if response.status_code >= 400:
                assert isinstance(body.get("errors"), list) and body["errors"], body
        if CONFORMANCE is not None:
            CONFORMANCE.check(template_of(path), method, response)
        return response

    def send(self, method: str, path: str, value: Any, **kw: Any) -> requests.Response:
        """`value` as the JSON body, always (requests' json=None would send no body)."""
        headers = {"Content-Type": "application/json", **kw.pop("headers", {})}
        return self.request(method, path, data=json.dumps(value).encode(), headers=headers, **kw)

    def post(self, orders: Any, path: str = "/orders", **kw: Any) -> requests.Response:
        return self.send("POST", path, orders, **kw)

    def get(self, path: str, **kw: Any) -> requests.Response:
        return self.request("GET", path, **kw)

    def patch(self, pk: int | str, body: Any, **kw: Any) -> requests.Response:
        return self.send("PATCH", f"/orders/{pk}", body, **kw)

    def delete(self, pk: int | str, **kw: Any) -> requests.Response:
        return self.request("DELETE", f"/orders/{pk}", **kw)

    def admin(self, method: str, path: str, **kw: Any) -> Any:
        response = requests.request(method, self.root + path, timeout=30, **kw)
        assert response.status_code == 200, response.text
        return response.json()

    def stats(self) -> dict[str, Any]:
        result: dict[str, Any] = self.admin("GET", "/_emulator/stats")
        return result

    def stored(self, include_deleted: bool = False) -> list[dict[str, Any]]:
        params = {"include_deleted": "1"} if include_deleted else {}
        result: list[dict[str, Any]] = self.admin("GET", "/_emulator/orders", params=params)
        return result

    def reset(self) -> None:
        self.admin("POST", "/_emulator/reset")

    def create(self, *orders: dict[str, Any]) -> list[int]:
        response = self.post(list(orders))
        assert response.status_code == 201, response.text
        return [item["id"] for item in response.json()["data"]]


@pytest.fixture(scope="session")
def emulator_url() -> Iterator[str]:
    """One in-process emulator for the behaviour tests: limits off, everything else default."""
    with emulator_in_thread("--no-rate-limit") as url:
        yield url


@pytest.fixture
def api(emulator_url: str) -> Api:
    client = Api(emulator_url)
    client.reset()
    return client


# --- orders --------------------------------------------------------------------------------

BASE_ORDER: dict[str, Any] = {
    "order_id": "555413",
    "order_number": "OXSDFGHTD-12",
    "order_details": {
        "integration": {"id": 101},
        "status": {"code": "fulfilled", "message": "Fulfilled"},
        "order_created_at": "2018-02-27T10:00:00.556Z",
        "order_items": [
            {"name": "Cylinder candle", "quantity": 1,
             "total_price": {"value": 3.5, "currency": "EUR"}},
        ],
    },
    "payment_details": {
        "total_price": {"value": 3.5, "currency": "EUR"},
        "status": {"code": "paid", "message": "Paid"},
    },
    "shipping_address": {
        "name": "John Doe", "address_line_1": "Lansdown Glade", "house_number": "15",
        "postal_code": "5341XT", "city": "Oss", "country_code": "NL",
    },
}


def make_order(order_id: str = "555413", integration: int = 101, **changes: Any
               ) -> dict[str, Any]:
    """A valid order; keyword changes use `__` for nesting: order_details__status__code="x"."""
    order = copy.deepcopy(BASE_ORDER)
    order["order_id"] = order_id
    order["order_number"] = f"N-{order_id}"
    order["order_details"]["integration"]["id"] = integration
    for path, value in changes.items():
        *parents, leaf = path.split("__")
        node = order
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    return order


def pointers(response: requests.Response) -> list[tuple[str | None, str]]:
    return [(e.get("source", {}).get("pointer"), e["detail"]) for e in response.json()["errors"]]


def dumps(value: Any) -> str:
    return json.dumps(value, sort_keys=True)
