"""The command-line options every benchmark on transactions shares: the data and its columns,
the encoder whose cached embeddings it reads, and where results go."""

from __future__ import annotations

import argparse
from dataclasses import fields
from pathlib import Path

from .data import Columns

ROOT = Path(__file__).resolve().parent.parent.parent
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "online_retail_ii_2009_2010.parquet"
RESULTS = ROOT / "bench" / "results"


def add_data_options(parser: argparse.ArgumentParser) -> None:
    defaults = Columns()
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    for field in fields(Columns):
        parser.add_argument(f"--{field.name}-col", default=getattr(defaults, field.name))
    parser.add_argument("--repository", type=Path, default=ROOT / "model_repository")
    parser.add_argument("--cache-dir", type=Path, default=ROOT / ".cache" / "embeddings")
    parser.add_argument("--out", type=Path, default=RESULTS)


def columns_from(args: argparse.Namespace) -> Columns:
    return Columns(**{field.name: getattr(args, f"{field.name}_col") for field in fields(Columns)})
