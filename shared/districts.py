"""The towns' districts (大字) with kana and postal codes, from Japan Post's public data.

`shared/data/districts.tsv` has the columns town, postal_code, district, district_kana;
the town column is county + name as Japan Post writes it (北蒲原郡聖籠町). A district can
appear on several rows when it has several postal codes (large offices get their own).
"""

from __future__ import annotations

import csv
import io
from importlib import resources
from pathlib import Path

from shared.model import District

# Japan Post writes the town as county + name; the model keys towns by their code.
TOWN_CODES: dict[str, str] = {
    "北蒲原郡聖籠町": "15307",
    "三島郡出雲崎町": "15405",
    "岩船郡関川村": "15581",
}

_HEADER = ["town", "postal_code", "district", "district_kana"]


def load_districts(path: Path | None = None) -> list[District]:
    """Every row of the district table, in file order.

    Raises ValueError when the table is malformed or names a town not in `TOWN_CODES`.
    """
    if path is None:
        text = resources.files("shared").joinpath("data/districts.tsv").read_text("utf-8")
    else:
        text = path.read_text("utf-8")
    rows = list(csv.reader(io.StringIO(text, newline=""), delimiter="\t"))
    if not rows or rows[0] != _HEADER:
        raise ValueError(f"districts.tsv: header must be {_HEADER}")
    districts: list[District] = []
    for number, row in enumerate(rows[1:], start=2):
        if not row:
            continue
        if len(row) != len(_HEADER):
            raise ValueError(f"districts.tsv:{number}: expected {len(_HEADER)} fields")
        town, postal_code, name, kana = row
        if town not in TOWN_CODES:
            raise ValueError(f"districts.tsv:{number}: unknown town {town!r}")
        districts.append(
            District(town_code=TOWN_CODES[town], name=name, kana=kana, postal_code=postal_code)
        )
    return districts


def districts_of(town_code: str, districts: list[District] | None = None) -> list[District]:
    """The districts of one town."""
    every = load_districts() if districts is None else districts
    return [d for d in every if d.town_code == town_code]
