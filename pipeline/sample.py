"""Seeded, reproducible sample orders: producer records (CONTRACT §1) for the demo, tests and
benchmarks.

`generate(spec)` streams records one at a time. Each order is built from its own random stream,
seeded by `(spec.seed, order index)`, so the same spec always yields the same records, and an
order's content does not change when only the rates change (easier to compare runs).

What the rates mean (all exact, not just expected values, so oracles and benchmarks can count):

* Every order is one of three kinds, chosen without replacement over the `count` orders:
  `round(count × invalid_client_rate)` carry one defect the client's pre-flight must reject,
  `round(count × invalid_server_rate)` are schema-valid but target integration 999 (not owned by
  the account, so only the server rejects them), the rest are valid. An invalid order is exactly
  one record; updates, patches and deletes are only given to valid orders.
* Among the `v` valid orders, `round(v × update_rate)` get a newer full version,
  `round(v × patch_rate)` a patch, `round(v × delete_rate)` a delete, and `round(v × loose_rate)`
  are written loosely (every upsert record of that order). These are chosen independently.
* Of the `u` updated orders, `round(u × out_of_order_rate)` emit the newer version first and the
  older one up to `REORDER_WINDOW` orders later (a late older version, to be superseded).

Versions of one order strictly increase: base < update < patch < delete. A delete is always the
newest operation of its order, so the final state of a deleted order is "deleted".

Constant memory: records that must come later wait in a heap keyed by stream position; nothing
waits longer than ~3 × `REORDER_WINDOW` orders, so the heap stays small whatever `count` is.

Nothing here does I/O except `write_jsonl`, on the stream the caller hands in.
"""

from __future__ import annotations

import heapq
import json
import random
import unicodedata
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any, Final, NamedTuple, Protocol

__all__ = [
    "CLIENT_DEFECTS",
    "COUNTRIES",
    "KINDS",
    "LOOSE_KINDS",
    "REORDER_WINDOW",
    "SERVER_REJECTED_INTEGRATION",
    "SampleRecord",
    "SampleSpec",
    "generate",
    "generate_labeled",
    "write_jsonl",
]

SERVER_REJECTED_INTEGRATION: Final = 999
"""Integration the emulator's demo account does not own: a schema-valid order for it fails only
at the server (403/400), never in the client's pre-flight."""

REORDER_WINDOW: Final = 32
"""How many orders later a delayed record (update, late older version, patch, delete) may appear.
Small enough that coalescing in one batch gets exercised, large enough that some versions arrive
after the earlier one was already sent (the ledger must supersede them)."""

# Fixed start so timestamps do not depend on the clock; one order every ~30 s from here.
EPOCH: Final = datetime(2025, 3, 3, 8, 0, 0, tzinfo=UTC)

KINDS: Final = ("upsert", "update", "stale", "patch", "delete", "invalid_client", "invalid_server")
"""Labels of `generate_labeled`: `upsert` first version of a valid order; `update` its newer
version; `stale` the older version when it arrives after the newer one; `patch`; `delete`;
`invalid_client` (pre-flight must reject); `invalid_server` (only the API rejects)."""

CLIENT_DEFECTS: Final = ("quantity_zero", "missing_order_number", "unknown_country", "bad_currency")
LOOSE_KINDS: Final = ("country", "currency", "quantity", "price", "timestamp")


@dataclass(frozen=True)
class SampleSpec:
    count: int = 100
    seed: int = 7
    integrations: tuple[int, ...] = (101, 102, 103)
    invalid_client_rate: float = 0.0
    invalid_server_rate: float = 0.0
    update_rate: float = 0.0
    out_of_order_rate: float = 0.0
    patch_rate: float = 0.0
    delete_rate: float = 0.0
    loose_rate: float = 0.0

    def __post_init__(self) -> None:
        if self.count < 0:
            raise ValueError(f"count must be ≥ 0, got {self.count}")
        if not self.integrations:
            raise ValueError("integrations must name at least one integration id")
        for name in ("invalid_client_rate", "invalid_server_rate", "update_rate",
                     "out_of_order_rate", "patch_rate", "delete_rate", "loose_rate"):
            rate = getattr(self, name)
            if not 0.0 <= rate <= 1.0:
                raise ValueError(f"{name} must be within [0, 1], got {rate}")
        if self.invalid_client_rate + self.invalid_server_rate > 1.0:
            raise ValueError("invalid_client_rate + invalid_server_rate must not exceed 1")


class SampleRecord(NamedTuple):
    """A generated record with what the generator meant by it (for oracles and debugging)."""

    kind: str
    record: dict[str, Any]
    loose: bool = False
    defect: str | None = None


def generate(spec: SampleSpec) -> Iterator[dict[str, Any]]:
    """Producer records for `spec`, streamed in arrival order."""
    for sample in generate_labeled(spec):
        yield sample.record


def generate_labeled(spec: SampleSpec) -> Iterator[SampleRecord]:
    """Like `generate`, with each record's kind (see KINDS), looseness and client defect."""
    planner = _Planner(spec)
    # (stream position, tie-breaker, record): the tie-breaker keeps push order among equal
    # positions and stops heapq from ever comparing the records themselves.
    waiting: list[tuple[int, int, SampleRecord]] = []
    sequence = 0
    for index in range(spec.count):
        for position, sample in _order_records(spec, index, planner.next()):
            heapq.heappush(waiting, (position, sequence, sample))
            sequence += 1
        while waiting and waiting[0][0] <= index:
            yield heapq.heappop(waiting)[2]
    while waiting:
        yield heapq.heappop(waiting)[2]


class _TextSink(Protocol):
    def write(self, text: str, /) -> object: ...


def write_jsonl(records: Iterable[dict[str, Any]], stream: _TextSink) -> int:
    """Write one compact JSON object a line; returns the number of records written.

    ASCII-escaped on purpose: the output is then valid UTF-8 whatever the stream's encoding
    (a C-locale stdout would otherwise fail half-way on "Müller")."""
    written = 0
    for record in records:
        stream.write(json.dumps(record, separators=(",", ":")) + "\n")
        written += 1
    return written


# --------------------------------------------------------------------------------------------
# Which order gets what


