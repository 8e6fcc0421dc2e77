"""Pre-flight validation of canonical orders, written from the official Orders API v3 spec.

A 400 from the API rejects a whole batch of up to 100 orders and costs a write token, so every
order is checked here first. The schemas follow `components/schemas` of the spec (`order`,
`order-items`, `address`, `payment-details`, `customs-details`, `shipping-details`,
`service-point`, `order-partial-update`); keys the spec does not name are let through untouched,
because the API may accept them and rejecting them here would block valid orders.

The schemas expect *normalized* input (see `pipeline.normalize`): they are strict about types, so
`"2"` is not a quantity here, and `True` is not an integer either.

Errors come back as `FieldError`s, one per problem (never just the first), pointing with a JSON
pointer relative to the order: `/order_details/order_items/0/quantity`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Iterator, Mapping
from datetime import date, datetime
from typing import Any, ClassVar

import pycountry
from marshmallow import INCLUDE, Schema, ValidationError, fields, validate, validates_schema

from pipeline.errors import FieldError

# --- Spec vocabulary, shared with pipeline.normalize ---------------------------------------------

#: `price.currency` is an enum in the spec; the free-form costs objects accept any ISO 4217 code.
PRICE_CURRENCIES: frozenset[str] = frozenset({"EUR", "GBP", "USD"})
COUNTRY_CODES: frozenset[str] = frozenset(c.alpha_2 for c in pycountry.countries)
CURRENCY_CODES: frozenset[str] = frozenset(c.alpha_3 for c in pycountry.currencies)

DIMENSION_UNITS = ("cm", "mm", "m", "yd", "ft", "in")
WEIGHT_UNITS = ("kg", "g", "lbs", "oz")
VOLUME_UNITS = ("m3", "cm3", "l", "ml", "gal")
SHIPMENT_TYPES = ("gift", "commercial_goods", "commercial_sample", "returned_goods")
EXPORT_TYPES = ("private", "commercial_b2c", "commercial_b2b")
SHIP_WITH_TYPES = ("shipping_option_code",)
DG_REGULATION_SETS = ("IATA", "ADR")
DG_UNITS = ("KG", "G", "L", "ML")
DG_REGULATED_LEVELS = ("LQ", "EQ")
DG_TRANSPORT_MODES = ("Highway", "Ground", "PAX", "CAO")
DG_PACKING_GROUPS = ("I", "II", "III")
DG_WEIGHT_TYPES = ("Net", "Gross")

# The spec's costs pattern is unanchored ('[\d]+(\.[\d]+)?'); the intent is a plain decimal, so
# it is anchored here ("-3.99" or "3,99" would otherwise slip through).
_DECIMAL_STRING = re.compile(r"\d+(\.\d+)?\Z")

# marshmallow types error messages loosely (nested lists and dicts are allowed).
_Messages = dict[str, str | list[Any] | dict[Any, Any]]
_MESSAGES: _Messages = {"required": "Field required.", "null": "Field may not be null."}


# --- Strict fields -------------------------------------------------------------------------------
# marshmallow's own Integer/Float/Boolean coerce ("7" → 7, "yes" → True, True → 1). The API does
# not, and loose input is the normalizer's job, so the pre-flight must not quietly accept it.


class StrictInteger(fields.Field[int]):
    message = "Not a valid integer."

    def _deserialize(self, value: Any, attr: str | None, data: Mapping[str, Any] | None,
                     **kwargs: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValidationError(self.message)
        return value


class StrictNumber(fields.Field[float]):
    message = "Not a valid number."

    def _deserialize(self, value: Any, attr: str | None, data: Mapping[str, Any] | None,
                     **kwargs: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValidationError(self.message)
        if isinstance(value, float) and not math.isfinite(value):
            raise ValidationError(self.message)
        return value


class StrictBoolean(fields.Field[bool]):
    message = "Not a valid boolean."

    def _deserialize(self, value: Any, attr: str | None, data: Mapping[str, Any] | None,
                     **kwargs: Any) -> bool:
        if not isinstance(value, bool):
            raise ValidationError(self.message)
        return value


class IsoDateTime(fields.Field[str]):
    """An ISO 8601 date-time string with a UTC offset (`format: date-time`, i.e. RFC 3339)."""

    message = "Not a valid ISO 8601 date-time."
    naive_message = "Date-time needs a UTC offset (e.g. +00:00)."

    def _deserialize(self, value: Any, attr: str | None, data: Mapping[str, Any] | None,
                     **kwargs: Any) -> str:
        if not isinstance(value, str):
            raise ValidationError(self.message)
        if _is_date_only(value):
            raise ValidationError(self.message)
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            raise ValidationError(self.message) from None
        if parsed.utcoffset() is None:
            raise ValidationError(self.naive_message)
        return value


def _is_date_only(text: str) -> bool:
    try:
        date.fromisoformat(text)
    except ValueError:
        return False
    return True


# --- Validators ----------------------------------------------------------------------------------


class _Member(validate.Validator):
    """Membership check whose message does not list ~250 codes (OneOf would)."""

    def __init__(self, codes: frozenset[str], message: str) -> None:
        self.codes = codes
        self.error = self.message = message

    def __call__(self, value: Any) -> Any:
        if value not in self.codes:
            raise ValidationError(self.message)
        return value


def _email_like(value: str) -> str:
    """Deliberately lenient: one '@' with text on both sides and no spaces. Stricter checks would
    dead-letter orders the API accepts (international addresses, odd but valid local parts)."""
    local, at, domain = value.partition("@")
    if not (at and local and domain) or "@" in domain or any(c.isspace() for c in value):
        raise ValidationError("Not a valid email address.")
    return value


_COUNTRY = _Member(COUNTRY_CODES, "Not an ISO 3166-1 alpha-2 country code.")
_CURRENCY = _Member(CURRENCY_CODES, "Not an ISO 4217 currency code.")


# --- Schema building -----------------------------------------------------------------------------


class _Open(Schema):
    """Every object of the spec allows keys it does not list: keep them, do not complain."""

    class Meta:
        unknown = INCLUDE


class _ServicePoint(_Open):
    """`service-point` is a oneOf of {id} and {carrier_service_point_id}. Neither alternative
    forbids extra keys, so an object carrying both matches both, which oneOf rejects."""

    at_most_one: ClassVar[bool] = False

    @validates_schema(pass_original=True, skip_on_field_errors=False)
    def _one_identifier(self, data: Mapping[str, Any], original: Any, **kwargs: Any) -> None:
        if not isinstance(original, Mapping):
            return
        given = [k for k in ("id", "carrier_service_point_id") if original.get(k) is not None]
        if len(given) > 1 or (len(given) == 0 and not self.at_most_one):
            raise ValidationError(
                "Provide exactly one of `id` (Sendcloud service point) or "
                "`carrier_service_point_id`.")


class _PartialServicePoint(_ServicePoint):
    # A partial update may touch only, say, `post_number`; the identifier is already stored.
    at_most_one = True


class _Builder:
    """Builds the schema tree once, either for full orders (POST) or for partial updates
    (PATCH, `order-partial-update`: nothing is required, nested objects merge)."""

    def __init__(self, *, partial: bool) -> None:
        self.partial = partial

    # Field helpers: `required` only counts for full orders.
    def _kw(self, required: bool, nullable: bool,
            validators: Iterable[validate.Validator | Any]) -> dict[str, Any]:
        return {"required": required and not self.partial, "allow_none": nullable,
                "validate": list(validators), "error_messages": _MESSAGES}

    def string(self, *, required: bool = False, nullable: bool = False, min_len: int | None = None,
               max_len: int | None = None, choices: Iterable[str] | None = None,
               check: Any = None) -> fields.Field[Any]:
        validators: list[Any] = []
        if min_len is not None or max_len is not None:
            validators.append(validate.Length(min=min_len, max=max_len))
        if choices is not None:
            validators.append(validate.OneOf(tuple(choices)))
        if check is not None:
            validators.append(check)
        return fields.String(**self._kw(required, nullable, validators))

    def integer(self, *, required: bool = False, nullable: bool = False,
                minimum: int | None = None, exclusive: bool = False) -> fields.Field[Any]:
        validators = [] if minimum is None else [
            validate.Range(min=minimum, min_inclusive=not exclusive)]
        return StrictInteger(**self._kw(required, nullable, validators))

    def number(self, *, required: bool = False, minimum: float | None = None,
               exclusive: bool = False) -> fields.Field[Any]:
        validators = [] if minimum is None else [
            validate.Range(min=minimum, min_inclusive=not exclusive)]
        return StrictNumber(**self._kw(required, False, validators))

    def boolean(self, *, nullable: bool = False) -> fields.Field[Any]:
        return StrictBoolean(**self._kw(False, nullable, ()))

    def timestamp(self, *, required: bool = False, nullable: bool = False) -> fields.Field[Any]:
        return IsoDateTime(**self._kw(required, nullable, ()))

    def mapping(self) -> fields.Field[Any]:
        return fields.Dict(**self._kw(False, False, ()))

    def nested(self, schema: Schema, *, required: bool = False,
               nullable: bool = False) -> fields.Field[Any]:
        return fields.Nested(schema, **self._kw(required, nullable, ()))

    def many(self, inner: fields.Field[Any], *, required: bool = False,
             nullable: bool = False) -> fields.Field[Any]:
        return fields.List(inner, **self._kw(required, nullable, ()))

    def obj(self, name: str, spec: dict[str, fields.Field[Any]],
            base: type[Schema] = _Open) -> Schema:
        return base.from_dict(spec, name=name)()

    # --- components/schemas ---
    def price(self) -> Schema:
        return self.obj("Price", {
            # The spec lists no `required` for price, but payment totals require both and a
            # price without a value or currency is meaningless; a partial update may merge one.
            "value": self.number(required=True),
            "currency": self.string(required=True, choices=sorted(PRICE_CURRENCIES)),
        })

    def costs(self) -> Schema:
        return self.obj("Costs", {
            "value": self.string(nullable=True, check=validate.Regexp(
                _DECIMAL_STRING, error="Not a decimal string such as '3.99'.")),
            "currency": self.string(nullable=True, check=_CURRENCY),
        })

    def measurement(self) -> Schema:
        dimension = self.obj("Dimension", {
            "length": self.number(required=True, minimum=0),
            "width": self.number(required=True, minimum=0),
            "height": self.number(required=True, minimum=0),
            "unit": self.string(required=True, choices=DIMENSION_UNITS),
        })
        weight = self.obj("Weight", {
            "value": self.number(required=True, minimum=0, exclusive=True),
            "unit": self.string(required=True, choices=WEIGHT_UNITS),
        })
        volume = self.obj("Volume", {
            "value": self.integer(required=True, minimum=0),
            "unit": self.string(required=True, choices=VOLUME_UNITS),
        })
        return self.obj("Measurement", {
            "dimension": self.nested(dimension),
            "weight": self.nested(weight),
            "volume": self.nested(volume),
        })

    def dangerous_goods(self) -> Schema:
        text = ("chemical_record_identifier", "packaging_type_quantity", "packaging_type",
                "packaging_instruction_code", "id_number", "class_division_number", "quantity",
                "proper_shipping_name", "emergency_contact_name", "emergency_contact_phone",
                "local_proper_shipping_name", "transport_category", "tunnel_restriction_code")
        spec = {name: self.string(nullable=True) for name in text}
        spec |= {
            "regulation_set": self.string(choices=DG_REGULATION_SETS),
            "unit_of_measurement": self.string(choices=DG_UNITS),
            "commodity_regulated_level_code": self.string(choices=DG_REGULATED_LEVELS),
            "transportation_mode": self.string(choices=DG_TRANSPORT_MODES),
            "adr_packing_group_letter": self.string(choices=DG_PACKING_GROUPS),
            "weight_type": self.string(choices=DG_WEIGHT_TYPES),
        }
        return self.obj("DangerousGoods", spec)

    def order_item(self) -> Schema:
        price = self.price()
        delivery_dates = self.obj("DeliveryDates", {
            "handover_at": self.timestamp(nullable=True),
            "deliver_at": self.timestamp(nullable=True),
        })
        spec = {
            "item_id": self.string(min_len=1),
            "product_id": self.string(),
            "variant_id": self.string(),
            "image_url": self.string(),
            # PATCH matches items by name, so a partial update needs it as much as a POST does.
            "name": fields.String(required=True, error_messages=_MESSAGES),
            "description": self.string(),
            # The spec writes `minLength: 1` on this integer; the API says "greater than 0".
            # A partial update documents `minimum: 0` but an item of zero units is not an item.
            "quantity": self.integer(required=True, minimum=0, exclusive=True),
            "sku": self.string(),
            "hs_code": self.string(),
            "country_of_origin": self.string(min_len=2, max_len=2, check=_COUNTRY),
            "properties": self.mapping(),
            "unit_price": self.nested(price),
            "total_price": self.nested(price, required=True),
            "measurement": self.nested(self.measurement()),
            "ean": self.string(),
            # GET returns `delivery_dates: null`; an order read back must validate again.
            "delivery_dates": self.nested(delivery_dates, nullable=True),
            "mid_code": self.string(nullable=True),
            "material_content": self.string(nullable=True),
            "intended_use": self.string(nullable=True),
            "manufacturer_product_id": self.string(nullable=True, max_len=70),
            "manufacturer_product_id_std": self.string(nullable=True, max_len=70),
            "dangerous_goods": self.nested(self.dangerous_goods()),
        }
        return self.obj("OrderItem", spec)

    def order_details(self) -> Schema:
        integration = self.obj("Integration", {"id": self.integer(required=True, minimum=1)})
        return self.obj("OrderDetails", {
            "integration": self.nested(integration, required=True),
            "status": self.nested(self.status(), required=True),
            "order_created_at": self.timestamp(required=True),
            "order_updated_at": self.timestamp(),
            "order_items": self.many(fields.Nested(self.order_item()), required=True),
            # Only the partial-update schema lets notes and tags be null.
            "notes": self.string(nullable=self.partial),
            "tags": self.many(fields.String(), nullable=self.partial),
        })

    def status(self) -> Schema:
        return self.obj("Status", {
            "code": self.string(required=True, min_len=1),
            "message": self.string(),
        })

    def payment_details(self) -> Schema:
        price, costs = self.price(), self.costs()
        return self.obj("PaymentDetails", {
            "is_cash_on_delivery": self.boolean(nullable=True),
            "total_price": self.nested(price, required=True),
            "subtotal_price": self.nested(price),
            "estimated_shipping_price": self.nested(price),
            "estimated_tax_price": self.nested(price),
            "status": self.nested(self.status(), required=True),
            "invoice_date": self.string(nullable=True),
            "discount_granted": self.nested(costs, nullable=True),
            "insurance_costs": self.nested(costs, nullable=True),
            "freight_costs": self.nested(costs, nullable=True),
            "other_costs": self.nested(costs, nullable=True),
        })

    def customs_details(self) -> Schema:
        tax_number = self.obj("TaxNumber", {
            "name": self.string(nullable=True),
            "country_code": self.string(nullable=True, check=_COUNTRY),
            "value": self.string(nullable=True),
        })
        tax_numbers = self.obj("TaxNumbers", {
            role: self.many(fields.Nested(tax_number))
            for role in ("sender", "receiver", "importer_of_record")
        })
        return self.obj("CustomsDetails", {
            "commercial_invoice_number": self.string(),
            "shipment_type": self.string(choices=SHIPMENT_TYPES),
            "export_type": self.string(choices=EXPORT_TYPES),
            "tax_numbers": self.nested(tax_numbers, nullable=True),
        })

    def customer_details(self) -> Schema:
        return self.obj("CustomerDetails", {
            "name": self.string(required=True),
            "phone_number": self.string(),
            # order-partial-update spells it `phone`; both are plain strings.
            "phone": self.string(),
            "email": self.string(),
        })

    def address(self) -> Schema:
        # billing-address and shipping-address: the address object plus these required fields.
        return self.obj("Address", {
            "name": self.string(required=True, min_len=1),
            "company_name": self.string(),
            "address_line_1": self.string(required=True),
            "house_number": self.string(),
            "address_line_2": self.string(),
            "postal_code": self.string(required=True, min_len=1),
            "city": self.string(required=True, min_len=1),
            "po_box": self.string(nullable=True),
            "state_province_code": self.string(),
            "country_code": self.string(required=True, min_len=1, check=_COUNTRY),
            "email": self.string(check=_email_like),
            "phone_number": self.string(),
        })

    def shipping_details(self) -> Schema:
        properties = self.obj("ShippingOptionProperties", {
            "shipping_option_code": self.string(required=True, nullable=True),
            "contract_id": self.integer(nullable=True, minimum=1),
        })
        ship_with = self.obj("ShipWith", {
            "type": self.string(required=True, choices=SHIP_WITH_TYPES),
            "properties": self.nested(properties, required=True),
        })
        return self.obj("ShippingDetails", {
            "is_local_pickup": self.boolean(nullable=True),
            "delivery_indicator": self.string(),
            "measurement": self.nested(self.measurement()),
            "ship_with": self.nested(ship_with),
        })

    def service_point(self) -> Schema:
        base = _PartialServicePoint if self.partial else _ServicePoint
        spec = {name: self.string() for name in (
            "id", "carrier_service_point_id", "post_number", "latitude", "longitude", "type")}
        spec["extra_data"] = self.mapping()
        return self.obj("ServicePoint", spec, base=base)

    def order(self) -> Schema:
        return self.obj("Order", {
            # Sendcloud's id: an integer in responses, but requests must send a string.
            "id": self.string(),
            "order_id": self.string(required=True, min_len=1),
            "order_number": self.string(required=True, min_len=1),
            "order_details": self.nested(self.order_details(), required=True),
            "payment_details": self.nested(self.payment_details(), required=True),
            "customs_details": self.nested(self.customs_details(), nullable=True),
            "customer_details": self.nested(self.customer_details()),
            "billing_address": self.nested(self.address()),
            "shipping_address": self.nested(self.address()),
            "shipping_details": self.nested(self.shipping_details()),
            "service_point_details": self.nested(self.service_point()),
        })


# Built once at import: building a schema tree costs far more than validating an order with it.
ORDER_SCHEMA: Schema = _Builder(partial=False).order()
CHANGES_SCHEMA: Schema = _Builder(partial=True).order()


# --- Public API ----------------------------------------------------------------------------------


def validate_order(order: Mapping[str, Any]) -> list[FieldError]:
    """Every problem with a full order (POST body item), sorted by pointer; [] when valid."""
    return _validate(ORDER_SCHEMA, order, "An order must be a JSON object.")


def validate_changes(changes: Mapping[str, Any]) -> list[FieldError]:
    """Every problem with a partial-update body (PATCH), sorted by pointer; [] when valid."""
    return _validate(CHANGES_SCHEMA, changes, "Changes must be a JSON object.")


def _validate(schema: Schema, data: Any, not_an_object: str) -> list[FieldError]:
    if not isinstance(data, Mapping):
        return [FieldError("", not_an_object)]
    return to_field_errors(schema.validate(data))


def to_field_errors(messages: Mapping[str, Any]) -> list[FieldError]:
    """marshmallow's nested error dict → sorted, de-duplicated FieldErrors with JSON pointers."""
    found = set(_flatten(messages, ""))
    return sorted(found, key=lambda e: (_sort_key(e.pointer), e.detail))


def _flatten(messages: Any, pointer: str) -> Iterator[FieldError]:
    if isinstance(messages, Mapping):
        for key, sub in messages.items():
            # `_schema` holds errors about the object itself (e.g. the service point oneOf).
            child = pointer if key == "_schema" else f"{pointer}/{escape_pointer(str(key))}"
            yield from _flatten(sub, child)
    elif isinstance(messages, list | tuple):
        for sub in messages:
            yield from _flatten(sub, pointer)
    else:
        yield FieldError(pointer, str(messages))


def _sort_key(pointer: str) -> tuple[tuple[int, int | str], ...]:
    # Array indexes sort numerically, so /order_items/2 comes before /order_items/10.
    parts = pointer.split("/")[1:]
    return tuple((0, int(p)) if p.isdigit() else (1, p) for p in parts)


def escape_pointer(token: str) -> str:
    """RFC 6901: '~' → '~0', '/' → '~1'."""
    return token.replace("~", "~0").replace("/", "~1")
