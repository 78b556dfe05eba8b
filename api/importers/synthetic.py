"""A seeded, reproducible synthetic CRM data set: customers with personal data, invoices, returns and
support tickets, and a ground truth of who churned.

`generate(seed, customers, interactions)` streams records: each customer (`SyntheticCustomer`, with PII
from Faker in the customer's country's locale) followed by that customer's interactions in time order
(`InvoiceRecord` purchases and returns, the same shape the Online Retail II reader yields, and
`TicketRecord` support tickets with free text). Customers come in order of sign-up. Exactly `customers`
customers and exactly `interactions` interactions are produced, and the same arguments always give the
same records (with the same Faker version: its word lists are data).

How the data is shaped, so that RFM features and churn models have something to find:
- frequency: each customer's purchase rate is lognormal (a few heavy buyers, a long tail of occasional
  ones), and interactions are spread over the customer's active time as a Poisson process would (given
  the count, the times are uniform);
- monetary: basket size and quantities scale with a per-customer lognormal factor; product prices are
  lognormal and popularity is Zipf-like;
- returns: a per-customer propensity; a return (a "C" invoice) takes back part of an earlier purchase;
- churn: about a quarter of customers (more among infrequent ones) stop at a date at least 30 days after
  sign-up and at least 90 days before the end of the period, so churn is visible as a long silence;
  in their last 60 days they file more support tickets, mostly complaints. `SyntheticCustomer.churned`
  and `churned_at` are the ground truth for later evaluation: they are not CRM data and are not imported.

Memory is O(customers) (a few numbers each), never O(interactions): 1M interactions stream.
"""

from __future__ import annotations

import bisect
import itertools
import math
import random
import re
import unicodedata
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from api.importers.records import InvoiceRecord, Line, TicketRecord
from offchain.customer_data import CustomerCreate
from offchain.kinds import InteractionKind

if TYPE_CHECKING:
    from faker import Faker

PERIOD_START = datetime(2023, 1, 1, tzinfo=UTC)
PERIOD_END = datetime(2025, 1, 1, tzinfo=UTC)
CATALOGUE_SIZE = 400
CHURN_MIN_TENURE = timedelta(days=30)
CHURN_MIN_SILENCE = timedelta(days=90)
CHURN_WARNING = timedelta(days=60)  # the run-up to churning, with more (and angrier) tickets

# (ISO 3166-1 alpha-2, name as a shop would print it, Faker locale, share of customers)
COUNTRIES: tuple[tuple[str, str, str, float], ...] = (
    ("GB", "United Kingdom", "en_GB", 0.70),
    ("DE", "Germany", "de_DE", 0.05),
    ("FR", "France", "fr_FR", 0.05),
    ("IE", "Ireland", "en_IE", 0.04),
    ("NL", "Netherlands", "nl_NL", 0.03),
    ("BE", "Belgium", "nl_BE", 0.02),
    ("ES", "Spain", "es_ES", 0.02),
    ("IT", "Italy", "it_IT", 0.015),
    ("CH", "Switzerland", "de_CH", 0.01),
    ("PT", "Portugal", "pt_PT", 0.01),
    ("SE", "Sweden", "sv_SE", 0.01),
    ("US", "United States", "en_US", 0.01),
    ("AU", "Australia", "en_AU", 0.01),
    ("AT", "Austria", "de_AT", 0.005),
    ("DK", "Denmark", "da_DK", 0.005),
    ("NO", "Norway", "no_NO", 0.005),
    ("FI", "Finland", "fi_FI", 0.005),
    ("PL", "Poland", "pl_PL", 0.005),
)