@dataclass(frozen=True)
class _Plan:
    kind: str = "valid"  # valid | invalid_client | invalid_server
    update: bool = False
    out_of_order: bool = False
    patch: bool = False
    delete: bool = False
    loose: bool = False


def _share(population: int, rate: float) -> int:
    # round-half-up; Python's round() would send 0.5 → 0 and surprise anyone counting.
    return min(population, int(population * rate + 0.5))


class _Selection:
    """Exactly `wanted` of the next `population` draws say yes, uniformly spread, streamed
    (Knuth's selection sampling, Algorithm S): no list of chosen positions is kept."""

    def __init__(self, rng: random.Random, wanted: int, population: int) -> None:
        self._rng = rng
        self._wanted = wanted
        self._left = population

    def take(self) -> bool:
        if self._left <= 0:
            return False
        chosen = self._rng.random() * self._left < self._wanted
        self._left -= 1
        if chosen:
            self._wanted -= 1
        return chosen


class _Planner:
    def __init__(self, spec: SampleSpec) -> None:
        # One random stream per decision, so e.g. changing update_rate does not change which
        # orders get patched.
        def rng(name: str) -> random.Random:
            return random.Random(f"{spec.seed}/plan/{name}")

        n = spec.count
        client = _share(n, spec.invalid_client_rate)
        server = min(n - client, _share(n, spec.invalid_server_rate))
        valid = n - client - server
        updates = _share(valid, spec.update_rate)
        self._client = _Selection(rng("client"), client, n)
        self._server = _Selection(rng("server"), server, n - client)
        self._update = _Selection(rng("update"), updates, valid)
        late = _share(updates, spec.out_of_order_rate)
        self._out_of_order = _Selection(rng("out_of_order"), late, updates)
        self._patch = _Selection(rng("patch"), _share(valid, spec.patch_rate), valid)
        self._delete = _Selection(rng("delete"), _share(valid, spec.delete_rate), valid)
        self._loose = _Selection(rng("loose"), _share(valid, spec.loose_rate), valid)

    def next(self) -> _Plan:
        if self._client.take():
            return _Plan(kind="invalid_client")
        if self._server.take():
            return _Plan(kind="invalid_server")
        update = self._update.take()
        return _Plan(
            update=update,
            out_of_order=update and self._out_of_order.take(),
            patch=self._patch.take(),
            delete=self._delete.take(),
            loose=self._loose.take(),
        )


# --------------------------------------------------------------------------------------------
# The records of one order


def _order_records(spec: SampleSpec, index: int, plan: _Plan) -> list[tuple[int, SampleRecord]]:
    # One random stream per purpose, so switching a feature on or off for this order never
    # changes the rest of its content: with loose_rate 0 and 1 the orders are the same orders.
    def rng_for(purpose: str) -> random.Random:
        return random.Random(f"{spec.seed}/{purpose}/{index}")

    rng = rng_for("order")
    integration = rng.choice(spec.integrations)
    created = EPOCH + timedelta(seconds=index * 30 + rng.randint(0, 29),
                                milliseconds=rng.randint(0, 999))
    order = _build_order(rng, spec.seed, index, integration, created)

    if plan.kind == "invalid_client":
        defect = rng_for("defect").choice(CLIENT_DEFECTS)
        _apply_defect(order, defect)
        return [(index, SampleRecord("invalid_client", order, defect=defect))]
    if plan.kind == "invalid_server":
        order["order_details"]["integration"]["id"] = SERVER_REJECTED_INTEGRATION
        return [(index, SampleRecord("invalid_server", order))]

    style = rng_for("style")
    loose_kinds = _pick_loose_kinds(rng_for("loose")) if plan.loose else ()
    out: list[tuple[int, SampleRecord]] = []

    def upsert(kind: str, position: int, body: dict[str, Any]) -> None:
        if loose_kinds:
            body = _loosen(style, body, loose_kinds)
        # The explicit {"op": "upsert"} envelope now and then: both forms are producer records.
        record = {"op": "upsert", "order": body} if style.random() < 0.1 else body
        out.append((position, SampleRecord(kind, record, loose=bool(loose_kinds))))

    newest = order
    newest_version = _version(order)
    newest_position = index
    if plan.update:
        update_rng = rng_for("update")
        newest = _updated(update_rng, order, newest_version)
        newest_version = _version(newest)
        delay = update_rng.randint(1, REORDER_WINDOW)
        if plan.out_of_order:
            upsert("update", index, newest)
            upsert("stale", index + delay, order)
        else:
            upsert("upsert", index, order)
            upsert("update", index + delay, newest)
            newest_position = index + delay
    else:
        upsert("upsert", index, order)

    key = {"integration_id": integration, "order_id": order["order_id"]}
    if plan.patch:
        patch_rng = rng_for("patch")
        newest_version += timedelta(minutes=patch_rng.randint(5, 2 * 24 * 60),
                                    seconds=patch_rng.randint(0, 59))
        newest_position += patch_rng.randint(1, REORDER_WINDOW)
        code, message = _ORDER_STATUSES[_STATUS_CODES.index(_status_code(newest)) + 1]
        changes: dict[str, Any] = {"order_details": {"status": {"code": code, "message": message}}}
        if patch_rng.random() < 0.3:
            changes["order_details"]["tags"] = sorted(patch_rng.sample(_TAGS, 2))
        patch = {"op": "patch", **key, "version": _iso(newest_version), "changes": changes}
        out.append((newest_position, SampleRecord("patch", patch)))
    if plan.delete:
        # Always the newest operation of its order, and the last of its records to arrive
        # (only a late older version may still trail it, which must not resurrect the order).
        delete_rng = rng_for("delete")
        newest_version += timedelta(minutes=delete_rng.randint(5, 3 * 24 * 60),
                                    seconds=delete_rng.randint(0, 59))
        newest_position += delete_rng.randint(1, REORDER_WINDOW)
        delete = {"op": "delete", **key, "version": _iso(newest_version)}
        out.append((newest_position, SampleRecord("delete", delete)))
    return out


