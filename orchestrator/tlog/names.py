"""Names in the custody transparency log's signed notes (pure).

The log's checkpoint origin line, which is also the key name of its signatures
(c2sp.org/tlog-checkpoint recommends that new logs use the origin as key name),
and the key names of the nations' witness cosignatures.
"""

from __future__ import annotations

from orchestrator.crypto import SigningKey, key_id_of
from orchestrator.tlog.note import split_note

__all__ = ["origin_for", "origin_of_public", "replace_signature", "witness_key_name"]


def origin_for(log_key: SigningKey) -> str:
    """The checkpoint origin line of the log signed by ``log_key``; it is also
    the key name of the log's signatures, as the witness network recommends for
    new logs (c2sp.org/tlog-checkpoint: the origin SHOULD be the key name)."""
    return origin_of_public(log_key.public_bytes())


def origin_of_public(public_key: bytes) -> str:
    """:func:`origin_for` from the log's 32-byte public key."""
    return f"sovereign-orchestrator/custody/{key_id_of(public_key).split(':')[-1]}"


def witness_key_name(nation: str) -> str:
    """The key name of nation ``nation``'s witness cosignatures."""
    return f"witness-{nation}"


def replace_signature(note: bytes, name: str, line: bytes) -> bytes:
    """Return ``note`` with key ``name``'s signature lines replaced by ``line``
    (a complete ``"\u2014 name base64\n"`` signed-note line)."""
    text, _ = split_note(note)
    kept = [
        raw
        for raw in note[len(text) + 1 :].splitlines(keepends=True)
        if not raw.decode("utf-8").startswith(f"\u2014 {name} ")
    ]
    return text + b"\n" + b"".join(kept) + line
