"""Transactions cleaned into (customer, invoice, item, time) purchases with one title per item.

Column names are options so that any table of the same shape (one row per invoice line) works.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

MISSING_TITLES = frozenset({"", "nan"})


@dataclass(frozen=True)
class Columns:
    customer: str = "Customer ID"
    item: str = "StockCode"
    text: str = "Description"
    time: str = "InvoiceDate"
    invoice: str = "Invoice"
    quantity: str = "Quantity"


@dataclass(frozen=True)
class Transactions:
    """One row per distinct item of an invoice, sorted by (time, invoice)."""

    customers: np.ndarray  # str, per row
    invoices: np.ndarray  # str, per row
    items: np.ndarray  # int index into item_ids, per row
    times: np.ndarray  # float64 seconds since the epoch, per row
    item_ids: list[str]
    item_texts: list[str]

    @property
    def n_items(self) -> int:
        return len(self.item_ids)


def load_transactions(path: Path, columns: Columns) -> Transactions:
    table = pq.read_table(
        path,
        columns=[
            columns.customer,
            columns.item,
            columns.text,
            columns.time,
            columns.invoice,
            columns.quantity,
        ],
    )
    return clean(table, columns)


def _seconds(values: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """Seconds since the epoch from timestamps or from 'YYYY-MM-DD HH:MM:SS' text."""
    if pa.types.is_string(values.type) or pa.types.is_large_string(values.type):
        values = pc.strptime(values, format="%Y-%m-%d %H:%M:%S", unit="s")
    return pc.cast(values, pa.timestamp("s")).to_numpy().astype("int64").astype(np.float64)


def _strings(values: pa.ChunkedArray | pa.Array) -> np.ndarray:
    return np.asarray(pc.cast(values, pa.string()).to_pylist(), dtype=object)


def clean(table: pa.Table, columns: Columns) -> Transactions:
    """Drops rows without a customer, cancellations (invoice 'C...') and non-positive quantities.

    Repeated lines of one item in one invoice count once: a purchase is an (invoice, item) pair.
    Each item keeps its most frequent title, stripped; 'nan' titles do not count, and an item
    with no title at all falls back to its id so it still has a text to embed.
    """
    invoices = pc.cast(table[columns.invoice], pa.string())
    keep = pc.and_(
        pc.and_(
            pc.is_valid(table[columns.customer]),
            pc.invert(pc.fill_null(pc.starts_with(invoices, "C"), False)),
        ),
        pc.fill_null(pc.greater(table[columns.quantity], 0), False),
    )
    table = table.filter(keep)
    customers = _strings(table[columns.customer])
    invoice_ids = _strings(table[columns.invoice])
    raw_items = _strings(table[columns.item])
    titles = [
        "" if t is None or t.strip() in MISSING_TITLES else t.strip()
        for t in table[columns.text].to_pylist()
    ]
    times = _seconds(table[columns.time])

    item_ids = sorted(set(raw_items))
    index = {item: i for i, item in enumerate(item_ids)}
    items = np.fromiter((index[i] for i in raw_items), dtype=np.int64, count=len(raw_items))
    title_counts: list[Counter[str]] = [Counter() for _ in item_ids]
    for item, title in zip(items, titles, strict=True):
        if title:
            title_counts[item][title] += 1
    item_texts = [
        counts.most_common(1)[0][0] if counts else item_id
        for item_id, counts in zip(item_ids, title_counts, strict=True)
    ]

    seen: set[tuple[str, int]] = set()
    unique = []
    for row in np.lexsort((items, invoice_ids, times)):
        pair = (invoice_ids[row], items[row])
        if pair not in seen:
            seen.add(pair)
            unique.append(row)
    return Transactions(
        customers=customers[unique],
        invoices=invoice_ids[unique],
        items=items[unique],
        times=times[unique],
        item_ids=item_ids,
        item_texts=item_texts,
    )
