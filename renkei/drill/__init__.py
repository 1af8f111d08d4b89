"""`renkei drill`: the seed report's yearly drill, run by the system itself.

    rows.py        the 34 checks of ../shared/ACCEPTANCE.md and the report's times
    evidence.py    checks, evidence, and the ○ / × / 未検証 verdicts
    federation.py  a local federation of real processes (hub, boxes, fault proxies,
                   printers) and the edits made at the boxes
    client.py      the counter as a browser without JavaScript drives it
    pdfcheck.py    produced documents: 発行番号, 「見本」, the embedded variant glyphs
    scan.py        personal data at rest in a box's files
    scenario.py    the three failure cases, injected, and every row checked
    against.py     `--against URL`: a real federation, in drill mode only
    report.py      text, JSON and HTML (inline SVG) reports

Errors: `FederationError` (the local federation could not be run), `NotDrillMode`
(`--against` refused: the target is not in drill mode, or produced a live document).
A row that fails is not an error: it is a × in the report.
"""
