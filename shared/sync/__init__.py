"""Sync: replicas reconcile on blob identity — per-writer sequence numbers — not on version
ranges claimed in cleartext headers (BRIEF §3 Sync). Wire protocol: docs/sync-protocol.md.

Pure logic lives here; transports only move bytes:

    identity.py   self-certifying writer/peer ids ("ed25519:" + hex of the verify key)
    content.py    the plaintext inside a sync blob: a small inner header + Loro bytes
    log.py        the per-writer blob log over the storage seam; have-vectors; what a
                  peer lacks, 支援措置 (`blocks`) documents first
    messages.py   the wire messages and their framing (protocol version field)
    protocol.py   nonces, the initiator and responder state machines
    replica.py    a replica: the log plus, for towns whose keys it holds, the documents
                  (applies blobs, checks each header against the real contents)
    transport.py  the `Transport` seam (send/receive bytes) and a seeded lossy in-memory
                  network for tests
    peer.py       drives the protocol over a `Transport` (sessions, time-outs, retries)

Errors (all raised from this package derive from `SyncError`):

    SyncError
     ├── WireError          a message that does not decode (bad framing, bounds, JSON)
     ├── ContentError       a blob's plaintext is not a sync content record
     └── ProtocolRefused    the peer refused (stale nonce, version, authentication)
"""
