"""Hand-written validation of Sendcloud v3 orders, after the official OpenAPI spec.

The spec's `order` and `order-partial-update` schemas are transcribed into small node objects,
built once at import, so checking a 100-order batch costs a walk over the data and nothing more
(no YAML, no generic JSON Schema engine on the request path).

Messages follow the real API, which answers with pydantic v2's wording ("Field required",
"Input should be a valid string", "Input should be greater than 0"), and pointers follow the
spec's examples: `/data/attributes/[i]/order_details/order_items/0/quantity` — the batch index in
brackets, nested list indexes bare.

Each node returns a cleaned copy: unknown keys are dropped (pydantic's default `extra="ignore"`),
integral floats in integer fields become ints. Where the spec is looser than any sane server
(a price without a value) or contradicts itself, the choice is listed in emulator/README.md.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

import pycountry

Errors = list[tuple[str, str]]  # (JSON pointer, detail)
Format = Callable[[str], str | None]  # returns an error detail, or None when the string is fine

FIELD_REQUIRED = "Field required"
COUNTRIES = frozenset(c.alpha_2 for c in pycountry.countries)
_FREE_DEPTH = 32  # free-form objects nested deeper than this are refused (keeps JSON encodable)

# RFC 3339 shape first (fromisoformat alone also takes "20180227" and date-only strings).
_DATETIME = re.compile(
    r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?$"
)
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_URL = re.compile(r"^https?://[^\s/?#]+[^\s]*$", re.IGNORECASE)
_DECIMAL = re.compile(r"^\d+(?:\.\d+)?$")


def parse_datetime(text: str) -> datetime | None:
    """An aware datetime from an ISO 8601 date-time with offset, else None."""
    if not _DATETIME.match(text):
        return None
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        return None
    return value if value.tzinfo is not None else None


def _datetime_format(text: str) -> str | None:
    if not _DATETIME.match(text):
        return "Input should be a valid datetime"
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        return "Input should be a valid datetime"
    if value.tzinfo is None:
        return "Input should have timezone info"
    return None


def _country_format(text: str) -> str | None:
    return None if text in COUNTRIES else "Invalid country alpha2 code"


def _email_format(text: str) -> str | None:
    return None if _EMAIL.match(text) else "value is not a valid email address"


def _url_format(text: str) -> str | None:
    return None if _URL.match(text) else "Input should be a valid URL"


def _decimal_format(text: str) -> str | None:
    return None if _DECIMAL.match(text) else "String should match pattern '[\\d]+(\\.[\\d]+)?'"


def _number_text(n: float) -> str:
    return str(int(n)) if float(n).is_integer() else str(n)


class Node:
    __slots__ = ("nullable",)

    def __init__(self, nullable: bool = False) -> None:
        self.nullable = nullable

    def check(self, value: Any, ptr: str, errs: Errors) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError


class Str(Node):
    __slots__ = ("enum", "enum_msg", "fmt", "max_len", "min_len")

    def __init__(
        self,
        *,
        nullable: bool = False,
        min_len: int = 0,
        max_len: int | None = None,
        enum: Iterable[str] | None = None,
        fmt: Format | None = None,
    ) -> None:
        super().__init__(nullable)
        self.min_len = min_len
        self.max_len = max_len
        self.enum = frozenset(enum) if enum is not None else None
        self.enum_msg = ""
        if enum is not None:
            quoted = [f"'{e}'" for e in enum]
            listed = quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + " or " + quoted[-1]
            self.enum_msg = f"Input should be {listed}"
        self.fmt = fmt

    def check(self, value: Any, ptr: str, errs: Errors) -> Any:
        if type(value) is not str:
            if value is None and self.nullable:
                return None
            errs.append((ptr, "Input should be a valid string"))
            return value
        n = len(value)
        if n < self.min_len:
            unit = "character" if self.min_len == 1 else "characters"
            errs.append((ptr, f"String should have at least {self.min_len} {unit}"))
        elif self.max_len is not None and n > self.max_len:
            unit = "character" if self.max_len == 1 else "characters"
            errs.append((ptr, f"String should have at most {self.max_len} {unit}"))
        elif self.enum is not None and value not in self.enum:
            errs.append((ptr, self.enum_msg))
        elif self.fmt is not None:
            problem = self.fmt(value)
            if problem is not None:
                errs.append((ptr, problem))
        return value


class _Numeric(Node):
    __slots__ = ("ge", "gt")

    def __init__(
        self, *, nullable: bool = False, gt: float | None = None, ge: float | None = None
    ) -> None:
        super().__init__(nullable)
        self.gt = gt
        self.ge = ge

    def _bounds(self, v: float, ptr: str, errs: Errors) -> None:
        if self.gt is not None and v <= self.gt:
            errs.append((ptr, f"Input should be greater than {_number_text(self.gt)}"))
        elif self.ge is not None and v < self.ge:
            errs.append((ptr, f"Input should be greater than or equal to {_number_text(self.ge)}"))


class Int(_Numeric):
    __slots__ = ()

    def check(self, value: Any, ptr: str, errs: Errors) -> Any:
        t = type(value)  # bool is a subclass of int: compare types, not isinstance
        if t is int:
            v = value
        elif t is float:
            if not math.isfinite(value):
                errs.append((ptr, "Input should be a finite number"))
                return value
            if not value.is_integer():
                errs.append((ptr, "Input should be a valid integer, got a number with a "
                                  "fractional part"))
                return value
            v = int(value)
        elif value is None and self.nullable:
            return None
        else:
            errs.append((ptr, "Input should be a valid integer"))
            return value
        self._bounds(v, ptr, errs)
        return v


class Num(_Numeric):
    __slots__ = ()

    def check(self, value: Any, ptr: str, errs: Errors) -> Any:
        t = type(value)
        if t is float:
            if not math.isfinite(value):
                errs.append((ptr, "Input should be a finite number"))
                return value
        elif t is not int:
            if value is None and self.nullable:
                return None
            errs.append((ptr, "Input should be a valid number"))
            return value
        self._bounds(value, ptr, errs)
        return value


class Bool(Node):
    __slots__ = ()

    def check(self, value: Any, ptr: str, errs: Errors) -> Any:
        if type(value) is bool or (value is None and self.nullable):
            return value
        errs.append((ptr, "Input should be a valid boolean"))
        return value


class Free(Node):
    """A free-form object (`properties`, `extra_data`): any JSON object, kept as sent."""

    __slots__ = ()

    def check(self, value: Any, ptr: str, errs: Errors) -> Any:
        if type(value) is not dict:
            if value is None and self.nullable:
                return None
            errs.append((ptr, "Input should be a valid dictionary"))
            return value
        if _depth(value, 0) > _FREE_DEPTH:
            errs.append((ptr, "Input is nested too deeply"))
        return value


def _depth(value: Any, level: int) -> int:
    if level > _FREE_DEPTH:
        return level
    if type(value) is dict:
        return max((_depth(v, level + 1) for v in value.values()), default=level + 1)
    if type(value) is list:
        return max((_depth(v, level + 1) for v in value), default=level + 1)
    return level


class Obj(Node):
    __slots__ = ("fields", "required")

    def __init__(
        self, fields: dict[str, Node], required: Iterable[str] = (), *, nullable: bool = False
    ) -> None:
        super().__init__(nullable)
        self.fields = fields
        self.required = tuple(required)

    def check(self, value: Any, ptr: str, errs: Errors) -> Any:
        if type(value) is not dict:
            if value is None and self.nullable:
                return None
            errs.append((ptr, "Input should be a valid dictionary"))
            return value
        fields = self.fields
        out: dict[str, Any] = {}
        for key, item in value.items():
            node = fields.get(key)
            if node is not None:
                out[key] = node.check(item, ptr + "/" + key, errs)
        for key in self.required:
            if key not in value:
                errs.append((ptr + "/" + key, FIELD_REQUIRED))
        return out


class OneKey(Obj):
    """The spec's `service-point` oneOf: identified by exactly one of two keys."""

    __slots__ = ("keys",)

    def __init__(self, fields: dict[str, Node], keys: tuple[str, str]) -> None:
        super().__init__(fields)
        self.keys = keys

    def check(self, value: Any, ptr: str, errs: Errors) -> Any:
        out = super().check(value, ptr, errs)
        if type(value) is dict:
            present = [k for k in self.keys if k in value]
            if not present:
                errs.append((ptr, f"Either {self.keys[0]} or {self.keys[1]} is required"))
            elif len(present) == 2:
                errs.append((ptr, f"Provide either {self.keys[0]} or {self.keys[1]}, not both"))
        return out


