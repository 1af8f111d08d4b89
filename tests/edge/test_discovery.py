"""LAN discovery in-process on loopback (python-zeroconf bound to 127.0.0.1 only): enrolled
boxes verify each other and are handed on; an unenrolled advertiser stays an unknown
device and a box certified by another root is refused, neither ever handed on; a peer
that stops answering without a goodbye is marked gone; an advertised IPP printer becomes
a queue. Plus the configuration and record rules."""

from __future__ import annotations

import asyncio
import json
import socket
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from discovery_nodes import box_key, enrol, start_node, until
from zeroconf import IPVersion, ServiceInfo
from zeroconf.asyncio import AsyncZeroconf

from edge.discovery import (
    IPP,
    DiscoveryError,
    DiscoverySettings,
    LanDiscovery,
    Mdns,
    queue_name,
    read_journal,
    resolve_interfaces,
    service_infos,
    txt_records,
)
from edge.identity_api import BoxIdentity
from edge.peers import Liveness, VerifiedPeer, offer_to_agent
from edge.sync_agent import AgentConfig, SyncAgent
from shared.crypto import FederationRoot
from shared.storage import MemoryStorage
from shared.sync.identity import Identity


def test_txt_records_are_short_and_a_long_one_is_refused(tmp_path: Path) -> None:
    root = FederationRoot.generate()
    enrol(tmp_path, root, "box-15307", "15307")
    identity = BoxIdentity.load(
        tmp_path, "box-15307", "15307", name="聖籠町役場 連携ボックス", tls_cert=None
    )
    renkei, https = service_infos(identity, 8443, ["127.0.0.1"])
    assert renkei.name == "聖籠町役場 連携ボックス._renkei._tcp.local."
    assert https.name == "聖籠町役場 連携ボックス._https._tcp.local."
    assert renkei.decoded_properties == {
        "box": "box-15307",
        "town": "15307",
        "fp": identity.fingerprint,
        "pv": "1",
    }
    for key, value in renkei.properties.items():
        assert len(key) + 1 + len(value or b"") < 255
    with pytest.raises(DiscoveryError, match="TXT entry"):
        txt_records({"box": "x" * 252})
    assert txt_records({"box": "x" * 251}) == {"box": "x" * 251}


def test_discovery_is_off_unless_interfaces_are_chosen(tmp_path: Path) -> None:
    assert not DiscoverySettings.load(tmp_path).enabled
    (tmp_path / "discovery.json").write_text(
        json.dumps({"interfaces": ["lo"], "port": 8443, "liveness_interval_s": 5})
    )
    settings = DiscoverySettings.load(tmp_path)
    assert settings.enabled and settings.port == 8443 and settings.liveness_interval_s == 5
    assert DiscoverySettings.load(tmp_path, ("127.0.0.1",)).interfaces == ("127.0.0.1",)
    assert resolve_interfaces(["lo"]) == ["127.0.0.1"]
    assert resolve_interfaces(["127.0.0.1", "lo"]) == ["127.0.0.1"]
    with pytest.raises(DiscoveryError, match="no IPv4"):
        resolve_interfaces(["no-such-if0"])
    with pytest.raises(DiscoveryError, match="never used on all interfaces"):
        Mdns([])
    (tmp_path / "discovery.json").write_text(json.dumps({"interface": ["lo"]}))
    with pytest.raises(DiscoveryError, match="unknown settings"):
        DiscoverySettings.load(tmp_path)
    (tmp_path / "discovery.json").write_text(json.dumps({"revocation_interval_s": 2}))
    assert DiscoverySettings.load(tmp_path).revocation_interval_s == 2
    (tmp_path / "discovery.json").write_text(json.dumps({"revocation_interval_s": 0}))
    with pytest.raises(DiscoveryError, match="revocation_interval_s must be at least 1 s"):
        DiscoverySettings.load(tmp_path)


def test_default_liveness_marks_a_silent_peer_gone_within_30_s() -> None:
    assert DiscoverySettings().worst_case_gone_s <= 30
    assert Liveness(interval_s=20, failures=2).worst_case_s(4) > 30  # the check can fail


def test_queue_names_are_cups_safe() -> None:
    name = queue_name("聖籠町役場 2階 複合機")
    assert name.startswith("renkei-") and name.isascii() and " " not in name
    assert name != queue_name("聖籠町役場 1階 複合機")
    assert queue_name("Office MFP (2)").startswith("renkei-Office_MFP_2-")


def test_a_disabled_box_starts_no_mdns_but_answers_identity(tmp_path: Path) -> None:
    async def scenario() -> None:
        box_key(tmp_path)
        identity = BoxIdentity.load(tmp_path, "box-15307", "15307", name="x", tls_cert=None)
        lan = LanDiscovery(DiscoverySettings(), identity, clock=lambda: datetime.now(UTC))
        await lan.start()
        assert lan.mdns is None and not lan.view()["enabled"]
        answer = identity.answer("00" * 32)
        assert answer["enrolled"] is False and answer["box"] == "box-15307"
        await lan.stop()

    asyncio.run(scenario())