def _clone(value: Any) -> Any:
    """Deep copy of a JSON tree; 3x faster than copy.deepcopy, which matters at a million orders."""
    if isinstance(value, dict):
        return {key: _clone(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_clone(item) for item in value]
    return value


def _version(order: dict[str, Any]) -> datetime:
    details = order["order_details"]
    text = details.get("order_updated_at") or details["order_created_at"]
    return datetime.fromisoformat(text)


def _status_code(order: dict[str, Any]) -> str:
    code: str = order["order_details"]["status"]["code"]
    return code


def _updated(rng: random.Random, order: dict[str, Any], after: datetime) -> dict[str, Any]:
    """A newer full version: status one step further, sometimes a corrected address."""
    newer: dict[str, Any] = _clone(order)
    details = newer["order_details"]
    details["order_updated_at"] = _iso(after + timedelta(minutes=rng.randint(5, 3 * 24 * 60),
                                                         milliseconds=rng.randint(0, 999)))
    code, message = _ORDER_STATUSES[_STATUS_CODES.index(details["status"]["code"]) + 1]
    details["status"] = {"code": code, "message": message}
    if rng.random() < 0.5:
        address = newer["shipping_address"]
        country = _COUNTRY_BY_CODE[address["country_code"]]
        address["house_number"] = _house_number(rng, country, avoid=address["house_number"])
        if rng.random() < 0.5:
            address["address_line_2"] = rng.choice(country.address_line_2)
    return newer


# --------------------------------------------------------------------------------------------
# Defects and looseness


def _apply_defect(order: dict[str, Any], defect: str) -> None:
    """Exactly one problem a client pre-flight must catch (each maps to one field)."""
    if defect == "quantity_zero":
        order["order_details"]["order_items"][0]["quantity"] = 0
    elif defect == "missing_order_number":
        del order["order_number"]
    elif defect == "unknown_country":
        order["shipping_address"]["country_code"] = "Atlantis"
    elif defect == "bad_currency":
        for price in _prices(order):
            price["currency"] = "EURO"
    else:  # pragma: no cover - CLIENT_DEFECTS is closed
        raise ValueError(defect)


def _pick_loose_kinds(rng: random.Random) -> tuple[str, ...]:
    kinds = tuple(kind for kind in LOOSE_KINDS if rng.random() < 0.5)
    return kinds or (rng.choice(LOOSE_KINDS),)


def _loosen(rng: random.Random, order: dict[str, Any], kinds: tuple[str, ...]) -> dict[str, Any]:
    """The same order as a sloppy producer writes it; every change has one unambiguous meaning
    (CONTRACT §1), so normalization must turn it back into `order` exactly."""
    loose: dict[str, Any] = _clone(order)
    if "country" in kinds:
        for key in ("shipping_address", "billing_address"):
            if key in loose:
                code = loose[key]["country_code"]
                loose[key]["country_code"] = rng.choice((code.lower(), _COUNTRY_BY_CODE[code].name))
    if "currency" in kinds:
        for price in _prices(loose):
            price["currency"] = price["currency"].lower()
    if "quantity" in kinds:
        for item in loose["order_details"]["order_items"]:
            item["quantity"] = str(item["quantity"])
    if "price" in kinds:
        for price in _number_prices(loose):
            price["value"] = f"{price['value']:.2f}"
    if "timestamp" in kinds:
        details = loose["order_details"]
        for key in ("order_created_at", "order_updated_at"):
            if key in details:
                details[key] = details[key].removesuffix("Z")  # naive, meaning UTC
    return loose


def _number_prices(order: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Price objects whose `value` the schema types as a number."""
    for item in order["order_details"]["order_items"]:
        yield item["total_price"]
        if "unit_price" in item:
            yield item["unit_price"]
    payment = order["payment_details"]
    for key in ("total_price", "subtotal_price", "estimated_shipping_price"):
        if key in payment:
            yield payment[key]


def _prices(order: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every object with a currency (numeric prices and the string-valued cost objects)."""
    yield from _number_prices(order)
    payment = order["payment_details"]
    if "discount_granted" in payment:
        yield payment["discount_granted"]


# --------------------------------------------------------------------------------------------
# Building one realistic order


@dataclass(frozen=True)
class _City:
    name: str
    postcodes: tuple[int, int, int] | tuple[str, ...]  # numeric (low, high, step) or GB outwards
    lat: float
    lon: float
    region: str | None = None  # ISO 3166-2 (US states, Italian provinces)
    area_code: str | None = None  # US phone area code


@dataclass(frozen=True)
class _Country:
    code: str
    name: str  # English short name, which pycountry resolves unambiguously
    currency: str
    weight: int  # share of orders
    postcode_digits: int  # 0 = not numeric (NL, GB)
    cities: tuple[_City, ...]
    streets: tuple[str, ...]
    first_names: tuple[str, ...]
    last_names: tuple[str, ...]
    phone_prefix: str
    phone_digits: int
    house_suffixes: tuple[str, ...]
    address_line_2: tuple[str, ...]
    carriers: tuple[str, ...]
    company_suffix: str
    shipping_cents: int
    customs: bool = False  # outside the EU customs union, from an EU shop
    service_point: str | None = None  # carrier whose points customers pick, if offered
    # RFC 2606 domains: plausible addresses that can never reach anyone.
    email_domains: tuple[str, ...] = ("example.com", "example.org", "example.net")


def _c(name: str, low: int, high: int, lat: float, lon: float, step: int = 1,
       region: str | None = None, area_code: str | None = None) -> _City:
    return _City(name, (low, high, step), lat, lon, region, area_code)


COUNTRIES: Final[tuple[_Country, ...]] = (
    _Country(
        "NL", "Netherlands", "EUR", 30, 0,
        (_c("Amsterdam", 1011, 1109, 52.3676, 4.9041), _c("Rotterdam", 3011, 3089, 51.9244, 4.4777),
         _c("Utrecht", 3511, 3585, 52.0907, 5.1214), _c("Den Haag", 2491, 2597, 52.0705, 4.3007),
         _c("Eindhoven", 5611, 5658, 51.4416, 5.4697), _c("Groningen", 9711, 9747, 53.2194, 6.5665),
         _c("Tilburg", 5011, 5049, 51.5555, 5.0913), _c("Breda", 4811, 4839, 51.5719, 4.7683),
         _c("Nijmegen", 6511, 6546, 51.8126, 5.8372), _c("Haarlem", 2011, 2036, 52.3874, 4.6462)),
        ("Kerkstraat", "Dorpsstraat", "Stationsweg", "Molenstraat", "Julianalaan",
         "Wilhelminastraat", "Prinsengracht", "Schoolstraat", "Beatrixlaan", "Kastanjelaan",
         "Lindenlaan", "Nieuwstraat"),
        ("Daan", "Sem", "Lucas", "Emma", "Julia", "Sophie", "Tess", "Noah", "Fleur", "Bram",
         "Anouk", "Thijs"),
        ("de Jong", "Jansen", "de Vries", "van den Berg", "van Dijk", "Bakker", "Visser", "Smit",
         "Meijer", "de Boer", "Mulder", "Bos"),
        "+316", 8, ("A", "B", "-1", "-2"), ("2e verdieping", "Unit 4", "Achterhuis"),
        ("PostNL Standard", "DHL Parcel Home Delivery", "DPD Home"), "B.V.", 495,
        service_point="PostNL",
    ),
    _Country(
        "DE", "Germany", "EUR", 20, 5,
        (_c("Berlin", 10115, 14199, 52.52, 13.405), _c("Hamburg", 20095, 22769, 53.5511, 9.9937),
         _c("München", 80331, 81929, 48.1351, 11.582), _c("Köln", 50667, 51149, 50.9375, 6.9603),
         _c("Frankfurt am Main", 60306, 60599, 50.1109, 8.6821),
         _c("Stuttgart", 70173, 70629, 48.7758, 9.1829),
         _c("Düsseldorf", 40210, 40629, 51.2277, 6.7735),
         _c("Leipzig", 4103, 4357, 51.3397, 12.3731)),
        ("Hauptstraße", "Bahnhofstraße", "Schillerstraße", "Goethestraße", "Gartenstraße",
         "Lindenstraße", "Friedrichstraße", "Bergstraße", "Schulstraße", "Am Markt"),
        ("Lukas", "Leon", "Finn", "Paul", "Mia", "Hannah", "Lea", "Anna", "Jonas", "Sophie",
         "Felix", "Marie"),
        ("Müller", "Schmidt", "Schneider", "Fischer", "Weber", "Meyer", "Wagner", "Becker",
         "Schulz", "Hoffmann", "Schäfer", "Koch"),
        "+49151", 8, ("a", "b"), ("3. OG", "Hinterhaus", "c/o Empfang"),
        ("DHL Paket", "Hermes Standard", "DPD Classic"), "GmbH", 595,
        service_point="DHL",
    ),
    _Country(
        "FR", "France", "EUR", 10, 5,
        (_c("Paris", 75001, 75020, 48.8566, 2.3522), _c("Lyon", 69001, 69009, 45.764, 4.8357),
         _c("Marseille", 13001, 13016, 43.2965, 5.3698),
         _c("Toulouse", 31000, 31500, 43.6047, 1.4442, step=100),
         _c("Bordeaux", 33000, 33300, 44.8378, -0.5792, step=100),
         _c("Lille", 59000, 59800, 50.6292, 3.0573, step=800),
         _c("Nantes", 44000, 44300, 47.2184, -1.5536, step=100),
         _c("Nice", 6000, 6300, 43.7102, 7.262, step=100)),
        ("Rue de la République", "Avenue Victor Hugo", "Rue Pasteur", "Boulevard Voltaire",
         "Rue Nationale", "Rue du Moulin", "Rue de la Paix", "Avenue Jean Jaurès", "Rue des Lilas",
         "Place de l'Église"),
        ("Louis", "Gabriel", "Léa", "Chloé", "Jules", "Manon", "Hugo", "Camille", "Arthur", "Inès",
         "Lucas", "Zoé"),
        ("Martin", "Bernard", "Dubois", "Thomas", "Robert", "Richard", "Petit", "Durand", "Leroy",
         "Moreau", "Lefèvre", "Girard"),
        "+336", 8, (" bis", " ter"), ("Bâtiment B", "Appartement 12", "Escalier C"),
        ("Colissimo Domicile", "Chronopost 13h", "Mondial Relay Domicile"), "SARL", 695,
        service_point="Mondial Relay",
    ),
    _Country(
        "BE", "Belgium", "EUR", 10, 4,
        (_c("Brussel", 1000, 1210, 50.8503, 4.3517, step=10),
         _c("Antwerpen", 2000, 2060, 51.2194, 4.4025, step=10),
         _c("Gent", 9000, 9050, 51.0543, 3.7174, step=10),
         _c("Brugge", 8000, 8000, 51.2093, 3.2247),
         _c("Leuven", 3000, 3010, 50.8798, 4.7005, step=10),
         _c("Liège", 4000, 4030, 50.6326, 5.5797, step=10),
         _c("Namur", 5000, 5000, 50.4674, 4.8718),
         _c("Mechelen", 2800, 2800, 51.0259, 4.4776)),
        ("Kerkstraat", "Stationsstraat", "Rue de la Station", "Nieuwstraat", "Rue Haute", "Meir",
         "Chaussée de Louvain", "Dorpsstraat", "Avenue Louise", "Veldstraat"),
        ("Lucas", "Louis", "Noah", "Emma", "Olivia", "Louise", "Arthur", "Elena", "Liam", "Mila"),
        ("Peeters", "Janssens", "Maes", "Jacobs", "Mertens", "Willems", "Claes", "Goossens",
         "Wouters", "Dubois", "Lambert", "Dupont"),
        "+324", 8, ("A", "B"), ("Bus 3", "Boîte 2"),
        ("bpost Home", "DPD Home", "PostNL Belgium"), "BV", 595,
        service_point="bpost",
    ),
    _Country(
        "GB", "United Kingdom", "GBP", 8, 0,
        (_City("London", ("SW1A", "SE1", "E1", "N1", "W1D", "NW1", "EC1A", "WC2N"),
               51.5074, -0.1278),
         _City("Manchester", ("M1", "M2", "M3", "M4", "M14", "M20"), 53.4808, -2.2426),
         _City("Birmingham", ("B1", "B2", "B5", "B15", "B29"), 52.4862, -1.8904),
         _City("Leeds", ("LS1", "LS2", "LS6", "LS11"), 53.8008, -1.5491),
         _City("Glasgow", ("G1", "G2", "G3", "G12"), 55.8642, -4.2518),
         _City("Bristol", ("BS1", "BS2", "BS6", "BS8"), 51.4545, -2.5879),
         _City("Liverpool", ("L1", "L3", "L8", "L17"), 53.4084, -2.9916),
         _City("Edinburgh", ("EH1", "EH2", "EH3", "EH8"), 55.9533, -3.1883)),
        ("High Street", "Station Road", "Church Lane", "Victoria Road", "Park Road", "Queen Street",
         "Green Lane", "Manor Road", "Mill Lane", "Kings Road"),
        ("Oliver", "George", "Harry", "Amelia", "Isla", "Ava", "Jack", "Olivia", "Noah", "Freya",
         "Charlie", "Poppy"),
        ("Smith", "Jones", "Taylor", "Brown", "Williams", "Wilson", "Johnson", "Davies", "Robinson",
         "Wright", "Thompson", "Evans"),
        # Ofcom's range reserved for drama: plausible, never a real subscriber.
        "+447700900", 3, ("A", "B"), ("Flat 3", "Unit 7", "Second Floor"),
        ("Royal Mail Tracked 48", "DPD UK Next Day", "Evri Standard"), "Ltd", 1295,
        customs=True,
    ),
    _Country(
        "US", "United States", "USD", 7, 5,
        (_c("New York", 10001, 10282, 40.7128, -74.006, region="US-NY", area_code="212"),
         _c("Los Angeles", 90001, 90089, 34.0522, -118.2437, region="US-CA", area_code="213"),
         _c("Chicago", 60601, 60661, 41.8781, -87.6298, region="US-IL", area_code="312"),
         _c("Houston", 77001, 77099, 29.7604, -95.3698, region="US-TX", area_code="713"),
         _c("Phoenix", 85001, 85054, 33.4484, -112.074, region="US-AZ", area_code="602"),
         _c("Seattle", 98101, 98199, 47.6062, -122.3321, region="US-WA", area_code="206"),
         _c("Denver", 80202, 80239, 39.7392, -104.9903, region="US-CO", area_code="303"),
         _c("Boston", 2108, 2137, 42.3601, -71.0589, region="US-MA", area_code="617"),
         _c("Austin", 78701, 78759, 30.2672, -97.7431, region="US-TX", area_code="512"),
         _c("Portland", 97201, 97239, 45.5152, -122.6784, region="US-OR", area_code="503")),
        ("Main Street", "Oak Street", "Maple Avenue", "Park Avenue", "Washington Street",
         "Elm Street", "Cedar Lane", "Pine Street", "Lake Drive", "Sunset Boulevard"),
        ("Liam", "Olivia", "Noah", "Emma", "James", "Ava", "William", "Sophia", "Benjamin", "Mia",
         "Ethan", "Harper"),
        ("Smith", "Johnson", "Williams", "Brown", "Jones", "Garcia", "Miller", "Davis",
         "Rodriguez", "Martinez", "Wilson", "Anderson"),
        "+1", 0, (), ("Apt 4B", "Suite 210", "Unit 12"),
        ("UPS Worldwide Saver", "DHL Express Worldwide", "FedEx International Economy"), "Inc.",
        2495, customs=True,
    ),
    _Country(
        "ES", "Spain", "EUR", 5, 5,
        (_c("Madrid", 28001, 28055, 40.4168, -3.7038), _c("Barcelona", 8001, 8042, 41.3874, 2.1686),
         _c("Valencia", 46001, 46026, 39.4699, -0.3763),
         _c("Sevilla", 41001, 41020, 37.3891, -5.9845),
         _c("Bilbao", 48001, 48015, 43.263, -2.935), _c("Málaga", 29001, 29018, 36.7213, -4.4214),
         _c("Zaragoza", 50001, 50021, 41.6488, -0.8891)),
        ("Calle Mayor", "Calle de Alcalá", "Gran Vía", "Calle Real", "Avenida de la Constitución",
         "Calle del Sol", "Paseo de Gracia", "Calle de Serrano", "Calle San Miguel", "Plaza Mayor"),
        ("Hugo", "Martín", "Lucía", "Sofía", "Mateo", "Martina", "Pablo", "Valeria", "Daniel",
         "Julia", "Alejandro", "Carmen"),
        ("García", "Rodríguez", "González", "Fernández", "López", "Martínez", "Sánchez", "Pérez",
         "Gómez", "Martín", "Jiménez", "Ruiz"),
        "+346", 8, (), ("Piso 2º B", "Escalera A, 3º"),
        ("Correos Paq Estándar", "SEUR 24", "GLS Business Parcel"), "S.L.", 795,
    ),
    _Country(
        "IT", "Italy", "EUR", 5, 5,
        (_c("Roma", 118, 199, 41.9028, 12.4964, region="IT-RM"),
         _c("Milano", 20121, 20162, 45.4642, 9.19, region="IT-MI"),
         _c("Napoli", 80121, 80147, 40.8518, 14.2681, region="IT-NA"),
         _c("Torino", 10121, 10156, 45.0703, 7.6869, region="IT-TO"),
         _c("Firenze", 50121, 50145, 43.7696, 11.2558, region="IT-FI"),
         _c("Bologna", 40121, 40141, 44.4949, 11.3426, region="IT-BO"),
         _c("Venezia", 30121, 30176, 45.4408, 12.3155, region="IT-VE")),
        ("Via Roma", "Via Garibaldi", "Corso Vittorio Emanuele II", "Via Dante Alighieri",
         "Via Giuseppe Mazzini", "Via Giuseppe Verdi", "Via Cavour", "Via Nazionale",
         "Via del Corso", "Piazza della Repubblica"),
        ("Leonardo", "Francesco", "Alessandro", "Sofia", "Giulia", "Aurora", "Lorenzo", "Ginevra",
         "Mattia", "Alice", "Tommaso", "Beatrice"),
        ("Rossi", "Russo", "Ferrari", "Esposito", "Bianchi", "Romano", "Colombo", "Ricci", "Marino",
         "Greco", "Bruno", "Gallo"),
        "+393", 9, ("/A", "/B"), ("Scala B, interno 5", "Piano 3"),
        ("Poste Italiane Crono", "BRT Standard", "GLS Italy"), "S.r.l.", 795,
    ),
    _Country(
        "AT", "Austria", "EUR", 5, 4,
        (_c("Wien", 1010, 1230, 48.2082, 16.3738, step=10),
         _c("Graz", 8010, 8020, 47.0707, 15.4395, step=10),
         _c("Linz", 4020, 4040, 48.3069, 14.2858, step=10),
         _c("Salzburg", 5020, 5020, 47.8095, 13.055), _c("Innsbruck", 6020, 6020, 47.2692, 11.4041),
         _c("Klagenfurt am Wörthersee", 9020, 9020, 46.6247, 14.3053)),
        ("Hauptstraße", "Mariahilfer Straße", "Bahnhofstraße", "Kirchengasse", "Schulgasse",
         "Herrengasse", "Landstraßer Hauptstraße", "Kärntner Straße", "Linzer Straße",
         "Dorfstraße"),
        ("Paul", "Jakob", "Maximilian", "Emma", "Anna", "Marie", "Elias", "Lena", "David", "Laura",
         "Felix", "Valentina"),
        ("Gruber", "Huber", "Bauer", "Wagner", "Müller", "Pichler", "Steiner", "Moser", "Mayer",
         "Hofer", "Leitner", "Berger"),
        "+43664", 7, ("/3", "/12"), ("Stiege 2, Top 14", "Tür 7"),
        ("Österreichische Post Paket", "DPD Classic", "GLS Standard"), "GmbH", 795,
    ),
)
_COUNTRY_BY_CODE: Final = {country.code: country for country in COUNTRIES}
_COUNTRY_WEIGHTS: Final = tuple(country.weight for country in COUNTRIES)

# Order statuses move forward only: base 0–1, update +1, patch +1, so each step changes it.
_ORDER_STATUSES: Final = (("new", "New"), ("processing", "Processing"),
                          ("ready_to_ship", "Ready to ship"), ("fulfilled", "Fulfilled"))
_STATUS_CODES: Final = tuple(code for code, _ in _ORDER_STATUSES)
_PAYMENT_STATUSES: Final = (("paid", "Paid", 85), ("pending", "Awaiting payment", 10),
                            ("authorized", "Payment authorized", 5))
_TAGS: Final = ("gift-wrap", "priority", "preorder", "newsletter-promo", "returning-customer")
_NOTES: Final = ("Please leave the parcel with the neighbours if I am not home.",
                 "Gift - please do not include the invoice.",
                 "Call before delivery, the doorbell is broken.")
# Letters used in GB inward codes (C, I, K, M, O, V never appear there).
_GB_INWARD_LETTERS: Final = "ABDEFGHJLNPQRSTUWXYZ"
_NL_LETTERS: Final = "ABCDEGHJKLMNPRSTVWXZ"


@dataclass(frozen=True)
class _Product:
    name: str
    description: str
    sku: str
    hs_code: str
    origin: str
    eur_cents: int
    weight_kg: float
    material: str
    mid_code: str  # manufacturer id for US customs entries
    options: tuple[tuple[str, str], ...] = ()


_CATALOGUE: Final = (
    _Product("Cylinder candle", "Pebble green - 12x8 cm", "CND-CYL-GRN-12", "3406.00", "NL", 895,
             0.45, "Soy wax", "NLDUTCAN12EIN"),
    _Product("Ceramic mug", "Stoneware, 350 ml, speckled white", "MUG-STW-350-WHT", "6912.00", "PT",
             1250, 0.38, "Stoneware", "PTPORCER45AVE"),
    _Product("Linen tea towel", "Natural flax, 50x70 cm", "TWL-LIN-NAT", "6302.99", "LT", 1495,
             0.12, "100% Linen", "LTLINWEA8KAU"),
    _Product("Merino wool scarf", "Charcoal, 180x30 cm", "SCF-MER-CHR", "6117.10", "IT", 3900,
             0.18, "100% Merino wool", "ITLANBIE21BIE"),
    _Product("Organic cotton T-shirt", "Unisex crew neck", "TSH-ORG", "6109.10", "PT", 1995, 0.2,
             "100% Organic cotton", "PTMALTEX310POR", (("size", "M"), ("color", "navy"))),
    _Product("Leather card wallet", "Cognac, 6 slots", "WAL-LTH-COG", "4202.31", "ES", 4500, 0.08,
             "Full-grain leather", "ESPIEUBR7UBR"),
    _Product("Insulated water bottle", "Stainless steel, 750 ml", "BTL-SS-750", "7323.93", "CN",
             2490, 0.42, "Stainless steel", "CNYONMET88NIN"),
    _Product("Bamboo cutting board", "38x28 cm, with juice groove", "BRD-BMB-38", "4419.11", "VN",
             2995, 1.1, "Bamboo", "VNBAMHOM12HAN"),
    _Product("Dotted notebook A5", "Hardcover, 192 pages", "NTB-A5-DOT", "4820.10", "DE", 1450,
             0.32, "Paper", "DEPAPWER4NUR"),
    _Product("Wireless earbuds", "Bluetooth 5.3, with charging case", "AUD-EB-BT53", "8518.30",
             "CN", 7900, 0.11, "Plastic, electronics", "CNSHEAUD1200SHE"),
    _Product("Cork yoga mat", "183x61 cm, 4 mm", "YGM-CRK-4", "9506.91", "PT", 5495, 1.6,
             "Cork, natural rubber", "PTCORSPO77SAN"),
    _Product("Olive oil soap bar", "Lavender, 120 g", "SOP-OLV-LAV", "3401.11", "FR", 650, 0.13,
             "Olive oil soap", "FRSAVMAR3MAR"),
    _Product("Wooden toy train", "3-piece set, beech", "TOY-TRN-BCH", "9503.00", "DE", 2750, 0.55,
             "Beech wood", "DEHOLSPI15SEI"),
    _Product("Running socks", "3-pack", "SCK-RUN-3P", "6115.96", "TR", 1500, 0.14,
             "80% Polyamide, 20% Elastane", "TRCORTEK21IST", (("size", "39-42"),)),
    _Product("Espresso cups", "Set of 2, porcelain", "CUP-ESP-2", "6911.10", "IT", 1800, 0.3,
             "Porcelain", "ITPORVEN9VEN"),
    _Product("Canvas tote bag", "Natural, 38x42 cm", "BAG-CNV-NAT", "4202.92", "IN", 1250, 0.16,
             "100% Cotton canvas", "INCOTBAG45TIR"),
)


def _iso(moment: datetime) -> str:
    """ISO 8601 in UTC with milliseconds and `Z`, like the spec's request examples."""
    utc = moment.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def _money(cents: int) -> float:
    return round(cents / 100, 2)


def _price(cents: int, currency: str) -> dict[str, Any]:
    return {"value": _money(cents), "currency": currency}


def _local_cents(eur_cents: int, currency: str) -> int:
    """Catalogue price in the shop's price list for that currency (…,49 / …,99 endings)."""
    if currency == "EUR":
        return eur_cents
    rate = {"GBP": 0.86, "USD": 1.09}[currency]
    return max(99, round(eur_cents * rate / 50) * 50 - 1)


@cache  # a handful of products, called for every item line
def _ean13(number: int) -> str:
    body = f"87{number:010d}"[:12]  # 87: GS1 prefix of the Netherlands, where the shop sits
    total = sum(int(d) * (3 if i % 2 else 1) for i, d in enumerate(body))
    return body + str((10 - total % 10) % 10)


@cache  # names come from small pools
def _ascii_slug(text: str) -> str:
    folded = unicodedata.normalize("NFKD", text.replace("ß", "ss"))
    return "".join(ch for ch in folded if ch.isascii() and ch.isalnum()).lower()


def _digits(rng: random.Random, count: int) -> str:
    return f"{rng.randrange(10**count):0{count}d}"


def _postcode(rng: random.Random, country: _Country, city: _City) -> str:
    if country.code == "GB":
        outward = rng.choice(city.postcodes)
        letters = rng.choice(_GB_INWARD_LETTERS) + rng.choice(_GB_INWARD_LETTERS)
        return f"{outward} {rng.randint(1, 9)}{letters}"
    low, high, step = city.postcodes
    assert isinstance(low, int) and isinstance(high, int) and isinstance(step, int)
    number = low + step * rng.randint(0, (high - low) // step)
    if country.code == "NL":
        while True:  # SA, SD and SS are never issued
            letters = rng.choice(_NL_LETTERS) + rng.choice(_NL_LETTERS)
            if letters not in ("SA", "SD", "SS"):
                return f"{number:04d} {letters}"
    return f"{number:0{country.postcode_digits}d}"


def _phone(rng: random.Random, country: _Country, city: _City) -> str:
    if country.code == "US":
        # 555-0100…0199 is reserved for fiction in the North American Numbering Plan.
        return f"+1{city.area_code}5550{rng.randint(100, 199)}"
    return country.phone_prefix + _digits(rng, country.phone_digits)


def _house_number(rng: random.Random, country: _Country, avoid: str | None = None) -> str:
    while True:
        number = str(rng.randint(100, 9999) if country.code == "US" else rng.randint(1, 220))
        if country.house_suffixes and rng.random() < 0.12:
            number += rng.choice(country.house_suffixes)
        if number != avoid:
            return number


def _person(rng: random.Random, country: _Country) -> tuple[str, str]:
    first, last = rng.choice(country.first_names), rng.choice(country.last_names)
    email = (f"{_ascii_slug(first)}.{_ascii_slug(last)}{rng.randint(1, 99)}"
             f"@{rng.choice(country.email_domains)}")
    return f"{first} {last}", email


def _address(rng: random.Random, country: _Country, name: str, email: str | None,
             phone: str | None, company: str | None) -> tuple[dict[str, Any], _City]:
    city = rng.choice(country.cities)
    address: dict[str, Any] = {"name": name}
    if company:
        address["company_name"] = company
    address["address_line_1"] = rng.choice(country.streets)
    address["house_number"] = _house_number(rng, country)
    if rng.random() < 0.15:
        address["address_line_2"] = rng.choice(country.address_line_2)
    address["postal_code"] = _postcode(rng, country, city)
    address["city"] = city.name
    if city.region:
        address["state_province_code"] = city.region
    address["country_code"] = country.code
    if email:
        address["email"] = email
    if phone:
        address["phone_number"] = phone
    return address, city


def _shop_vat(integration: int) -> str:
    """Stable Dutch VAT number of the shop behind an integration (fake, well-formed)."""
    return f"NL{(integration * 7_919_333 + 104_729) % 1_000_000_000:09d}B01"


def _build_order(rng: random.Random, seed: int, index: int, integration: int,
                 created: datetime) -> dict[str, Any]:
    country = rng.choices(COUNTRIES, weights=_COUNTRY_WEIGHTS)[0]
    currency = country.currency
    name, email = _person(rng, country)
    # A business customer's firm carries their surname ("De Vries B.V.", "Schmidt GmbH").
    surname = name.split(" ", 1)[1]
    company = (f"{surname[0].upper()}{surname[1:]} {country.company_suffix}"
               if rng.random() < 0.1 else None)
    phone_city = rng.choice(country.cities)
    phone = _phone(rng, country, phone_city)
    shipping, city = _address(rng, country, name, email if rng.random() < 0.5 else None,
                              phone if rng.random() < 0.7 else None, company)

    # Items: 1–4 distinct products, mostly single units.
    customs = country.customs
    line_count = rng.choices((1, 2, 3, 4), weights=(45, 30, 15, 10))[0]
    lines = rng.sample(range(len(_CATALOGUE)), line_count)
    items: list[dict[str, Any]] = []
    subtotal = 0
    weight_kg = 0.25  # the box
    with_hs = customs or rng.random() < 0.3
    for line, catalogue_index in enumerate(lines, start=1):
        product = _CATALOGUE[catalogue_index]
        quantity = rng.choices((1, 2, 3), weights=(75, 20, 5))[0]
        unit = _local_cents(product.eur_cents, currency)
        item: dict[str, Any] = {
            "item_id": f"{index + 1}{line:02d}",
            "product_id": str(8_100_000 + catalogue_index),
            "variant_id": str(42_000_000 + catalogue_index * 10 + (1 if product.options else 0)),
            "name": product.name,
            "description": product.description,
            "quantity": quantity,
            "sku": product.sku,
            "ean": _ean13(4_100_000 + catalogue_index),
            "unit_price": _price(unit, currency),
            "total_price": _price(unit * quantity, currency),
            "measurement": {"weight": {"value": product.weight_kg, "unit": "kg"}},
        }
        if product.options:
            item["properties"] = dict(product.options)
        if rng.random() < 0.2:
            item["image_url"] = f"https://images.example.com/products/{product.sku.lower()}.jpg"
        if with_hs:
            item["hs_code"] = product.hs_code
            item["country_of_origin"] = product.origin
        if customs:
            item["material_content"] = product.material
            item["intended_use"] = "Personal use" if company is None else "Commercial use"
        if country.code == "US":
            item["mid_code"] = product.mid_code
        items.append(item)
        subtotal += unit * quantity
        weight_kg += product.weight_kg * quantity

    free_shipping = not customs and subtotal >= 7500
    shipping_cents = 0 if free_shipping else country.shipping_cents
    discount = subtotal // 10 if rng.random() < 0.1 else 0
    total = subtotal + shipping_cents - discount  # what the customer paid

    status_index = rng.randint(0, 1)
    details: dict[str, Any] = {
        "integration": {"id": integration},
        "status": {"code": _ORDER_STATUSES[status_index][0],
                   "message": _ORDER_STATUSES[status_index][1]},
        "order_created_at": _iso(created),
    }
    if rng.random() < 0.7:  # shops that send it on creation; the rest rely on order_created_at
        details["order_updated_at"] = _iso(created + timedelta(seconds=rng.randint(0, 90)))
    details["order_items"] = items
    if rng.random() < 0.1:
        details["notes"] = rng.choice(_NOTES)
    if rng.random() < 0.2:
        details["tags"] = sorted(set(rng.sample(_TAGS, rng.randint(1, 2))))

    pay_code, pay_message, _ = rng.choices(_PAYMENT_STATUSES,
                                           weights=[w for *_, w in _PAYMENT_STATUSES])[0]
    payment: dict[str, Any] = {
        "total_price": _price(total, currency),
        "subtotal_price": _price(subtotal, currency),
        "estimated_shipping_price": _price(shipping_cents, currency),
        "status": {"code": pay_code, "message": pay_message},
    }
    if discount:
        payment["discount_granted"] = {"value": f"{discount / 100:.2f}", "currency": currency}
    if customs:
        payment["invoice_date"] = created.date().isoformat()

    order: dict[str, Any] = {
        "order_id": f"S{seed}-{index + 1:07d}",
        "order_number": f"ORD-{seed}-{index + 1:06d}",
        "order_details": details,
        "payment_details": payment,
    }
    if customs:
        order["customs_details"] = _customs(rng, seed, index, integration, country, company)
    order["customer_details"] = {"name": name, "email": email, "phone_number": phone}
    billing_roll = rng.random()
    if billing_roll < 0.8:
        order["billing_address"] = {**shipping, "email": email}
    elif billing_roll < 0.9:  # a gift: someone else pays
        payer, payer_email = _person(rng, country)
        order["billing_address"], _ = _address(rng, country, payer, payer_email, None, None)
        order["customer_details"] = {"name": payer, "email": payer_email}
    order["shipping_address"] = shipping

    point = None
    if country.service_point and rng.random() < 0.15:
        point = _service_point(rng, country, city)
    delivery = (f"{country.service_point} service point" if point
                else rng.choice(country.carriers))
    shipping_details: dict[str, Any] = {
        "is_local_pickup": False,
        "delivery_indicator": delivery,
        "measurement": {"weight": {"value": round(weight_kg, 3), "unit": "kg"}},
    }
    if rng.random() < 0.3:
        length, width, height = rng.choice(((25, 20, 10), (35, 25, 15), (40, 30, 20)))
        shipping_details["measurement"]["dimension"] = {
            "length": length, "width": width, "height": height, "unit": "cm"}
    order["shipping_details"] = shipping_details
    if point:
        order["service_point_details"] = point
    return order


def _customs(rng: random.Random, seed: int, index: int, integration: int, country: _Country,
             company: str | None) -> dict[str, Any]:
    shipment_type = rng.choices(("commercial_goods", "gift", "commercial_sample"),
                                weights=(85, 10, 5))[0]
    if company:
        export_type = "commercial_b2b"
    else:
        export_type = "private" if shipment_type == "gift" else "commercial_b2c"
    vat = _shop_vat(integration)
    taxes: dict[str, Any] = {
        "sender": [{"name": "VAT", "country_code": "NL", "value": vat},
                   {"name": "EORI", "country_code": "NL", "value": vat[:11]}],
    }
    if company and country.code == "GB":
        taxes["receiver"] = [{"name": "VAT", "country_code": "GB", "value": f"GB{_digits(rng, 9)}"}]
    elif company:
        taxes["receiver"] = [{"name": "EIN", "country_code": "US",
                              "value": f"{_digits(rng, 2)}-{_digits(rng, 7)}"}]
    return {
        "commercial_invoice_number": f"INV-{seed}-{index + 1:07d}",
        "shipment_type": shipment_type,
        "export_type": export_type,
        "tax_numbers": taxes,
    }


def _service_point(rng: random.Random, country: _Country, city: _City) -> dict[str, Any]:
    """Either identifier form of the spec's `service_point_details` (never both: it is a oneOf)."""
    lat = f"{city.lat + rng.uniform(-0.03, 0.03):.6f}"
    lon = f"{city.lon + rng.uniform(-0.03, 0.03):.6f}"
    carrier = country.service_point or ""
    if country.code == "DE":
        return {"carrier_service_point_id": str(rng.randint(100, 250)), "type": "packstation",
                "post_number": _digits(rng, 9), "latitude": lat, "longitude": lon,
                "extra_data": {"partner_name": carrier}}
    if country.code == "FR":
        return {"carrier_service_point_id": f"{rng.randint(1, 99_999):06d}", "latitude": lat,
                "longitude": lon, "extra_data": {"partner_name": carrier}}
    return {"id": str(rng.randint(10_000_000, 19_999_999)), "latitude": lat, "longitude": lon,
            "extra_data": {"partner_name": carrier}}