_ADJECTIVES = (
    "VINTAGE", "RETRO", "HANGING", "GLASS", "WOODEN", "ENAMEL", "CERAMIC", "KNITTED", "PAPER", "METAL",
    "LARGE", "SMALL", "MINI", "JUMBO", "SET OF 3", "SET OF 6", "FELT", "GINGHAM", "POLKADOT", "STAR",
)  # fmt: skip
_COLOURS = ("WHITE", "PINK", "RED", "BLUE", "GREEN", "IVORY", "CREAM", "BLACK", "SILVER", "GOLD", "PASTEL")
_NOUNS = (
    "T-LIGHT HOLDER", "LANTERN", "HEART DECORATION", "CAKE STAND", "MUG", "TEA TOWEL", "LUNCH BAG",
    "DOORMAT", "PHOTO FRAME", "BUNTING", "CANDLE", "NAPKINS", "JAM JAR", "STORAGE TIN", "CLOCK",
    "CUSHION COVER", "HOT WATER BOTTLE", "PARASOL", "WRAP", "CHRISTMAS BAUBLE", "BIRD FEEDER", "TRAY",
)  # fmt: skip
_QUANTITIES = (1, 2, 3, 4, 6, 8, 12, 24)
_QUANTITY_WEIGHTS = (30, 18, 8, 10, 12, 4, 12, 6)

_TICKET_CATEGORIES = ("delivery", "damaged", "refund", "product", "account", "complaint")
_TICKET_WEIGHTS = (30, 15, 15, 25, 10, 5)
_TICKET_WEIGHTS_CHURNING = (30, 15, 20, 5, 5, 25)
_CHANNELS = ("email", "chat", "phone")
_WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_TEMPLATES: dict[str, tuple[tuple[str, str], ...]] = {
    "delivery": (
        (
            "Where is order {invoice}?",
            "Order {invoice} has not arrived yet. It was due {days} days ago and the tracking page has "
            "not changed since {weekday}. Can you tell me where it is?",
        ),
        (
            "Late delivery",
            "Hello, I am still waiting for the {product} I ordered ({invoice}). Could you check with the "
            "courier please? I need it by {weekday}.",
        ),
    ),
    "damaged": (
        (
            "Item arrived broken",
            "The {product} from order {invoice} arrived damaged: {damage}. I would like a replacement, "
            "or a refund if you have none left.",
        ),
    ),
    "refund": (
        (
            "Refund not received",
            "I sent back the {product} {days} days ago and the refund of {amount} has still not reached my "
            "account. Please check what happened.",
        ),
    ),
    "product": (
        (
            "Question about {product}",
            "Is the {product} also available in {colour}? I would like to order {quantity} of them for "
            "a {occasion}.",
        ),
        (
            "Wholesale prices",
            "Do you offer a discount if I order {quantity} or more of the {product}? It sold well in my "
            "shop.",
        ),
    ),
    "account": (
        (
            "Cannot log in",
            "I have not been able to log in since {weekday}; the password reset email never arrives. Can "
            "you help?",
        ),
    ),
    "complaint": (
        (
            "Very disappointed",
            "This is the {nth} time an order of mine has been late or wrong (latest: {invoice}). {mood} "
            "If it happens again I will take my business elsewhere.",
        ),
        (
            "Poor service",
            "Nobody answered my last two messages about {invoice}. {mood} I expected better after buying "
            "from you for so long.",
        ),
    ),
}
_DAMAGE = ("the glass was cracked", "one corner was dented", "it was wet", "two pieces were missing")
_OCCASIONS = ("wedding", "birthday party", "school fair", "Christmas market", "shop window")
_MOODS = (
    "I am really not happy.",
    "Frankly this is unacceptable.",
    "I am losing patience.",
    "Your service used to be good.",
)


@dataclass(frozen=True, slots=True)
class Product:
    stock_code: str
    description: str
    price: Decimal


@dataclass(frozen=True, slots=True)
class SyntheticCustomer:
    customer_id: str  # the source system's customer number: the import's key for this customer
    name: str
    email: str
    phone: str
    address: str
    country: str  # ISO 3166-1 alpha-2
    country_name: str
    signed_up: datetime
    churned: bool  # ground truth (not imported): the customer stopped at `churned_at`
    churned_at: datetime | None
    interactions: int  # how many of this customer's records follow in the stream

    def pii(self) -> CustomerCreate:
        return CustomerCreate(
            name=self.name,
            email=self.email,
            phone=self.phone,
            address=self.address,
            country=self.country,
            external_ref=self.customer_id,
        )


