"""Where the operator's intake queue lists each application (cloud/screens.py
/operator/intake).

One application reaches the hub more than once: the box hands it over alone at the next
contact (a hand-over export, manifest "handoff": "intake"; edge/emergency_export.py
`intake_handoff`), and the export that ends the emergency carries every application
again. The queue lists each application once, matched by its identity — the town, the
box that signed the export (its enrolled key, whatever name the export gives it) and the
受付番号, which that box never reuses — not by what the row displays. Its home is the
end's export (the file the town processes), the first one received if several carry it;
an application no end's export carries yet stays with its hand-over. Every other export
that carries it points to its home instead of listing it again.
"""

from __future__ import annotations

from typing import Any

Identity = tuple[str, str, str]


def anchor(town: str, name: str) -> str:
    """The id of an export's section on the page (what links point to)."""
    return f"export-{town}-{name}"


def identity(entry: dict[str, Any], row: dict[str, Any]) -> Identity:
    return (str(entry["town"]), str(entry["box_key"]), str(row["number"]))


def _rank(entry: dict[str, Any]) -> tuple[bool, float, str]:
    return (bool(entry["handoff"]), float(entry["received_at"]), str(entry["name"]))


def place_applications(exports: list[dict[str, Any]]) -> None:
    """Split each opened export's `applications` into the rows listed under it and
    `listed_elsewhere` ({"number", "home", "home_town", "anchor", "home_is_end"}) for
    rows whose home is another export. Entries need "town", "name", "received_at",
    "handoff", "box_key" and "applications" (None when the export did not open)."""
    homes: dict[Identity, dict[str, Any]] = {}
    placed: set[Identity] = set()
    for entry in sorted(exports, key=_rank):
        for row in entry["applications"] or []:
            homes.setdefault(identity(entry, row), entry)
    for entry in exports:
        entry["listed_elsewhere"] = []
        if entry["applications"] is None:
            continue
        listed = []
        for row in entry["applications"]:
            key = identity(entry, row)
            home = homes[key]
            if home is entry:
                if key not in placed:  # a row repeated inside one file is one application
                    listed.append(row)
                    placed.add(key)
            else:
                entry["listed_elsewhere"].append(
                    {
                        "number": row["number"],
                        "home": home["name"],
                        "anchor": anchor(home["town"], home["name"]),
                        "home_is_end": not home["handoff"],
                    }
                )
        entry["applications"] = listed
