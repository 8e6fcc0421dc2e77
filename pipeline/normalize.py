"""Loose producer input → the canonical Sendcloud v3 order the API and the pre-flight expect.

Shops and ERPs send `"nl"`, `"Netherlands"`, `"2"`, `" 3.50 "`, `"eur"`, naive timestamps and
epoch seconds. Where the meaning is unambiguous this module rewrites the value into the form the
spec wants; where it is not (`"Korea"`, `"2.5"` items, `"3,50"`, a wall-clock time that a DST
change makes happen twice) it rejects the record with a reason and a JSON pointer. It never
guesses, never adds a field that was not given, and keeps keys it does not know as they are.

The rules are one declarative tree (`ORDER_RULES`) mirroring the spec's schemas, so a reader can
check them against the spec field by field; `pipeline.schemas` then validates the result.

Canonical forms (all fixpoints, so normalizing twice changes nothing):
- strings trimmed; identifiers given as integers become strings (`id`, `order_id`, ...);
- country codes ISO 3166-1 alpha-2 upper case; currencies ISO 4217 upper case;
- JSON numbers: int when whole (`3.0` → `3`), else float; integers (`quantity`, volume,
  `integration.id`, `contract_id`) must be whole; decimal strings (costs `value`) plain `"3.99"`;
- timestamps ISO 8601 with the offset they came with; naive ones are read in `source_tz` and
  converted to UTC; epoch seconds become UTC.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, tzinfo
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

import pycountry

from pipeline.errors import FieldError, RecordRejected
from pipeline.schemas import (
    COUNTRY_CODES,
    CURRENCY_CODES,
    DG_PACKING_GROUPS,
    DG_REGULATED_LEVELS,
    DG_REGULATION_SETS,
    DG_TRANSPORT_MODES,
    DG_UNITS,
    DG_WEIGHT_TYPES,
    DIMENSION_UNITS,
    EXPORT_TYPES,
    SHIP_WITH_TYPES,
    SHIPMENT_TYPES,
    VOLUME_UNITS,
    WEIGHT_UNITS,
    escape_pointer,
)


class Unreadable(ValueError):
    """A value whose meaning cannot be read without guessing. The message is the reason."""


# --- Countries -----------------------------------------------------------------------------------

# Everyday English names pycountry does not carry. Only names that denote one country: "America",
# "Macedonia" or "Congo" are deliberately absent ("Congo" is ambiguous by construction below).
_COUNTRY_ALIASES = {
    "uk": "GB", "great britain": "GB", "britain": "GB", "england": "GB", "scotland": "GB",
    "wales": "GB", "northern ireland": "GB", "holland": "NL", "turkey": "TR", "russia": "RU",
    "vatican": "VA", "vatican city": "VA", "swaziland": "SZ", "brunei": "BN",
    "ivory coast": "CI", "burma": "MM", "dr congo": "CD", "cape verde": "CV", "east timor": "TL",
}
# "UK" is the code ISO reserves for the United Kingdom; people write it far more often than GB.
_CODE_ALIASES = {"UK": "GB"}
_DOTS = re.compile(r"\.")
_APOSTROPHES = re.compile(r"['’`]")
_SPACES = re.compile(r"[\s\-_]+")
_PARENTHESES = re.compile(r"\s*\([^)]*\)")


def _fold(text: str) -> str:
    """Case, accents, punctuation and a leading 'the' do not change which country is meant."""
    decomposed = unicodedata.normalize("NFKD", text)
    plain = "".join(c for c in decomposed if not unicodedata.combining(c))
    plain = plain.casefold().replace("&", " and ")
    plain = _APOSTROPHES.sub(" ", _DOTS.sub("", plain))  # "U.S.A." → usa, "d'Ivoire" → d ivoire
    plain = _SPACES.sub(" ", plain).strip()
    return plain.removeprefix("the ")


def _name_variants(name: str) -> set[str]:
    """'Korea, Republic of' is also called 'Korea' and 'Republic of Korea'; 'Saint Martin (French
    part)' is also 'Saint Martin'. Short forms shared by two countries end up ambiguous."""
    variants = {name, _PARENTHESES.sub("", name)}
    head, comma, tail = name.partition(", ")
    if comma:
        variants.add(head)
        if tail.endswith((" of", " of the")):
            variants.add(f"{tail} {head}")
    return variants