SyntheticRecord = SyntheticCustomer | InvoiceRecord | TicketRecord


@dataclass(frozen=True, slots=True)
class _Plan:
    """What pass one decides about a customer (small: one of these per customer stays in memory)."""

    signed_up: float  # unix seconds
    active_until: float  # churn time, or the end of the period
    churned: bool
    rate: float  # relative purchase frequency


def generate(
    seed: int,
    customers: int,
    interactions: int,
    *,
    start: datetime = PERIOD_START,
    end: datetime = PERIOD_END,
) -> Iterator[SyntheticRecord]:
    """Stream the data set: each customer, then that customer's interactions (see module docstring).

    With at least as many interactions as customers, every customer has at least one (a purchase
    first); with fewer, the most active customers have one each and the others none."""
    if customers < 0 or interactions < 0:
        raise ValueError("customers and interactions are counts (>= 0)")
    if start.tzinfo is None or end.tzinfo is None or end - start < CHURN_MIN_TENURE + CHURN_MIN_SILENCE:
        raise ValueError("the period needs time-zone-aware bounds at least 120 days apart")
    rng = random.Random(seed)
    plans = _plans(rng, customers, start.timestamp(), end.timestamp())
    counts = _apportion([p.rate * (p.active_until - p.signed_up) for p in plans], interactions)
    catalogue, popularity = _catalogue(rng)
    fakers = _Fakers(seed)
    country_weights = list(itertools.accumulate(c[3] for c in COUNTRIES))
    numbers = itertools.count(1)
    # pass two, in order of sign-up: customer ids follow it
    order = sorted(range(customers), key=lambda i: (plans[i].signed_up, i))
    for position, index in enumerate(order, 1):
        plan = plans[index]
        country = COUNTRIES[bisect.bisect(country_weights, rng.random() * country_weights[-1])]
        customer = _customer(fakers[country[2]], rng, f"S{seed}-{position:07d}", country, plan, counts[index])
        yield customer
        yield from _interactions(rng, customer, plan, counts[index], catalogue, popularity, numbers, seed)


def _plans(rng: random.Random, customers: int, start: float, end: float) -> list[_Plan]:
    plans = []
    span = end - start
    min_tenure = CHURN_MIN_TENURE.total_seconds()
    min_silence = CHURN_MIN_SILENCE.total_seconds()
    for _ in range(customers):
        rate = rng.lognormvariate(0.0, 1.0)
        # sign-ups over the first three quarters of the period, so every customer has some history
        signed_up = start + rng.random() * span * 0.75
        # infrequent buyers churn more often, as they do in retail
        churned = rng.random() < (0.35 if rate < 0.7 else 0.15)
        earliest, latest = signed_up + min_tenure, end - min_silence
        if churned and earliest < latest:
            active_until = earliest + rng.random() * (latest - earliest)
        else:
            churned, active_until = False, end
        plans.append(_Plan(signed_up, active_until, churned, rate))
    return plans


def _apportion(weights: list[float], total: int) -> list[int]:
    """`total` split in proportion to `weights` exactly (largest remainders), at least one each when
    there is enough to go round."""
    if not weights:
        return []
    floor = 1 if total >= len(weights) else 0
    rest = total - floor * len(weights)
    whole = sum(weights) or 1.0
    quotas = [rest * w / whole for w in weights]
    counts = [floor + int(q) for q in quotas]
    short = total - sum(counts)
    by_remainder = sorted(range(len(weights)), key=lambda i: (-(quotas[i] - int(quotas[i])), i))
    for i in by_remainder[:short]:
        counts[i] += 1
    return counts


