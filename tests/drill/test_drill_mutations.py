"""Each row can fail: the mechanism behind a row is broken on purpose and the drill shows
that row turn ×.

The breakage is injected into the spawned processes, never through a hook in production
code: a test-only `sitecustomize.py` on the PYTHONPATH of `renkei drill` reaches every
process it starts (the hub, the boxes and — through the boxes' environment — the towns'
workers), and monkeypatches one function in the process it is meant for, recognised by
its command line. Slow (one short drill per mutation): `pytest -m slow tests/drill`.
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest
from drill_run import rows_of, run_drill

from renkei.drill.evidence import FAIL, PASS

TOWN = "15307"

PRELUDE = """
import sys
_argv = sys.orig_argv
_role = ("worker" if "edge.worker" in _argv else "box" if "box" in _argv
         else "hub" if "hub" in _argv else "drill" if "drill" in _argv else "")
"""


@dataclass(frozen=True)
class Mutation:
    name: str
    cases: str  # the drill's --cases
    broken: tuple[int, ...]  # rows that must turn ×
    intact: tuple[int, ...]  # rows the breakage must leave ○ (the drill still ran)
    code: str
    extra: tuple[str, ...] = ()


# Mechanisms broken in more than one case (the same code, other rows).
NEEDS_SCRIPT = """
if _role == "box":
    import edge.app
    from starlette.responses import HTMLResponse
    _create = edge.app.create_app
    class NeedsScript:
        def __init__(self, app):
            self.app = app
        async def __call__(self, scope, receive, send):
            if (scope["type"] == "http" and scope["path"] == "/issue"
                    and not any(k == b"hx-request" for k, _ in scope["headers"])):
                page = "<p role='alert'>JavaScriptを有効にしてください。</p>"
                return await HTMLResponse(page, 400)(scope, receive, send)
            await self.app(scope, receive, send)
    edge.app.create_app = lambda config: NeedsScript(_create(config))
"""
VS_DROPPED = """
if _role == "worker":
    import re
    import printing.fonts as f
    _translate = f.FontRegistry.translate
    def translate(self, text, town_code):
        return re.sub("[\\U000e0100-\\U000e01ef]", "", _translate(self, text, town_code))
    f.FontRegistry.translate = translate
"""
PRINTERS_DEAD = """
if _role == "drill":
    import os, signal
    import renkei.drill.federation as f
    _start = f.LocalFederation._start_printers
    def start_printers(self):
        _start(self)
        for box in self.boxes.values():
            if box.printer is not None:
                os.killpg(box.printer.process.pid, signal.SIGKILL)
                box.printer.process.wait(10)
    f.LocalFederation._start_printers = start_printers
"""


MUTATIONS = [
    Mutation("hub-lost-the-import", "", (1,), (3,), """
if _role == "hub":
    import cloud.app
    cloud.app._town_summaries = lambda storage: []
"""),
    # Row 2's mechanism: the hub's backup is its sync log (hub.db) *and* the custody of
    # the towns' keys (custody.sealed) that makes it restorable. Here the import creates
    # the towns' key rings but the custody is saved without them — as if `renkei import`
    # lost its `custody.save` after the import (the file keeps what `open_or_create`
    # wrote). The history is all there and the boxes keep working (their clerks hold the
    # town keys sealed to them; the hub relays towns it cannot open), but the operator
    # can no longer decrypt the hub's backup. The import runs in the drill process, as
    # `renkei import` runs apart from the hub. (A hub process that kept its log blobs
    # in memory would not reach row 2: the imported history is in hub.db before the hub
    # starts, and at set-up no box has uploaded anything yet.)
    Mutation("hub-backup-keys-not-kept", "", (2,), (1, 3, 4), """
if _role == "drill":
    import cloud.custody as c
    _save = c.Custody.save
    def save(self, data_dir, passphrase):
        _save(c.Custody({}, self.writer), data_dir, passphrase)
    c.Custody.save = save
"""),
    Mutation("box-not-enrolled", "", (3,), (1, 2, 4), """
if _role == "box":
    import edge.identity_api
    edge.identity_api.read_enrolment = lambda *args, **kwargs: None
"""),
    Mutation("own-replica-not-pulled", "", (4,), (1, 2, 3), """
if _role == "box":
    import edge.replica as r
    _pull = r.BoxReplica._pull_town
    def pull(self, client, town, public, box_town):
        return False if town == box_town else _pull(self, client, town, public, box_town)
    r.BoxReplica._pull_town = pull
"""),
    Mutation("as-of-hidden", "", (5,), (4,), """
if _role == "worker":
    import edge.town
    edge.town.OpenTown.as_of_label = property(lambda self: "不明")
"""),
    Mutation("plaintext-written-by-worker", "2", (6,), (7,), """
if _role == "worker":
    import pathlib, edge.town as t
    _data = pathlib.Path(_argv[_argv.index("--data") + 1])
    _init = t.OpenTown.__init__
    def init(self, *args, **kwargs):
        _init(self, *args, **kwargs)
        names = [r.name for r, _ in self.registry.residents_with_households()]
        (_data / f"cache-{self.code}.txt").write_text("\\n".join(names))
    t.OpenTown.__init__ = init