class Arr(Node):
    __slots__ = ("item",)

    def __init__(self, item: Node, *, nullable: bool = False) -> None:
        super().__init__(nullable)
        self.item = item

    def check(self, value: Any, ptr: str, errs: Errors) -> Any:
        if type(value) is not list:
            if value is None and self.nullable:
                return None
            errs.append((ptr, "Input should be a valid list"))
            return value
        check = self.item.check
        return [check(v, f"{ptr}/{i}", errs) for i, v in enumerate(value)]


# --- the schema tables ---------------------------------------------------------------------


def _req(partial: bool, *names: str) -> tuple[str, ...]:
    # order-partial-update is "the order model without any required fields".
    return () if partial else names


def _price(partial: bool) -> Obj:
    # The spec's `price` lists no required fields; a price without a value or currency is
    # meaningless, so both are required on create (deviation, see README).
    return Obj(
        {"value": Num(), "currency": Str(enum=("EUR", "GBP", "USD"))},
        _req(partial, "value", "currency"),
    )


def _measurement(partial: bool) -> Obj:
    return Obj({
        "dimension": Obj(
            {
                "length": Num(ge=0), "width": Num(ge=0), "height": Num(ge=0),
                "unit": Str(enum=("cm", "mm", "m", "yd", "ft", "in")),
            },
            _req(partial, "length", "width", "height", "unit"),
        ),
        "weight": Obj(
            {"value": Num(gt=0), "unit": Str(enum=("kg", "g", "lbs", "oz"))},
            _req(partial, "value", "unit"),
        ),
        "volume": Obj(
            {"value": Int(ge=0), "unit": Str(enum=("m3", "cm3", "l", "ml", "gal"))},
            _req(partial, "value", "unit"),
        ),
    })


