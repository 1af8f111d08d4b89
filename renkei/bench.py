"""The benchmark harness behind `renkei bench --json`: named figures, one JSON object.

Each benchmark is a function registered with `@figure_group`; it returns a dict of named
figures. Every group runs in a fresh interpreter (multiprocessing "spawn"), so a figure
includes the cold start a clerk would see (imports, first load) and no cache from another
group can flatter it. Inputs vary between runs: the synthetic seed is random unless
`--seed` is given, and the queries are drawn from the generated residents.

Performance targets live here, never in timed unit tests.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import random
import resource
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

Figures = dict[str, float]
GROUPS: dict[str, Callable[[int, bool], Figures]] = {}  # name -> group


Group = Callable[[int, bool], Figures]


def figure_group(name: str) -> Callable[[Group], Group]:
    def register(func: Group) -> Group:
        GROUPS[name] = func
        return func

    return register


@contextmanager
def stopwatch() -> Iterator[Callable[[], float]]:
    start = time.perf_counter()
    elapsed: list[float] = []
    yield lambda: elapsed[0] if elapsed else time.perf_counter() - start
    elapsed.append(time.perf_counter() - start)


def p95(samples: list[float]) -> float:
    return statistics.quantiles(samples, n=20)[-1] if len(samples) >= 20 else max(samples)


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _round(figures: Figures) -> Figures:
    return {k: round(v, 4) for k, v in figures.items()}


def _queries(rng: random.Random, residents: list[Any], count: int) -> list[str]:
    """Varied real queries a clerk types: kana, name, 和暦 date, kana + era year, code."""
    from shared.wareki import to_wareki, to_wareki_short

    queries = []
    for _ in range(count):
        person = rng.choice(residents)
        surname_kana = person.kana.split("\u3000")[0].split(" ")[0]
        kind = rng.randrange(6)
        if kind == 0:
            queries.append(person.kana)
        elif kind == 1:
            queries.append(person.name)
        elif kind == 2:
            queries.append(to_wareki(person.birth_date))
        elif kind == 3:
            queries.append(f"{surname_kana} {to_wareki_short(person.birth_date).split('.')[0]}")
        elif kind == 4:
            queries.append(person.juminhyo_code)
        else:
            queries.append(surname_kana[:2])
    return queries


# ---------------------------------------------------------------------------- groups


@figure_group("registry")
def bench_registry(seed: int, quick: bool) -> Figures:
    """Import, next-day delta import, cold registry load, index build, search p95."""
    from cloud.custody import Custody
    from cloud.importer import import_export
    from cloud.replica import HubReplica
    from cloud.synthetic import generate
    from cloud.synthetic.daily import next_day
    from shared.export_csv import write_export
    from shared.search import SearchIndex
    from shared.storage import SqliteStorage

    rng = random.Random(seed)
    custody = Custody.create()
    figures: Figures = {}
    with tempfile.TemporaryDirectory(prefix="renkei-bench-") as tmp:
        root = Path(tmp)
        exports = generate(seed)
        write_export(exports, root / "day1")
        write_export(next_day(exports, seed, fraction=0.01), root / "day2")
        storage = SqliteStorage(root / "hub.db")
        with stopwatch() as took:
            report = import_export(root / "day1", storage, custody=custody)
        figures["import_s"] = took()
        if not report.ok:
            raise RuntimeError(report.summary())
        with stopwatch() as took:
            import_export(root / "day2", storage, custody=custody)
        figures["delta_import_s"] = took()
        largest = max(exports, key=lambda e: len(e.residents)).town.code
        with stopwatch() as took:  # the hub opening the town from its sync log
            registry = HubReplica(storage, custody, shards=16).registry(largest)
            pairs = list(registry.residents_with_households())
        figures["registry_load_s"] = took()
        index = SearchIndex(largest)
        with stopwatch() as took:
            index.build(pairs)
        figures["index_build_s"] = took()
        storage.close()
        indexes = {largest: index}
        people: dict[str, list[Any]] = {}
        for export in exports:
            people[export.town.code] = [r for r in export.residents if r.removal is None]
            if export.town.code not in indexes:
                indexes[export.town.code] = SearchIndex(export.town.code)
                households = {h.id: h for h in export.households}
                indexes[export.town.code].build(
                    (r, households[r.household_id]) for r in export.residents
                )
        samples = []
        for code, residents in people.items():
            for query in _queries(rng, residents, 100 if quick else 400):
                with stopwatch() as took:
                    indexes[code].search(query)
                samples.append(took() * 1000)
        figures["search_p95_ms"] = p95(samples)
    figures["rss_mb"] = rss_mb()
    return figures


@figure_group("registry_500k")
def bench_500k(seed: int, quick: bool) -> Figures:
    """Search p95 on a synthetic 500,000-resident town."""
    from cloud.synthetic import generate
    from shared.search import SearchIndex

    size = 50_000 if quick else 500_000
    exports = generate(seed, residents_override={"15307": size})
    big = next(e for e in exports if e.town.code == "15307")
    households = {h.id: h for h in big.households}
    index = SearchIndex(big.town.code)
    with stopwatch() as took:
        index.build((r, households[r.household_id]) for r in big.residents)
    figures: Figures = {"index_build_s_500k": took()}
    rng = random.Random(seed)
    residents = [r for r in big.residents if r.removal is None]
    samples = []
    for query in _queries(rng, residents, 200 if quick else 500):
        with stopwatch() as took:
            index.search(query)
        samples.append(took() * 1000)
    figures["search_p95_ms_500k"] = p95(samples)
    figures["rss_mb_500k"] = rss_mb()
    return figures


# ---------------------------------------------------------------------------- runner


def _run_group(name: str, seed: int, quick: bool, queue: Any) -> None:
    try:
        queue.put(("ok", _round(GROUPS[name](seed, quick))))
    except BaseException as exc:  # reported to the parent, which fails the run
        queue.put(("error", f"{type(exc).__name__}: {exc}"))


def run(names: list[str] | None, seed: int | None, quick: bool) -> dict[str, Any]:
    chosen = names or list(GROUPS)
    seed = random.SystemRandom().randrange(1, 2**31) if seed is None else seed
    result: dict[str, Any] = {"seed": seed, "quick": quick}
    context = multiprocessing.get_context("spawn")
    for name in chosen:
        queue = context.Queue()
        process = context.Process(target=_run_group, args=(name, seed, quick, queue))
        process.start()
        status, payload = queue.get()
        process.join()
        if status == "error":
            result.setdefault("errors", {})[name] = payload
        else:
            result.update(payload)
    return result


def to_json(result: dict[str, Any]) -> str:
    return json.dumps(result, ensure_ascii=False, sort_keys=True)


@figure_group("unlock")
def bench_unlock(seed: int, quick: bool) -> Figures:
    """A clerk's login opening the largest town on a box: argon2id (MODERATE) unwrap,
    unseal the town keys, open and load the sealed blobs, build the search index."""
    from cloud.custody import Custody
    from cloud.importer import import_export
    from cloud.synthetic import generate
    from edge.replica import BoxReplica, TownReader
    from edge.town import OpenTown
    from shared.export_csv import write_export
    from shared.storage import MemoryStorage
    from shared.sync.log import BlobLog

    exports = generate(seed, residents_override={"15405": 300, "15581": 300} if quick else None)
    largest = max(exports, key=lambda e: len(e.residents))
    with tempfile.TemporaryDirectory(prefix="renkei-bench-") as tmp:
        write_export(exports, Path(tmp))
        hub = MemoryStorage()
        custody = Custody.create()
        import_export(Path(tmp), hub, custody=custody)
    clerk = next(c for c in largest.clerks if c.on_roster)
    password = "bench-" + "-".join(random.Random(seed).sample(["yuki", "kawa", "umi", "sora"], 4))
    custody.provision_clerk(hub, clerk, password)
    box = BoxReplica(MemoryStorage())
    code = largest.town.code
    copied = [(code, "credential", clerk.login_id), (code, "public"), ("federation", "hub-writer")]
    box.storage.save_many([(key, hub.load(key) or b"") for key in copied])
    BlobLog(box.storage).add_many(blob for _, blob in BlobLog(hub).load_town(code))
    # The box's first opening replays the whole log and leaves its sealed checkpoint;
    # a login after a restart (what unlock_s measures) starts from that checkpoint.
    first = TownReader(box.storage, code, 16)
    with stopwatch() as replay:
        first.open(box.unlock(code, clerk.login_id, password).keyring)
    with stopwatch() as checkpoint:
        first.save_checkpoint()
    cpu_start = time.process_time()  # wall time swings with other load; CPU time less
    with stopwatch() as took:  # the worker at a login: the town from the box's sync log
        with stopwatch() as kdf:
            unlocked = box.unlock(code, clerk.login_id, password)
        with stopwatch() as load:
            registry = TownReader(box.storage, code, 16).open(unlocked.keyring)
        town = OpenTown(code, code, "", registry)
    unlock_s = took()
    cpu = time.process_time() - cpu_start
    warm_up_s, first_request_s = _first_counter_request(largest, registry, unlocked, box.storage)
    return {
        "unlock_s": unlock_s,
        "unlock_cpu_s": cpu,
        # the first request form and 住民票 at a counter after the town opened: the
        # worker builds its counter then (edge.counter.town_data reads tax, insurance and
        # vehicles shard by shard, only as a request needs them)
        "counter_first_request_s": first_request_s,
        "counter_warm_up_s": warm_up_s,  # edge.counter.warm_up, in the background
        # its stages: argon2id (MODERATE) and unsealing the town keys; opening the blobs
        # of the sync log and importing them into the CRDT documents; reading the records
        # the index needs; keys and the SQLite index
        "unlock_kdf_s": kdf(),
        "unlock_load_s": load(),
        "unlock_read_s": town.timings["read_s"],
        "unlock_index_s": town.timings["index_s"],
        "unlock_first_open_s": replay(),  # first opening on a box: the whole log replayed
        "unlock_checkpoint_write_s": checkpoint(),
        "unlock_residents": float(len(largest.residents)),
        "unlock_loadavg_1m": os.getloadavg()[0],  # a busy machine inflates every figure
    }


def _first_counter_request(
    export: Any, registry: Any, unlocked: Any, storage: Any
) -> tuple[float, float]:
    """(the printing imports the worker does at start, the first request after a login)"""
    from datetime import datetime

    from nacl.signing import SigningKey

    from edge.counter import ClerkSession, Counter, DeskInfo, warm_up
    from shared.issuance import JST

    with stopwatch() as warming:  # the worker does this in the background when it starts
        warm_up()

    person = random.Random(len(export.residents)).choice(
        [r for r in export.residents if r.removal is None]
    )
    clerk = ClerkSession(unlocked.certificate.login_id, unlocked.clerk_keys, unlocked.certificate)
    now = datetime.now(JST)
    form = {
        "document": "juminhyo", "subject": person.id, "requester": "本人",
        "applicant_name": "窓口　来た人", "applicant_id": person.id,
        "identity": "顔写真付き書類1点", "documents": "運転免許証", "output": "download",
    }  # fmt: skip
    with stopwatch() as took:
        counter = Counter(
            registry, unlocked.keyring, storage, "BENCH01", now.isoformat(), SigningKey.generate()
        )
        counter.household(person.id, now.date())
        result = counter.issue(clerk, form, DeskInfo(), now)
    if not result.get("issued"):
        raise RuntimeError(f"the bench's 住民票 was not issued: {result}")
    return warming(), took()


@figure_group("printing")
def bench_printing(seed: int, quick: bool) -> Figures:
    """Certificates (cold: the first one in a fresh process, fonts opened; warm: p95 of the
    rest) and the 全住民一覧 of the largest town (whole list and first page, cold and warm)."""
    from datetime import UTC, datetime, timedelta, timezone

    from cloud.synthetic import generate
    from printing.certificates.juminhyo import JuminhyoItems, render_juminhyo
    from printing.certificates.nhi import render_eligibility_card
    from printing.certificates.tax import render_income_certificate, render_payment_certificate
    from printing.fonts import FontRegistry
    from printing.layout import Issue, IssueNumber, Signer
    from printing.lists import preview_first_page, render_resident_list
    from printing.standin_fonts import build_standin_fonts
    from shared.crypto import ClerkKeys, TownKeys, issue_clerk_certificate
    from shared.model import Role

    rng = random.Random(seed)
    exports = generate(seed, residents_override={"15307": 2000} if quick else None)
    export = max(exports, key=lambda e: len(e.residents))
    code = export.town.code
    jst = timezone(timedelta(hours=9))
    now = datetime(2026, 11, 27, 10, 0, tzinfo=jst)
    town = TownKeys.generate(code)
    clerk = ClerkKeys.generate(code, "bench")
    cert = issue_clerk_certificate(
        town,
        clerk.public,
        roles=[Role.CLERK],
        on_roster=True,
        issued_at=datetime(2026, 1, 1, tzinfo=UTC),
    )
    signer = Signer(clerk, cert, bytes(32), b"bench")
    serial = iter(range(1, 10**6))

    def issue(**changes: Any) -> Issue:
        number = IssueNumber(now.date(), code, "B01", "T01", "P01", next(serial))
        return Issue(export.town, number, now, now - timedelta(hours=8), **changes)

    people = {r.id: r for r in export.residents}
    households = {h.id: h for h in export.households}
    members: dict[str, list[Any]] = {}
    for r in export.residents:
        if not r.is_removed:
            members.setdefault(r.household_id, []).append(r)
    assessments = [
        a for a in export.tax_assessments if a.fiscal_year == 2026 and a.filing.name != "NOT_FILED"
    ]
    nhi = [m for m in export.nhi_members if not m.has_my_number_insurance and m.lost is None]
    by_payer: dict[str, list[Any]] = {}
    for item in export.installments:
        by_payer.setdefault(item.taxpayer_id, []).append(item)

    figures: Figures = {}
    with tempfile.TemporaryDirectory(prefix="renkei-bench-fonts-") as tmp:
        build_standin_fonts(Path(tmp))
        with stopwatch() as took:
            registry = FontRegistry.from_directory(Path(tmp))
            registry.register_gaiji(export.gaiji)

            def juminhyo() -> None:
                hid = rng.choice(list(members))
                render_juminhyo(
                    issue(),
                    households[hid],
                    members[hid],
                    JuminhyoItems(),
                    signer,
                    whole_household=True,
                    registry=registry,
                )

            juminhyo()
        figures["cert_juminhyo_cold_ms"] = took() * 1000

        def tax() -> None:
            if rng.random() < 0.5:
                a = rng.choice(assessments)
                render_income_certificate(
                    issue(), people[a.resident_id], a, signer, registry=registry
                )
            else:
                payer = rng.choice(list(by_payer))
                render_payment_certificate(
                    issue(), people[payer], "新潟県", by_payer[payer], signer, registry=registry
                )

        def card() -> None:
            m = rng.choice(nhi)
            render_eligibility_card(issue(), m, people[m.resident_id], signer, registry=registry)

        for name, make in (("juminhyo", juminhyo), ("tax", tax), ("nhi", card)):
            if name != "juminhyo":
                with stopwatch() as took:
                    make()
                figures[f"cert_{name}_cold_ms"] = took() * 1000
            samples = []
            for _ in range(20 if quick else 60):
                with stopwatch() as took:
                    make()
                samples.append(took() * 1000)
            figures[f"cert_{name}_p95_ms"] = p95(samples)

        for label in ("cold", "warm"):  # warm: fonts and run caches filled by the first
            suffix = "_cold" if label == "cold" else ""
            with stopwatch() as took:
                preview_first_page(
                    issue(copy_number=1), export.households, export.residents, registry=registry
                )
            figures[f"list_first_page{suffix}_s"] = took()
            with stopwatch() as took:
                doc = render_resident_list(
                    issue(copy_number=2),
                    export.households,
                    export.residents,
                    signer,
                    registry=registry,
                )
            figures[f"list_14k{suffix}_s"] = took()
        figures["list_rows"] = float(sum(len(v) for v in members.values()))
        figures["list_pages"] = float(doc.pages)
    figures["printing_rss_mb"] = rss_mb()
    return figures


@figure_group("sync")
def bench_sync(seed: int, quick: bool) -> Figures:
    """Sync on the one data path: the importer writes the next day's 1 % delta of the
    largest town into the hub's log; a box pulls it by the protocol and applies it
    (verified, opened, imported, readable): `sync_delta_apply_s`. A box restoring the
    largest town from the hub's compacted log (snapshots) until every resident is
    readable: `snapshot_restore_s`. Replication lag box→hub→box over loopback HTTP with
    the agent's production timings: `replication_lag_p95_s`."""
    from cloud.custody import Custody
    from cloud.importer import import_export
    from cloud.replica import HubReplica
    from cloud.synthetic import generate
    from cloud.synthetic.daily import next_day
    from shared.export_csv import write_export
    from shared.storage import SqliteStorage
    from shared.sync.identity import Identity
    from shared.sync.protocol import Initiator, Responder
    from shared.sync.replica import SyncReplica

    figures: Figures = {}
    overrides = {"15307": 2000, "15405": 300, "15581": 300} if quick else None
    exports = generate(seed, residents_override=overrides)
    code = max(exports, key=lambda e: len(e.residents)).town.code
    custody = Custody.create()

    def session(box: SyncReplica, hub: HubReplica) -> None:
        initiator = Initiator(box.log, box.writer, (code,))
        responder = Responder(hub.log, hub.peer_id)
        message = responder.handle(initiator.start(), 0.0)
        while (request := initiator.receive(message)) is not None:
            message = responder.handle(request, 0.0)

    def readable(replica: SyncReplica) -> int:
        return sum(1 for _ in replica.registries[code].records("residents"))

    with tempfile.TemporaryDirectory(prefix="renkei-bench-") as tmp:
        root = Path(tmp)
        write_export(exports, root / "day1")
        write_export(next_day(exports, seed, fraction=0.01), root / "day2")
        store = SqliteStorage(root / "hub.db")
        import_export(root / "day1", store, custody=custody, compact=False)
        hub = HubReplica(store, custody, shards=16)
        hub.compact(code)  # nobody has acknowledged anything: the log is its snapshots
        ring = custody.ring(code)
        box_store = SqliteStorage(root / "box.db")
        box = SyncReplica(box_store, Identity.generate(), keyrings=[ring], shards=16,
                          authority=hub.peer_id)  # fmt: skip
        session(box, hub)
        readable(box)
        figures["snapshot_restore_blobs"] = float(box.log.count(code))

        with stopwatch() as took:
            restored = SyncReplica(box_store, box.writer, keyrings=[ring], shards=16)
            figures["snapshot_restore_residents"] = float(readable(restored))
        figures["snapshot_restore_s"] = took()

        first = hub.log.next_seq(code, hub.peer_id)
        import_export(root / "day2", store, custody=custody, compact=False)
        hub.log.refresh()
        delta = [r for r in hub.log.refs(code) if r.writer == hub.peer_id and r.seq >= first]
        figures["sync_delta_blobs"] = float(len(delta))
        figures["sync_delta_kb"] = sum(r.size for r in delta) / 1024
        with stopwatch() as took:
            session(box, hub)
        figures["sync_delta_apply_s"] = took()
        # Loro applies a delta to a loaded document eagerly; reading every resident back
        # afterwards (what rebuilding a search index would do) is reported apart.
        with stopwatch() as took:
            readable(box)
        figures["sync_delta_read_all_s"] = took()
        store.close()
        box_store.close()
        samples = _replication_lags(root / "lag", code, ring, 6 if quick else 30)
    figures["replication_lag_p95_s"] = p95(samples)
    figures["replication_lag_max_s"] = max(samples)
    figures["sync_rss_mb"] = rss_mb()
    return figures