def _catalogue(rng: random.Random) -> tuple[list[Product], list[float]]:
    products: list[Product] = []
    codes: set[str] = set()
    while len(products) < CATALOGUE_SIZE:
        code = f"{rng.randint(10000, 99999)}{rng.choice(('', '', '', 'A', 'B', 'C'))}"
        if code in codes:
            continue
        codes.add(code)
        description = f"{rng.choice(_ADJECTIVES)} {rng.choice(_COLOURS)} {rng.choice(_NOUNS)}"
        price = Decimal(str(max(0.19, round(rng.lognormvariate(math.log(2.5), 0.8), 2))))
        products.append(Product(code, description, price))
    # Zipf-like popularity: a few best sellers, a long tail
    popularity = list(itertools.accumulate(1 / (rank + 1) ** 0.9 for rank in range(CATALOGUE_SIZE)))
    return products, popularity


class _Fakers:
    """One Faker per locale, created on first use (creating all of them takes half a second), each seeded
    from the seed and the locale's place in COUNTRIES, so each locale's stream is fixed by the seed."""

    def __init__(self, seed: int) -> None:
        self.seed = seed
        self.fakers: dict[str, Faker] = {}

    def __getitem__(self, locale: str) -> Faker:
        faker = self.fakers.get(locale)
        if faker is None:
            # loaded here: every import command loads this module, only the synthetic one needs Faker
            from faker import Faker

            number = next(i for i, country in enumerate(COUNTRIES) if country[2] == locale)
            faker = self.fakers[locale] = Faker(locale)
            faker.seed_instance(self.seed * 1_000 + number)
        return faker


def _customer(
    faker: Faker,
    rng: random.Random,
    customer_id: str,
    country: tuple[str, str, str, float],
    plan: _Plan,
    interactions: int,
) -> SyntheticCustomer:
    first, last = faker.first_name(), faker.last_name()
    # a first name with an initial ("Klaus D.") would give "klausd..thanel": not an address
    local = re.sub(r"\.{2,}", ".", _ascii(f"{first}.{last}").lower().replace(" ", "")).strip(".")
    email = f"{local}{rng.randint(1, 99) if rng.random() < 0.4 else ''}@{faker.free_email_domain()}"
    return SyntheticCustomer(
        customer_id=customer_id,
        name=f"{first} {last}",
        email=email,
        phone=faker.phone_number(),
        address=faker.address().replace("\n", ", "),
        country=country[0],
        country_name=country[1],
        signed_up=_time(plan.signed_up),
        churned=plan.churned,
        churned_at=_time(plan.active_until) if plan.churned else None,
        interactions=interactions,
    )


def _interactions(
    rng: random.Random,
    customer: SyntheticCustomer,
    plan: _Plan,
    count: int,
    catalogue: list[Product],
    popularity: list[float],
    numbers: Iterator[int],
    seed: int,
) -> Iterator[InvoiceRecord | TicketRecord]:
    # per-customer habits
    basket = rng.lognormvariate(0.0, 0.7)  # quantity scale: the monetary spread
    lines_mean = 2 + rng.expovariate(1 / 6)
    returns = rng.betavariate(1.2, 14)
    tickets = rng.betavariate(1.3, 16)
    times = sorted(plan.signed_up + rng.random() * (plan.active_until - plan.signed_up) for _ in range(count))
    warning = plan.active_until - CHURN_WARNING.total_seconds()
    recent: deque[InvoiceRecord] = deque(maxlen=8)  # purchases a return or a ticket can be about
    complaints = 0
    for when in times:
        churning = plan.churned and when >= warning
        ticket_share = min(0.6, tickets * (4 if churning else 1))
        draw = rng.random()
        at = _time(when)
        if recent and draw < ticket_share:
            complaints += 1
            yield _ticket(rng, customer, at, recent, churning, complaints, next(numbers), seed)
        elif recent and draw < ticket_share + returns * (2 if churning else 1):
            yield _return(rng, customer, at, recent, next(numbers), seed)
        else:
            purchase = _purchase(
                rng, customer, at, catalogue, popularity, basket, lines_mean, next(numbers), seed
            )
            recent.append(purchase)
            yield purchase


