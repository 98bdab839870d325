"""Derive the small committed sample in demo/data/ from the UCI Online Retail II transactions.

A fresh clone has no ../shared/data, yet the demo and tests need real items and real purchase
histories; this keeps a few hundred of each, chosen deterministically, so rerunning it reproduces
the committed files byte for byte.

    python bench/make_sample.py --data ../shared/data/online_retail_ii_2009_2010.parquet \
        --out demo/data
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import pyarrow.parquet as pq

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATA = REPO_ROOT.parent / "shared" / "data" / "online_retail_ii_2009_2010.parquet"
DEFAULT_OUT = REPO_ROOT / "demo" / "data"

SEED = 20091201
TOP_ITEMS = 400
FAMILY_ITEMS = 40
CUSTOMERS = 20
SHIFTERS_PER_DIRECTION = 3
MIN_INVOICES = 5
# Enough events to show a trajectory, few enough to keep the committed files small.
MIN_EVENTS, MAX_EVENTS = 20, 80

# Real products have five-digit codes with an optional variant letter; POST, M, ADJUST, ... are
# postage, manual adjustments and fees.
PRODUCT_CODE = re.compile(r"\d{5}[A-Za-z]*")
# Two product families the demo uses to show a customer's interest moving from one to the other.
FAMILIES = {
    "candles_and_lanterns": re.compile(r"CANDLE|T-LIGHT|LANTERN|NIGHT ?LIGHT"),
    "baking_and_kitchen": re.compile(
        r"\bBAKING\b|CAKE CASES|CAKE TINS?\b|CAKE ?STAND|CUTLERY|MEASURING|APRON|OVEN GLOVE"
        r"|KITCHEN SCALES|RECIPE BOX|BISCUIT TIN|TEA TOWEL|JELLY MOULD|ROLLING PIN|PANTRY"
    ),
}


@dataclass(frozen=True, order=True)
class Purchase:
    """One product line of one invoice, quantities of repeated lines summed."""

    time: str
    invoice: str
    item_id: str
    customer_id: int
    quantity: int


def load_purchases(data: Path) -> tuple[list[Purchase], dict[str, str]]:
    """Completed product purchases by known customers, and one clean title per item.

    Drops rows without a customer, cancellations (invoice `C...`), returns (quantity <= 0) and
    non-product codes. An item's title is its most frequent cleaned description.
    """
    table = pq.read_table(
        data,
        columns=["Invoice", "StockCode", "Description", "Quantity", "InvoiceDate", "Customer ID"],
    ).to_pydict()
    quantities: Counter[tuple[str, str, str, int]] = Counter()
    descriptions: defaultdict[str, Counter[str]] = defaultdict(Counter)
    for invoice, code, description, quantity, when, customer in zip(
        table["Invoice"],
        table["StockCode"],
        table["Description"],
        table["Quantity"],
        table["InvoiceDate"],
        table["Customer ID"],
        strict=True,
    ):
        if customer is None or invoice.startswith("C") or quantity <= 0:
            continue
        if not PRODUCT_CODE.fullmatch(code):
            continue
        quantities[(when, invoice, code, customer)] += quantity
        title = clean_title(description)
        if title:
            descriptions[code][title] += 1
    titles = {
        code: min(counts, key=lambda t: (-counts[t], t)) for code, counts in descriptions.items()
    }
    purchases = sorted(
        Purchase(iso_utc(when), invoice, code, customer, quantity)
        for (when, invoice, code, customer), quantity in quantities.items()
        if code in titles
    )
    return purchases, titles


def clean_title(description: str | None) -> str:
    """Collapse whitespace; the literal 'nan' (a spreadsheet artefact) means no title."""
    title = " ".join((description or "").split())
    return "" if title.lower() == "nan" else title


def iso_utc(when: str) -> str:
    """`YYYY-MM-DD HH:MM:SS` (the retailer's clock, no zone given) as ISO-8601 UTC."""
    return when.replace(" ", "T") + "Z"


def family_of(title: str) -> str | None:
    return next((name for name, pattern in FAMILIES.items() if pattern.search(title)), None)


def family_shift(
    history: Sequence[Purchase], titles: dict[str, str], source: str, target: str
) -> float:
    """How clearly a history moves from family `source` (first half) to `target` (second half).

    Positive only when `source` leads `target` in the earlier invoices and trails it in the
    later ones; the smaller of the two margins, so both halves must agree.
    """
    invoices = sorted({(p.time, p.invoice) for p in history})
    middle = invoices[len(invoices) // 2]
    halves = (
        [p for p in history if (p.time, p.invoice) < middle],
        [p for p in history if (p.time, p.invoice) >= middle],
    )
    margins = []
    for half, (lead, trail) in zip(halves, ((source, target), (target, source)), strict=True):
        families = Counter(family_of(titles[p.item_id]) for p in half)
        margins.append((families[lead] - families[trail]) / max(len(half), 1))
    return min(margins)


def select_customers(histories: dict[int, list[Purchase]], titles: dict[str, str]) -> list[int]:
    """The clearest interest shifts in each direction between the two families, then a seeded
    random sample of other regular customers, so the sample is neither all cherry-picked nor
    all noise."""
    eligible = sorted(
        customer
        for customer, history in histories.items()
        if len({p.invoice for p in history}) >= MIN_INVOICES
        and MIN_EVENTS <= len(history) <= MAX_EVENTS
    )
    chosen: list[int] = []
    names = list(FAMILIES)
    for source, target in ((names[0], names[1]), (names[1], names[0])):
        scored = sorted(
            (-family_shift(histories[c], titles, source, target), c)
            for c in eligible
            if c not in chosen
        )
        chosen += [c for score, c in scored[:SHIFTERS_PER_DIRECTION] if score < 0]
    rest = [c for c in eligible if c not in chosen]
    chosen += random.Random(SEED).sample(rest, CUSTOMERS - len(chosen))
    return sorted(chosen)


def select_items(
    purchases: Sequence[Purchase], titles: dict[str, str], customers: Iterable[int]
) -> list[str]:
    """The most purchased items, the most purchased of each family, and every item the chosen
    customers bought, so every history event resolves to an item text."""
    popularity = Counter(p.item_id for p in purchases)
    ranked = sorted(popularity, key=lambda code: (-popularity[code], code))
    items = set(ranked[:TOP_ITEMS])
    for name in FAMILIES:
        members = [code for code in ranked if family_of(titles[code]) == name]
        items.update(members[:FAMILY_ITEMS])
    wanted = set(customers)
    items.update(p.item_id for p in purchases if p.customer_id in wanted)
    return sorted(items)


def write_items(path: Path, items: Sequence[str], titles: dict[str, str]) -> None:
    with path.open("w", newline="") as out:
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(["item_id", "text"])
        writer.writerows((code, titles[code]) for code in items)


def write_histories(
    path: Path, histories: dict[int, list[Purchase]], customers: Sequence[int]
) -> None:
    with path.open("w") as out:
        for customer in customers:
            events = [
                {"item_id": p.item_id, "time": p.time, "quantity": p.quantity, "invoice": p.invoice}
                for p in histories[customer]
            ]
            out.write(json.dumps({"customer_id": str(customer), "events": events}) + "\n")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    if not args.data.is_file():
        parser.error(f"no such file: {args.data}")

    purchases, titles = load_purchases(args.data)
    histories: defaultdict[int, list[Purchase]] = defaultdict(list)
    for purchase in purchases:
        histories[purchase.customer_id].append(purchase)
    customers = select_customers(histories, titles)
    items = select_items(purchases, titles, customers)

    args.out.mkdir(parents=True, exist_ok=True)
    write_items(args.out / "items.csv", items, titles)
    write_histories(args.out / "histories.jsonl", histories, customers)
    events = sum(len(histories[c]) for c in customers)
    print(f"{len(items)} items, {len(customers)} customers, {events} events -> {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