_DATETIME_NULLABLE = Str(nullable=True, fmt=_datetime_format)
_OPT_TEXT = Str(nullable=True)


def _dangerous_goods() -> Obj:
    text = _OPT_TEXT
    return Obj({
        "chemical_record_identifier": text,
        "regulation_set": Str(enum=("IATA", "ADR")),
        "packaging_type_quantity": text,
        "packaging_type": text,
        "packaging_instruction_code": text,
        "id_number": text,
        "class_division_number": text,
        "quantity": text,
        "unit_of_measurement": Str(enum=("KG", "G", "L", "ML")),
        "proper_shipping_name": text,
        "commodity_regulated_level_code": Str(enum=("LQ", "EQ")),
        "transportation_mode": Str(enum=("Highway", "Ground", "PAX", "CAO")),
        "emergency_contact_name": text,
        "emergency_contact_phone": text,
        "adr_packing_group_letter": Str(enum=("I", "II", "III")),
        "local_proper_shipping_name": text,
        "transport_category": text,
        "tunnel_restriction_code": text,
        "weight_type": Str(enum=("Net", "Gross")),
    })


def _order_item(partial: bool) -> Obj:
    fields: dict[str, Node] = {
        "item_id": Str(min_len=1),
        "product_id": Str(),
        "name": Str(),
        "description": Str(),
        # "Input should be greater than 0" is the spec's own example for quantity 0; the
        # partial schema says minimum 0, and the merged order is checked against the full
        # schema anyway.
        "quantity": Int(ge=0) if partial else Int(gt=0),
        "sku": Str(),
        "hs_code": Str(),
        "country_of_origin": Str(min_len=2, max_len=2, fmt=_country_format),
        "properties": Free(),
        "unit_price": _price(partial),
        "total_price": _price(partial),
        "measurement": _measurement(partial),
        # The schema says object, the spec's own response example shows null: accept both.
        "delivery_dates": Obj(
            {"handover_at": _DATETIME_NULLABLE, "deliver_at": _DATETIME_NULLABLE}, nullable=True
        ),
        "mid_code": _OPT_TEXT,
        "material_content": _OPT_TEXT,
        "intended_use": _OPT_TEXT,
        "manufacturer_product_id": Str(nullable=True, max_len=70),
        "manufacturer_product_id_std": Str(nullable=True, max_len=70),
    }
    if not partial:
        # Only the full item schema has these.
        fields.update({
            "variant_id": Str(),
            "image_url": Str(fmt=_url_format),
            "ean": Str(),
            "dangerous_goods": _dangerous_goods(),
        })
    return Obj(fields, _req(partial, "name", "quantity", "total_price"))


def _costs() -> Obj:
    return Obj(
        {"value": Str(nullable=True, fmt=_decimal_format), "currency": Str(nullable=True)},
        nullable=True,
    )


def _payment_details(partial: bool) -> Obj:
    fields: dict[str, Node] = {
        "total_price": _price(partial),
        "subtotal_price": _price(partial),
        "estimated_shipping_price": _price(partial),
        "estimated_tax_price": _price(partial),
        "status": Obj(
            {"code": Str(min_len=0 if partial else 1), "message": Str()}, _req(partial, "code")
        ),
        "invoice_date": Str(nullable=True),
        "discount_granted": _costs(),
        "insurance_costs": _costs(),
        "freight_costs": _costs(),
        "other_costs": _costs(),
    }
    if not partial:
        fields["is_cash_on_delivery"] = Bool(nullable=True)
    return Obj(fields, _req(partial, "total_price", "status"))