def _replication_lags(data: Path, code: str, ring: Any, count: int) -> list[float]:
    """Edits on box A at a steady pace; each one's time until box B can read it, through
    a hub on loopback, both boxes running their agents with the production defaults."""
    import asyncio
    import threading

    import uvicorn

    from cloud.app import create_app
    from cloud.sync_api import enrol_peer
    from edge.sync_agent import AgentConfig, SyncAgent
    from shared.registry import Upsert
    from shared.storage import MemoryStorage, SqliteStorage

    data.mkdir()
    server = uvicorn.Server(
        uvicorn.Config(create_app(data), host="127.0.0.1", port=0, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.02)
    url = f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}"
    a, b = (SyncAgent(MemoryStorage(), AgentConfig(code, hub_url=url, towns=(code,))) for _ in "ab")
    hub_store = SqliteStorage(data / "hub.db")
    for agent in (a, b):
        enrol_peer(hub_store, agent.identity.writer_id)
        agent.replica.open_town(ring)
    hub_store.close()

    def seen(key: str) -> bool:
        with b.service.lock:
            return (
                b.replica.registries[code].document("blocks").get("support_blocks", key) is not None
            )

    async def scenario() -> list[float]:
        await a.start()
        await b.start()
        written: dict[str, float] = {}
        lags: dict[str, float] = {}
        rng = random.Random(0)
        try:
            for i in range(count):
                key = f"lag-{i}"
                with a.service.lock:
                    a.replica.edit(code, [Upsert("support_blocks", key, {"i": i}, {"i": i})])
                written[key] = time.monotonic()
                a.notify_local_change()
                until = time.monotonic() + rng.uniform(0.2, 1.2)
                while time.monotonic() < until or (i == count - 1 and len(lags) < count):
                    for k, t in written.items():
                        if k not in lags and seen(k):
                            lags[k] = time.monotonic() - t
                    if time.monotonic() - min(written.values()) > 120:
                        raise RuntimeError("replication stalled")
                    await asyncio.sleep(0.02)
        finally:
            await a.stop()
            await b.stop()
        return list(lags.values())

    try:
        return asyncio.run(scenario())
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@figure_group("discovery")
def bench_discovery(seed: int, quick: bool) -> Figures:
    """LAN discovery (edge/discovery.py, python-zeroconf bound to 127.0.0.1): two real box
    processes (`renkei box`, HTTPS, the hub down). The host runs; a visiting box of another
    town starts and advertises itself; the host discovers it, verifies its enrolment over
    HTTPS (nonce, certificate, channel binding) and its sync agent pulls the visitor's
    fresher replica. Measured from the visitor's first advertisement (its mDNS probing
    included): discovery_to_verified_s until the host hands the verified peer to its sync
    agent, discovery_to_first_sync_s until the host holds the visitor's blobs (target ≤ 3).
    """
    import json
    import socket
    import subprocess
    import sys
    from datetime import UTC, datetime, timedelta

    from nacl.signing import SigningKey

    from edge.discovery import read_journal
    from edge.identity_api import write_enrolment
    from edge.tls import create_ca, issue_server_cert, write_server_files
    from shared.crypto import FederationRoot, KeyRing, TownKeys, issue_box_certificate
    from shared.registry import Upsert
    from shared.storage import SqliteStorage
    from shared.sync.identity import Identity
    from shared.sync.replica import SyncReplica

    federation = FederationRoot.generate()
    ca_cert, ca_key = create_ca()
    visiting = TownKeys.generate("15405")

    def free_port() -> int:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            return int(s.getsockname()[1])

    def box(root: Path, town: str, name: str) -> tuple[Path, list[str]]:
        data, port = root / town, free_port()
        data.mkdir(parents=True)
        key = SigningKey.generate()
        (data / "box.key").write_bytes(bytes(key))
        now = datetime.now(UTC)
        write_enrolment(data, issue_box_certificate(
            federation, f"box-{town}", town=town, verify_key=key.verify_key,
            sealing_key=key.to_curve25519_private_key().public_key,
            issued_at=now - timedelta(hours=1), expires_at=now + timedelta(days=1)))  # fmt: skip
        files = write_server_files(
            root / f"{town}-tls", *issue_server_cert(ca_cert, ca_key, [], ["127.0.0.1"])
        )
        (data / "discovery.json").write_text(json.dumps({
            "interfaces": ["127.0.0.1"], "port": port, "name": name,
            "tls_cert": str(files.cert), "federation_root": bytes(federation.verify_key).hex(),
        }, ensure_ascii=False))  # fmt: skip
        (data / "sync.json").write_text(json.dumps({  # the agent's production timings
            "hub": None, "listen": f"127.0.0.1:{free_port()}", "towns": ["15307", "15405"],
        }))  # fmt: skip
        args = ["box", "--hub", "http://127.0.0.1:9", "--town", town, "--data", str(data),
                "--tls", str(root / f"{town}-tls"), "--port", str(port)]  # fmt: skip
        return data, args

    def first(data: Path, event: str) -> dict[str, Any] | None:
        found = [e for e in read_journal(data / "lan-journal.jsonl") if e["event"] == event]
        return found[0] if found else None

    def wait(condition: Callable[[], Any], what: str, timeout: float = 60) -> Any:
        deadline = time.monotonic() + timeout
        while not (result := condition()):
            if time.monotonic() > deadline:
                raise RuntimeError(f"timed out waiting for {what}")
            time.sleep(0.02)
        return result

    def one_run(run: int) -> tuple[float, float]:
        with tempfile.TemporaryDirectory(prefix="renkei-bench-lan-") as tmp:
            root = Path(tmp)
            host, host_args = box(root, "15307", f"聖籠町役場 連携ボックス {run}")
            visitor, visitor_args = box(root, "15405", f"出雲崎町役場 持ち出し {run}")
            store = SqliteStorage(visitor / "replica.db")
            writer = Identity.generate()
            session = SyncReplica(store, writer, towns=("15405",), shards=2,
                                  keyrings=[KeyRing("15405", [visiting])])  # fmt: skip
            for i in range(20):
                session.edit("15405", [Upsert("households", f"h{i}", {"i": i}, {"i": i})])
            store.close()

            def arrived() -> float | None:
                storage = SqliteStorage(host / "replica.db")
                try:
                    log = storage.load_range(("15405", "log", writer.writer_id))
                finally:
                    storage.close()
                return time.monotonic() if len(log) == 20 else None

            processes = []
            try:
                for args in (host_args, visitor_args):
                    processes.append(subprocess.Popen(
                        [sys.executable, "-m", "renkei", *args],
                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))  # fmt: skip
                    if args is host_args:
                        wait(lambda: first(host, "advertised"), "the host to advertise")
                done = wait(arrived, "the visitor's blobs at the host")
                start = wait(lambda: first(visitor, "advertising"), "the visitor's journal")
                handed = wait(lambda: first(host, "handed_over"), "the host's journal")
                return handed["mono"] - start["mono"], done - start["mono"]
            finally:
                for process in processes:
                    process.terminate()
                for process in processes:
                    process.wait(timeout=30)

    verified, synced = zip(*(one_run(run) for run in range(1 if quick else 3)), strict=True)
    return {
        "discovery_to_verified_s": statistics.median(verified),
        "discovery_to_first_sync_s": statistics.median(synced),
        "discovery_to_first_sync_max_s": max(synced),
    }