"""),
    Mutation("activation-check-disabled", "3", (6, 27, 29), (30,), """
if _role == "box":
    import edge.app
    edge.app.Box.may_open = lambda self, town, login_id: True
"""),
    Mutation("login-needs-the-hub", "1", (9,), (4, 5), """
if _role == "box":
    import httpx, edge.app
    _check = edge.app.Box.check_credentials
    async def check(self, town, login_id, password):
        try:
            httpx.get(self.config.hub_url + "/api/health", timeout=3).raise_for_status()
        except httpx.HTTPError:
            return None
        return await _check(self, town, login_id, password)
    edge.app.Box.check_credentials = check
"""),
    Mutation("issuing-needs-javascript", "1", (10,), (9,), NEEDS_SCRIPT),
    Mutation("variation-selectors-dropped-on-paper", "1", (11,), (9, 12), VS_DROPPED),
    Mutation("counter-cannot-render", "2", (8, 21), (7, 19), """
if _role == "worker":
    import edge.counter as c
    def render(self, *args, **kwargs):
        raise c.CounterError("印刷の準備ができません。")
    c.Counter._render = render
"""),
    Mutation("slow-counter", "1", (16,), (9, 12), """
if _role == "worker":
    # edge.worker runs as __main__: patch what it calls, the counter in edge.counter
    import time, edge.counter as c
    _issue = c.Counter.issue
    def issue(self, *args, **kwargs):
        time.sleep(16)  # more than the report's 12 s for 聖籠町's 住民票 in case 1
        return _issue(self, *args, **kwargs)
    c.Counter.issue = issue
"""),
    Mutation("stale-partner-replica", "2", (19,), (7, 8), """
if _role == "worker":
    # a partner town opened on a host box serves an older replica than the hub's
    import edge.town
    _data = _argv[_argv.index("--data") + 1]
    _town = _argv[_argv.index("--town") + 1]
    if f"/boxes/{_town}/" not in _data:
        edge.town.OpenTown.as_of = property(
            lambda self: "2020-01-01T02:00:00+09:00", lambda self, value: None
        )
"""),
    Mutation("dead-host-printer", "2", (17,), (21,), PRINTERS_DEAD),
    # One renderer broken per document, in every case: its three rows turn ×, the other
    # documents' rows stay ○ (rows 12–15, 21–24 and 30–33).
    *(
        Mutation(f"{key}-cannot-render", "1,2,3", broken, intact, """
if _role == "worker":
    import edge.counter as c
    _render = c.Counter._render
    def render(self, decision, *args, **kwargs):
        if decision.request.document.value == "KEY":
            raise c.CounterError("印刷の準備ができません。")
        return _render(self, decision, *args, **kwargs)
    c.Counter._render = render
""".replace("KEY", key))
        for key, broken, intact in (
            ("juminhyo", (12, 21, 30), (13, 14, 22, 31)),
            ("nozei", (13, 22, 31), (12, 14, 21, 30)),
            ("shikaku_kakunin", (14, 23, 32), (12, 13, 21, 30)),
        )
    ),
    Mutation("list-cannot-render", "1,2,3", (15, 24, 33), (12, 13, 14, 21, 30), """
if _role == "worker":
    import printing.lists as l
    def render(*args, **kwargs):
        raise RuntimeError("一覧を作れません")
    l.render_resident_list = render
"""),
    # The same mechanisms as rows 10, 11, 16 and 17, checked in the other cases.
    Mutation("slow-counter-at-partners", "2,3", (25, 34), (19, 29), """
if _role == "worker":
    import time, edge.counter as c
    _issue = c.Counter.issue
    def issue(self, *args, **kwargs):
        time.sleep(24)  # more than the report's 14 and 15 s for 聖籠町's 住民票 at partners
        return _issue(self, *args, **kwargs)
    c.Counter.issue = issue
"""),
    Mutation("variation-selectors-dropped-at-partners", "2,3", (20, 28), (19, 29), VS_DROPPED),
    Mutation("issuing-needs-javascript-at-partner", "2", (18,), (19,), NEEDS_SCRIPT),
    Mutation("dead-host-printer-hub-down", "3", (26,), (29,), PRINTERS_DEAD),
]  # fmt: skip


@pytest.mark.slow
@pytest.mark.timeout(1500)
@pytest.mark.parametrize("mutation", MUTATIONS, ids=[m.name for m in MUTATIONS])
def test_breaking_the_mechanism_turns_its_row_red(mutation: Mutation, tmp_path: Path) -> None:
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(PRELUDE + textwrap.dedent(mutation.code))
    code, report, stderr = run_drill(
        tmp_path, "--towns", TOWN, "--cases", mutation.cases, *mutation.extra, pythonpath=site
    )
    rows = rows_of(report, TOWN)
    for number in mutation.broken:
        assert rows[number]["result"] == FAIL, (number, rows[number], stderr[-2000:])
        failing = [c for c in rows[number]["checks"] if c["result"] == FAIL]
        assert all(c["evidence"] for c in failing)  # a × cites what was received
    for number in mutation.intact:
        checks = rows[number]["checks"]
        assert checks and all(c["result"] == PASS for c in checks), (number, rows[number])
    assert code == 1