def test_verified_peer_is_offered_to_the_sync_agent() -> None:
    async def scenario() -> None:
        agent = SyncAgent(MemoryStorage(), AgentConfig("15307"))
        other = Identity.generate()
        peer = VerifiedPeer("laptop-15405", "15405", "", "10.0.0.9", 8443, "fp",
                            other.writer_id, 8702, {"15405": 3})  # fmt: skip
        assert peer.fresher_than({"15405": 1, "15307": 9}) == ["15405"]
        await offer_to_agent(agent)(peer)
        assert "http://10.0.0.9:8702" in agent.peers
        assert agent.service.responder.authorize(other.writer_id)
        assert not agent.service.responder.authorize(Identity.generate().writer_id)

    asyncio.run(scenario())


@pytest.mark.timeout(90)
def test_loopback_lan_verifies_enrolled_boxes_and_hands_over_nobody_else(tmp_path: Path) -> None:
    root = FederationRoot.generate()
    impostor_root = FederationRoot.generate()

    async def scenario() -> None:
        pin = root.verify_key
        host = await start_node(
            tmp_path,
            "host",
            "15307",
            pin=pin,
            root=root,
            settings={"printers_allowed": ("テスト複合機",)},
        )
        nodes = [host]
        try:
            visitor = await start_node(tmp_path, "visitor", "15405", pin=pin, root=root)
            rogue = await start_node(tmp_path, "rogue", "15405", pin=pin, root=None)
            forger = await start_node(tmp_path, "forger", "15405", pin=pin, root=impostor_root)
            nodes += [visitor, rogue, forger]
            await until(lambda: host.state_of(visitor.box_id) == "verified", 30, "verified")
            await until(lambda: host.state_of(rogue.box_id) == "unknown", 30, "rogue unknown")
            await until(lambda: host.state_of(forger.box_id) == "refused", 30, "forger refused")
            await until(lambda: visitor.state_of(host.box_id) == "verified", 30, "both ways")
            assert [p.box for p in host.verified] == [visitor.box_id]
            assert {p.box for p in rogue.verified} == {host.box_id, visitor.box_id}
            # the view a supervisor or IT staff gets
            port = host.lan.settings.port
            async with httpx.AsyncClient(verify=False) as client:
                view = (await client.get(f"https://127.0.0.1:{port}/api/lan")).json()
            states = {p["box"]: p["state"] for p in view["peers"]}
            assert states[rogue.box_id] == "unknown" and states[forger.box_id] == "refused"
            refused = next(p for p in view["peers"] if p["box"] == forger.box_id)
            assert "another root" in refused["reason"]

            # a printer advertised on the LAN becomes a queue, if the town allows it
            printer = AsyncZeroconf(interfaces=["127.0.0.1"], ip_version=IPVersion.V4Only)
            for name, port in (("テスト複合機", 8631), ("野良プリンタ", 8632)):
                info = ServiceInfo(
                    IPP,
                    f"{name}.{IPP}",
                    port=port,
                    properties={"rp": "ipp/print", "ty": "Test MFP"},
                    server=f"printer-{port}.local.",
                    addresses=[socket.inet_aton("127.0.0.1")],
                )
                await printer.async_register_service(info)
            try:
                queue = queue_name("テスト複合機")
                await until(lambda: queue in host.queues.queues, 30, "printer queue")
                assert host.queues.queues == {queue: "ipp://127.0.0.1:8631/ipp/print"}
                await until(
                    lambda: any(
                        e["event"] == "printer_not_allowed" and e["instance"] == "野良プリンタ"
                        for e in host.lan.journal.recent
                    ),
                    30,
                    "other printer refused",
                )
                assert queue_name("野良プリンタ") not in host.queues.queues
            finally:
                await printer.async_close()

            # a visitor that stops answering without a goodbye is gone within the bound
            await visitor.pull_the_cable()
            bound = host.lan.settings.worst_case_gone_s
            took = await until(lambda: host.state_of(visitor.box_id) == "gone", bound + 5, "gone")
            assert [p.box for p in host.gone] == [visitor.box_id]
            # an advertiser that leaves with a goodbye is gone at once
            await rogue.lan.stop()
            await until(lambda: host.state_of(rogue.box_id) == "gone", 5, "goodbye")
        finally:
            for node in reversed(nodes):
                await node.stop()
        events = read_journal(host.data / "lan-journal.jsonl")
        kinds = [e["event"] for e in events]
        assert kinds.index("discovered") < kinds.index("verified") < kinds.index("handed_over")
        handed = [e["box"] for e in events if e["event"] == "handed_over"]
        assert handed == [visitor.box_id]
        print(f"silent peer gone after {took:.1f} s (bound {bound} s)")

    asyncio.run(scenario())