def _customs_details() -> Obj:
    tax_number = Obj({"name": _OPT_TEXT, "country_code": _OPT_TEXT, "value": _OPT_TEXT})
    return Obj(
        {
            "commercial_invoice_number": Str(),
            "shipment_type": Str(enum=(
                "gift", "commercial_goods", "commercial_sample", "returned_goods")),
            "export_type": Str(enum=("private", "commercial_b2c", "commercial_b2b")),
            "tax_numbers": Obj(
                {
                    "sender": Arr(tax_number),
                    "receiver": Arr(tax_number),
                    "importer_of_record": Arr(tax_number),
                },
                nullable=True,
            ),
        },
        nullable=True,
    )


def _address(partial: bool) -> Obj:
    return Obj(
        {
            "name": Str(min_len=1),
            "company_name": Str(),
            "address_line_1": Str(),
            "house_number": Str(),
            "address_line_2": Str(),
            "postal_code": Str(min_len=1),
            "city": Str(min_len=1),
            "po_box": Str(nullable=True),
            "state_province_code": Str(),
            "country_code": Str(min_len=1, fmt=_country_format),
            "email": Str(fmt=_email_format),
            "phone_number": Str(),
        },
        _req(partial, "name", "address_line_1", "postal_code", "city", "country_code"),
    )


def _shipping_details(partial: bool) -> Obj:
    return Obj({
        "is_local_pickup": Bool(nullable=True),
        "delivery_indicator": Str(),
        "measurement": _measurement(partial),
        # `properties` before `type`: the spec's MultipleValidationErrors example lists them so.
        "ship_with": Obj(
            {
                "properties": Obj(
                    {
                        "shipping_option_code": Str(nullable=True),
                        "contract_id": Int(nullable=True, ge=1),
                    },
                    _req(partial, "shipping_option_code"),
                ),
                "type": Str(enum=("shipping_option_code",)),
            },
            _req(partial, "properties", "type"),
        ),
    })


def _service_point() -> OneKey:
    return OneKey(
        {
            "id": Str(),
            "carrier_service_point_id": Str(),
            "post_number": Str(),
            "latitude": Str(),
            "longitude": Str(),
            "type": Str(),
            "extra_data": Free(),
        },
        ("id", "carrier_service_point_id"),
    )


def _order(partial: bool) -> Obj:
    customer: dict[str, Node] = {"name": Str(), "phone_number": Str(), "email": Str()}
    if partial:
        # The partial schema spells it `phone`; handled as an alias of `phone_number`.
        customer["phone"] = Str()
    return Obj(
        {
            "order_id": Str(min_len=0 if partial else 1),
            "order_number": Str(min_len=0 if partial else 1),
            "order_details": Obj(
                {
                    "integration": Obj(
                        {"id": Int(ge=1) if partial else Int()}, _req(partial, "id")
                    ),
                    "status": Obj(
                        {"code": Str(min_len=0 if partial else 1), "message": Str()},
                        _req(partial, "code"),
                    ),
                    "order_created_at": Str(fmt=_datetime_format),
                    "order_updated_at": Str(fmt=_datetime_format),
                    "order_items": Arr(_order_item(partial)),
                    "notes": Str(nullable=partial),
                    "tags": Arr(Str(), nullable=partial),
                },
                _req(partial, "integration", "status", "order_created_at", "order_items"),
            ),
            "payment_details": _payment_details(partial),
            "customs_details": _customs_details(),
            "customer_details": Obj(customer, _req(partial, "name")),
            "billing_address": _address(partial),
            "shipping_address": _address(partial),
            "shipping_details": _shipping_details(partial),
            "service_point_details": _service_point(),
        },
        _req(partial, "order_id", "order_number", "order_details", "payment_details"),
    )


ORDER = _order(partial=False)
ORDER_PATCH = _order(partial=True)

_STRING = Str()


def check_order(value: Any, ptr: str, errs: Errors) -> dict[str, Any]:
    """Validate one order of a batch; returns the cleaned order (without `id`)."""
    cleaned = ORDER.check(value, ptr, errs)
    if type(value) is dict and "id" in value:
        _STRING.check(value["id"], ptr + "/id", errs)
    return cleaned if type(cleaned) is dict else {}


def check_patch(value: Any, ptr: str, errs: Errors) -> dict[str, Any]:
    """Validate a partial-update body; returns the cleaned patch (without `id`)."""
    cleaned = ORDER_PATCH.check(value, ptr, errs)
    if type(value) is dict and "id" in value:
        _STRING.check(value["id"], ptr + "/id", errs)
    if type(cleaned) is not dict:
        return {}
    customer = cleaned.get("customer_details")
    if type(customer) is dict and "phone" in customer:
        phone = customer.pop("phone")
        customer.setdefault("phone_number", phone)
    return cleaned


def utc_micros(text: str | None) -> int | None:
    """Microseconds since the epoch (UTC) of a validated date-time, for sorting and filters."""
    if text is None:
        return None
    value = parse_datetime(text)
    if value is None:
        return None
    delta = value.astimezone(UTC) - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
