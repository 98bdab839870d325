"""The committed retail sample (demo/data), and the two product families the demo shifts between."""

from __future__ import annotations

import csv
import re
from pathlib import Path

DATA_DIR = Path(__file__).resolve().parent / "data"
CANDLES = re.compile(r"CANDLE|T-LIGHT|LANTERN")
BAKING = re.compile(r"CAKE CASES|CAKE ?STAND|CAKE TINS?|BAKING")


def load_items(path: Path = DATA_DIR / "items.csv") -> dict[str, str]:
    with path.open(newline="") as f:
        return {row["item_id"]: row["text"] for row in csv.DictReader(f)}


def family(items: dict[str, str], pattern: re.Pattern[str]) -> list[str]:
    """Ids of the items of one family only, in file order."""
    others = [p for p in (CANDLES, BAKING) if p is not pattern]
    return [
        item_id
        for item_id, text in items.items()
        if pattern.search(text) and not any(o.search(text) for o in others)
    ]


def unrelated(items: dict[str, str]) -> list[str]:
    """Ids of items in neither family, in file order."""
    return [i for i, text in items.items() if not (CANDLES.search(text) or BAKING.search(text))]