def _country_index() -> dict[str, frozenset[str]]:
    index: dict[str, set[str]] = {}

    def add(name: str, code: str) -> None:
        index.setdefault(_fold(name), set()).add(code)

    for country in pycountry.countries:
        add(country.alpha_2, country.alpha_2)
        add(country.alpha_3, country.alpha_2)
        for attr in ("name", "common_name", "official_name"):
            name = getattr(country, attr, None)
            for variant in _name_variants(name) if name else ():
                add(variant, country.alpha_2)
    for alias, code in _COUNTRY_ALIASES.items():
        add(alias, code)
    return {key: frozenset(codes) for key, codes in index.items()}


_COUNTRIES = _country_index()


def resolve_country(value: str) -> str:
    """'nl', 'NLD', 'Netherlands', 'the netherlands', 'Holland' → 'NL'. Raises Unreadable for
    unknown or ambiguous names ('Korea', 'Congo')."""
    text = value.strip()
    if len(text) == 2 and text.isascii() and text.isalpha():
        # Two letters are a code, never a name: do not look further if it is not a real one.
        code = _CODE_ALIASES.get(text.upper(), text.upper())
        if code in COUNTRY_CODES:
            return code
        raise Unreadable(f"{value!r} is not an ISO 3166-1 alpha-2 country code")
    codes = _COUNTRIES.get(_fold(text), frozenset())
    if len(codes) == 1:
        return next(iter(codes))
    if codes:
        options = ", ".join(f"{c} ({_country_name(c)})" for c in sorted(codes))
        raise Unreadable(f"country {value!r} is ambiguous: it could be {options}; "
                         "send the ISO 3166-1 alpha-2 code")
    raise Unreadable(f"{value!r} is not a country we recognise; "
                     "send an ISO 3166-1 alpha-2 code such as 'NL'")


def _country_name(code: str) -> str:
    country = pycountry.countries.get(alpha_2=code)
    return str(getattr(country, "common_name", None) or getattr(country, "name", code))


# --- Numbers -------------------------------------------------------------------------------------

_PLAIN_DECIMAL = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)")


def _as_decimal(value: Any) -> Decimal | None:
    """The exact decimal a JSON number or numeric string stands for; None for other types (those
    are left for the schema to report). Raises Unreadable for strings that are not plain
    decimals: '1,50' could be 1.5 or 150 depending on the shop's locale."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise Unreadable(f"{value!r} is not a finite number")
        return Decimal(repr(value))  # repr is the shortest exact round-trip: 3.99, not 3.98999…
    if not isinstance(value, str):
        return None
    text = value.strip()
    if len(text) > 64:
        raise Unreadable(f"{text[:20]!r}… ({len(text)} characters) is too long for a number")
    if _PLAIN_DECIMAL.fullmatch(text):
        return Decimal(text)
    if "," in text:
        raise Unreadable(f"{value!r}: a comma may be a decimal or a thousands separator; "
                         "write the number with a dot and no separators, e.g. 1234.56")
    raise Unreadable(f"{value!r} is not a number")


def _to_number(value: Any) -> Any:
    number = _as_decimal(value)
    if number is None:
        return value
    if number == number.to_integral_value():
        return int(number)
    result = float(number)
    if not math.isfinite(result):
        raise Unreadable(f"{value!r} is out of range")
    return result


def to_integer(value: Any) -> Any:
    """7, '7', '7.0', 7.0 → 7. '7.5' raises Unreadable; other types are returned unchanged."""
    number = _as_decimal(value)
    if number is None:
        return value
    if number != number.to_integral_value():
        raise Unreadable(f"{value!r} is not a whole number")
    return int(number)


def _to_decimal_text(value: Any) -> Any:
    """The costs objects want decimal *strings*: 3.99 → '3.99', 5 → '5'."""
    if isinstance(value, str):
        return value.strip()
    number = _as_decimal(value)
    return value if number is None else format(number, "f")


# --- Timestamps ----------------------------------------------------------------------------------

# Epoch seconds past 2100 are almost certainly milliseconds, and before 1970 garbage; either way,
# not a guess worth making.
_EPOCH_LIMIT = Decimal(4_102_444_800)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_DIGITS = re.compile(r"[+-]?\d+(?:\.\d+)?")


def parse_timestamp(value: Any, *, source_tz: tzinfo = UTC) -> datetime:
    """An aware datetime for an ISO 8601 string, an epoch number or digit string, or a datetime.
    Offsets are kept; naive values are read in `source_tz`. Raises Unreadable."""
    try:
        moment = _parse_timestamp(value, source_tz)
        moment.astimezone(UTC)  # 0001-01-01T00:00+14:00 has no UTC instant
    except OverflowError:
        raise Unreadable(f"{value!r} is out of range") from None
    return moment


def _parse_timestamp(value: Any, source_tz: tzinfo) -> datetime:
    if isinstance(value, datetime):
        return value if value.utcoffset() is not None else _localize(value, source_tz)
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise Unreadable(f"{value!r} is not a timestamp (ISO 8601 string or epoch seconds)")
    if isinstance(value, str) and not _DIGITS.fullmatch(value.strip()):
        return _parse_iso(value, source_tz)
    if isinstance(value, str) and _is_basic_date(value.strip()):
        raise Unreadable(f"{value!r} could be epoch seconds or a YYYYMMDD date; "
                         "send an ISO 8601 date-time")
    return _from_epoch(value)


def _parse_iso(value: str, source_tz: tzinfo) -> datetime:
    # RFC 3339 allows a lower-case 't' and 'z'; Python's parser does not.
    text = value.strip().upper()
    if _is_date(text):
        raise Unreadable(f"{value!r} is a date without a time of day")
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise Unreadable(f"{value!r} is not an ISO 8601 date-time") from None
    return parsed if parsed.utcoffset() is not None else _localize(parsed, source_tz)


def _is_date(text: str) -> bool:
    try:
        date.fromisoformat(text)
    except ValueError:
        return False
    return True


def _is_basic_date(text: str) -> bool:
    """ISO 8601's basic date form, YYYYMMDD, is also a plausible epoch digit string."""
    return len(text) == 8 and text.isdigit() and _is_date(text)