def _purchase(
    rng: random.Random,
    customer: SyntheticCustomer,
    at: datetime,
    catalogue: list[Product],
    popularity: list[float],
    basket: float,
    lines_mean: float,
    number: int,
    seed: int,
) -> InvoiceRecord:
    size = min(60, 1 + int(rng.expovariate(1 / lines_mean)))
    picks = rng.choices(catalogue, cum_weights=popularity, k=size)
    lines = tuple(
        Line(
            p.stock_code,
            p.description,
            max(1, round(rng.choices(_QUANTITIES, _QUANTITY_WEIGHTS)[0] * basket)),
            p.price,
        )
        for p in picks
    )
    return _invoice(f"I{seed}-{number:08d}", customer, at, InteractionKind.PURCHASE, lines)


def _return(
    rng: random.Random,
    customer: SyntheticCustomer,
    at: datetime,
    recent: deque[InvoiceRecord],
    number: int,
    seed: int,
) -> InvoiceRecord:
    original = rng.choice(recent)
    taken = rng.sample(original.lines, k=min(len(original.lines), 1 + int(rng.expovariate(1.5))))
    lines = tuple(
        Line(line.stock_code, line.description, -rng.randint(1, line.quantity), line.price) for line in taken
    )
    # a return is a cancellation invoice, "C" + a number, as in the retail data
    return _invoice(f"CI{seed}-{number:08d}", customer, at, InteractionKind.RETURN, lines)


def _invoice(
    invoice: str, customer: SyntheticCustomer, at: datetime, kind: InteractionKind, lines: tuple[Line, ...]
) -> InvoiceRecord:
    return InvoiceRecord(
        invoice=invoice,
        customer_id=customer.customer_id,
        country=customer.country_name,
        occurred_at=at,
        kind=kind,
        lines=lines,
        total=sum((line.amount for line in lines), Decimal(0)),
    )


def _ticket(
    rng: random.Random,
    customer: SyntheticCustomer,
    at: datetime,
    recent: deque[InvoiceRecord],
    churning: bool,
    complaints: int,
    number: int,
    seed: int,
) -> TicketRecord:
    category = rng.choices(_TICKET_CATEGORIES, _TICKET_WEIGHTS_CHURNING if churning else _TICKET_WEIGHTS)[0]
    subject, text = rng.choice(_TEMPLATES[category])
    about = rng.choice(recent)
    line = rng.choice(about.lines)
    fields: dict[str, Any] = {
        "invoice": about.invoice,
        "product": line.description.lower(),
        "days": rng.randint(2, 21),
        "weekday": rng.choice(_WEEKDAYS),
        "damage": rng.choice(_DAMAGE),
        "amount": f"{abs(line.amount):.2f}",
        "colour": rng.choice(_COLOURS).lower(),
        "quantity": rng.choice((12, 24, 48, 100)),
        "occasion": rng.choice(_OCCASIONS),
        "nth": ("second", "third", "fourth")[min(2, max(0, complaints - 1))],
        "mood": rng.choice(_MOODS),
    }
    return TicketRecord(
        ticket=f"T{seed}-{number:08d}",
        customer_id=customer.customer_id,
        occurred_at=at,
        channel=rng.choice(_CHANNELS),
        category=category,
        subject=subject.format(**fields),
        text=text.format(**fields),
        invoice=about.invoice,
    )


def _time(unix: float) -> datetime:
    return datetime.fromtimestamp(int(unix), UTC)


def _ascii(text: str) -> str:
    """Names as an email address would carry them: "Zięcik" -> "Ziecik"."""
    folded = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return "".join(c for c in folded if c.isalnum() or c == ".")