def _localize(naive: datetime, source_tz: tzinfo) -> datetime:
    """Attach `source_tz` and convert to UTC, refusing the wall-clock times a DST change makes
    happen twice (which of the two?) or never (what was meant?)."""
    first, second = naive.replace(tzinfo=source_tz), naive.replace(tzinfo=source_tz, fold=1)
    if first.utcoffset() == second.utcoffset():
        return first.astimezone(UTC)
    # A time that exists does not move when it goes to UTC and back; one in the gap does.
    exists = first.astimezone(UTC).astimezone(source_tz).replace(tzinfo=None) == naive
    problem = "happens twice" if exists else "does not exist"
    raise Unreadable(f"{naive.isoformat()} {problem} in {source_tz} (daylight saving change); "
                     "send it with a UTC offset")


def _from_epoch(value: int | float | str) -> datetime:
    seconds = Decimal(value.strip()) if isinstance(value, str) else _as_decimal(value)
    assert seconds is not None  # ints and floats always give a decimal
    if not 0 <= seconds < _EPOCH_LIMIT:
        raise Unreadable(f"{value!r} is out of range for epoch seconds (1970–2100; "
                         "milliseconds?)")
    micros = (seconds * 1_000_000).to_integral_value(ROUND_HALF_EVEN)
    return _EPOCH + timedelta(microseconds=int(micros))


def render_timestamp(moment: datetime) -> str:
    """ISO 8601 with the offset, and no more sub-second digits than the value has."""
    if moment.microsecond == 0:
        return moment.isoformat(timespec="seconds")
    if moment.microsecond % 1000 == 0:
        return moment.isoformat(timespec="milliseconds")
    return moment.isoformat(timespec="microseconds")


def normalize_timestamp(value: Any, *, source_tz: tzinfo = UTC) -> str:
    """Canonical ISO 8601 string for a loose timestamp. Raises RecordRejected."""
    try:
        return render_timestamp(parse_timestamp(value, source_tz=source_tz))
    except Unreadable as exc:
        raise RecordRejected(str(exc), [FieldError("", str(exc))]) from None


# --- The rule tree -------------------------------------------------------------------------------


@dataclass
class _Context:
    source_tz: tzinfo
    errors: list[FieldError] = field(default_factory=list)


Convert = Callable[[Any, tzinfo], Any]


@dataclass(frozen=True)
class Leaf:
    """A scalar rule. `convert` returns the canonical value, returns the input unchanged when it
    is of a type it does not handle (the schema reports those), or raises Unreadable."""

    name: str
    convert: Convert

    def __call__(self, value: Any, pointer: str, ctx: _Context) -> Any:
        if value is None:  # null is the schema's business (some fields allow it)
            return None
        try:
            return self.convert(value, ctx.source_tz)
        except Unreadable as exc:
            ctx.errors.append(FieldError(pointer, str(exc)))
            return value


@dataclass(frozen=True)
class Obj:
    """An object: known keys get their rule, unknown keys are copied as given."""

    fields: Mapping[str, Rule]

    def __call__(self, value: Any, pointer: str, ctx: _Context) -> Any:
        if not isinstance(value, Mapping):
            return clone_json(value)
        out: dict[str, Any] = {}
        for key, item in value.items():
            rule = self.fields.get(key)
            out[key] = rule(item, f"{pointer}/{escape_pointer(str(key))}", ctx) if rule \
                else clone_json(item)
        return out


@dataclass(frozen=True)
class Each:
    """An array whose items all follow one rule."""

    item: Rule

    def __call__(self, value: Any, pointer: str, ctx: _Context) -> Any:
        if not isinstance(value, list):
            return clone_json(value)
        return [self.item(v, f"{pointer}/{i}", ctx) for i, v in enumerate(value)]


Rule = Leaf | Obj | Each


def clone_json(value: Any) -> Any:
    """A deep copy of JSON-shaped data; much cheaper than copy.deepcopy on the hot path."""
    if isinstance(value, Mapping):
        return {k: clone_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [clone_json(v) for v in value]
    return value


def _text(value: Any, _tz: tzinfo) -> Any:
    return value.strip() if isinstance(value, str) else value


def _identifier(value: Any, _tz: tzinfo) -> Any:
    # Identifiers given as JSON integers are unambiguous as strings. Not so postal codes, phone
    # numbers or HS codes, whose leading zeros a number has already lost: those stay as given.
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return _text(value, _tz)


def _upper(value: Any, _tz: tzinfo) -> Any:
    return value.strip().upper() if isinstance(value, str) else value


def _country(value: Any, _tz: tzinfo) -> Any:
    return resolve_country(value) if isinstance(value, str) else value


def _currency(value: Any, _tz: tzinfo) -> Any:
    if not isinstance(value, str):
        return value
    code = value.strip().upper()
    if code not in CURRENCY_CODES:
        raise Unreadable(f"{value!r} is not an ISO 4217 currency code")
    return code


def _timestamp(value: Any, tz: tzinfo) -> Any:
    return render_timestamp(parse_timestamp(value, source_tz=tz))


def _enum(choices: tuple[str, ...]) -> Leaf:
    """Case-insensitive match onto the spec's spelling ('KG' → 'kg', 'iata' → 'IATA'). The enums
    have no two values that differ only in case, so this never has to choose."""
    by_fold = {c.casefold(): c for c in choices}

    def convert(value: Any, _tz: tzinfo) -> Any:
        if not isinstance(value, str):
            return value
        return by_fold.get(value.strip().casefold(), value.strip())

    return Leaf(f"enum{choices}", convert)


TEXT = Leaf("text", _text)
IDENTIFIER = Leaf("identifier", _identifier)
UPPER = Leaf("upper", _upper)
INTEGER = Leaf("integer", lambda v, _tz: to_integer(v))
NUMBER = Leaf("number", lambda v, _tz: _to_number(v))
DECIMAL_TEXT = Leaf("decimal_text", lambda v, _tz: _to_decimal_text(v))
COUNTRY = Leaf("country", _country)
CURRENCY = Leaf("currency", _currency)
TIMESTAMP = Leaf("timestamp", _timestamp)
KEEP = Leaf("keep", lambda v, _tz: clone_json(v))  # booleans, free-form objects

_PRICE = Obj({"value": NUMBER, "currency": CURRENCY})
_COSTS = Obj({"value": DECIMAL_TEXT, "currency": CURRENCY})
_MEASUREMENT = Obj({
    "dimension": Obj({"length": NUMBER, "width": NUMBER, "height": NUMBER,
                      "unit": _enum(DIMENSION_UNITS)}),
    "weight": Obj({"value": NUMBER, "unit": _enum(WEIGHT_UNITS)}),
    "volume": Obj({"value": INTEGER, "unit": _enum(VOLUME_UNITS)}),
})
_DANGEROUS_GOODS = Obj({
    **{name: TEXT for name in (
        "chemical_record_identifier", "packaging_type_quantity", "packaging_type",
        "packaging_instruction_code", "id_number", "class_division_number", "quantity",
        "proper_shipping_name", "emergency_contact_name", "emergency_contact_phone",
        "local_proper_shipping_name", "transport_category", "tunnel_restriction_code")},
    "regulation_set": _enum(DG_REGULATION_SETS),
    "unit_of_measurement": _enum(DG_UNITS),
    "commodity_regulated_level_code": _enum(DG_REGULATED_LEVELS),
    "transportation_mode": _enum(DG_TRANSPORT_MODES),
    "adr_packing_group_letter": _enum(DG_PACKING_GROUPS),
    "weight_type": _enum(DG_WEIGHT_TYPES),
})
_ORDER_ITEM = Obj({
    "item_id": IDENTIFIER, "product_id": IDENTIFIER, "variant_id": IDENTIFIER,
    "image_url": TEXT, "name": TEXT, "description": TEXT, "quantity": INTEGER, "sku": TEXT,
    "hs_code": TEXT, "country_of_origin": COUNTRY, "properties": KEEP,
    "unit_price": _PRICE, "total_price": _PRICE, "measurement": _MEASUREMENT, "ean": TEXT,
    "delivery_dates": Obj({"handover_at": TIMESTAMP, "deliver_at": TIMESTAMP}),
    "mid_code": TEXT, "material_content": TEXT, "intended_use": TEXT,
    "manufacturer_product_id": TEXT, "manufacturer_product_id_std": TEXT,
    "dangerous_goods": _DANGEROUS_GOODS,
})
_STATUS = Obj({"code": TEXT, "message": TEXT})
_TAX_NUMBER = Obj({"name": TEXT, "country_code": COUNTRY, "value": TEXT})
_ADDRESS = Obj({
    "name": TEXT, "company_name": TEXT, "address_line_1": TEXT, "house_number": IDENTIFIER,
    "address_line_2": TEXT, "postal_code": TEXT, "city": TEXT, "po_box": TEXT,
    "state_province_code": UPPER, "country_code": COUNTRY, "email": TEXT, "phone_number": TEXT,
})

#: The rules for a full order; a partial update (`changes`) uses the same field names.
ORDER_RULES = Obj({
    "id": IDENTIFIER,
    "order_id": IDENTIFIER,
    "order_number": IDENTIFIER,
    "order_details": Obj({
        "integration": Obj({"id": INTEGER}),
        "status": _STATUS,
        "order_created_at": TIMESTAMP,
        "order_updated_at": TIMESTAMP,
        "order_items": Each(_ORDER_ITEM),
        "notes": TEXT,
        "tags": Each(TEXT),
    }),
    "payment_details": Obj({
        "is_cash_on_delivery": KEEP,
        "total_price": _PRICE, "subtotal_price": _PRICE,
        "estimated_shipping_price": _PRICE, "estimated_tax_price": _PRICE,
        "status": _STATUS,
        "invoice_date": TEXT,
        "discount_granted": _COSTS, "insurance_costs": _COSTS,
        "freight_costs": _COSTS, "other_costs": _COSTS,
    }),
    "customs_details": Obj({
        "commercial_invoice_number": TEXT,
        "shipment_type": _enum(SHIPMENT_TYPES),
        "export_type": _enum(EXPORT_TYPES),
        "tax_numbers": Obj({role: Each(_TAX_NUMBER)
                            for role in ("sender", "receiver", "importer_of_record")}),
    }),
    "customer_details": Obj({"name": TEXT, "phone_number": TEXT, "phone": TEXT, "email": TEXT}),
    "billing_address": _ADDRESS,
    "shipping_address": _ADDRESS,
    "shipping_details": Obj({
        "is_local_pickup": KEEP,
        "delivery_indicator": TEXT,
        "measurement": _MEASUREMENT,
        "ship_with": Obj({
            "type": _enum(SHIP_WITH_TYPES),
            "properties": Obj({"shipping_option_code": TEXT, "contract_id": INTEGER}),
        }),
    }),
    "service_point_details": Obj({
        "id": IDENTIFIER, "carrier_service_point_id": IDENTIFIER, "post_number": TEXT,
        "latitude": DECIMAL_TEXT, "longitude": DECIMAL_TEXT, "type": TEXT, "extra_data": KEEP,
    }),
})


# --- Public API ----------------------------------------------------------------------------------


def normalize_order(order: Mapping[str, Any], *, source_tz: tzinfo = UTC) -> dict[str, Any]:
    """The canonical form of a full order. Raises RecordRejected with every problem found."""
    return _normalize(order, source_tz, "order")


def normalize_changes(changes: Mapping[str, Any], *, source_tz: tzinfo = UTC) -> dict[str, Any]:
    """The canonical form of a partial-update body. Raises RecordRejected."""
    return _normalize(changes, source_tz, "changes")


def _normalize(data: Any, source_tz: tzinfo, what: str) -> dict[str, Any]:
    if not isinstance(data, Mapping):
        detail = f"{what} must be a JSON object, not {type(data).__name__}"
        raise RecordRejected(detail, [FieldError("", detail)])
    ctx = _Context(source_tz)
    result: dict[str, Any] = ORDER_RULES(data, "", ctx)
    if ctx.errors:
        raise RecordRejected(summarize(f"{what} cannot be normalized", ctx.errors), ctx.errors)
    return result


def summarize(prefix: str, errors: list[FieldError]) -> str:
    """One line for logs and the dead-letter list: the first problem, and how many more."""
    first = errors[0]
    where = first.pointer or "record"
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return f"{prefix}: {where}: {first.detail}{more}"

