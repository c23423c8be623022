"""Offline custody bundles: a model's lineage, provable against one checkpoint.

``sovereign custody prove MODEL_ID`` writes one JSON document that an officer
verifies on a machine with nothing else (no state, no registry, no network), in
the spirit of C2SP tlog-proof and Sigstore bundles, built from the log's public
read API only:

* ``entries``: the exact leaf bytes (base64) and log index of the model's
  ``model.sealed`` event (which carries the site-signed provenance), every event
  of its job, the inputs' ``dataset.sealed`` events, the ``site.registered``
  event, and the ``actor.enrolled`` entry of every actor that signed one of them;
  each with an RFC 9162 inclusion proof against ONE checkpoint, and each also as
  a C2SP ``tlog-proof`` text (``proofs``);
* ``checkpoint``: that checkpoint's signed note with its witness cosignatures.

:func:`verify_bundle` trusts nothing in the bundle but what it checks against
keys the officer pinned: the log's key (trust on first use only when asked for
by name) and the witnesses' keys; the actors' keys come from their enrollment
entries, proved included, and each nation's custodian key must be the witness
key pinned for it. A malformed or forged part raises :class:`BundleError`
naming the part.

References
----------
.. [1] RFC 9162, section 2.1.3.2 (verifying an inclusion proof).
.. [2] C2SP tlog-checkpoint, signed-note, tlog-cosignature and tlog-proof.
.. [3] DSSE v1; in-toto Statement v1; SLSA Provenance v1.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from orchestrator.canonical import b64d, b64e
from orchestrator.crypto import key_id_of, verify_signature
from orchestrator.errors import ConfigError
from orchestrator.officer.bundle_checks import (
    BundleError,
    _guard,
    _require,
    check_lineage,
    check_provenance,
)
from orchestrator.tlog.checkpoint import Checkpoint, open_note, parse_note
from orchestrator.tlog.enrollment import EnrollmentError, KeyBook
from orchestrator.tlog.events import SignedEntry
from orchestrator.tlog.merkle import leaf_hash, verify_inclusion
from orchestrator.tlog.names import origin_of_public, witness_key_name
from orchestrator.tlog.note import ALG_COSIGNATURE_V1, NoteVerifier
from orchestrator.tlog.proof import format_proof
from orchestrator.tlog.roles import ADMIT_KIND, ENROLL_KIND, check_writer
from orchestrator.tlog.witness import WitnessState, check_extends

__all__ = ["MEDIA_TYPE", "BundleError", "BundleReport", "prove", "verify_bundle"]

MEDIA_TYPE = "application/vnd.sovereign.custody-bundle.v1+json"
"""``mediaType`` of version 1 of the bundle format."""


@dataclass(frozen=True)
class BundleReport:
    """What :func:`verify_bundle` established."""

    model_id: str
    job_id: str
    site: str
    sealed_digest: str
    checkpoint_size: int
    origin: str
    log_key: str
    log_key_pinned: bool
    cosigners: tuple[str, ...]
    entries: int
    kinds: dict[str, int] = field(default_factory=dict)
    datasets: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        """Return the report as a JSON object."""
        return {"verified": True, **json.loads(json.dumps(self.__dict__))}


def _get(obj: Any, key: str, kind: type, part: str) -> Any:
    value = obj.get(key) if isinstance(obj, Mapping) else None
    if not isinstance(value, kind) or isinstance(value, bool):
        raise BundleError(part, f"missing or not a {kind.__name__}: {key!r}")
    return value


def _b64(text: object, part: str) -> bytes:
    try:
        return b64d(text, what=part) if isinstance(text, str) else b64d("?")
    except ValueError as exc:
        raise BundleError(part, "not valid base64") from exc


class ProvableLog(Protocol):
    """What :func:`prove` reads of the log (its public read API)."""

    def find(self, kind: str | None = None, **match: str) -> list[SignedEntry]: ...

    def checkpoint(self) -> bytes: ...

    def inclusion_proof(self, index: int, size: int) -> list[bytes]: ...

    def consistency_proof(self, old: int, new: int) -> list[bytes]: ...


def prove(log: ProvableLog, model_id: str, *, log_vkey: str | None = None,
          from_size: int | None = None) -> dict[str, Any]:
    """Build the offline custody bundle of model ``model_id`` against the log's
    latest checkpoint (which must cover the model's events); with ``from_size``
    (an officer's trusted size), add the RFC 9162 consistency proof from that
    size to the checkpoint (``consistency``).

    Raises
    ------
    NotFound, ConfigError
        Unknown model; a model without provenance; a checkpoint that does not
        cover its events yet (publish and witness one first).
    """
    from orchestrator.errors import NotFound

    sealed = log.find("model.sealed", model_id=model_id)
    if not sealed:
        raise NotFound(f"the custody log has no model.sealed for {model_id}")
    body = sealed[-1].event.body
    if not isinstance(body.get("provenance"), dict):
        raise ConfigError(f"model {model_id} has no signed provenance", source=model_id)
    lineage = body.get("lineage") or {}
    job_id, site = str(lineage.get("job_id")), str(lineage.get("site"))
    found = [*sealed, *log.find(job_id=job_id), *log.find("site.registered", site=site)]
    for item in lineage.get("datasets", []):
        found += log.find("dataset.sealed", dataset_id=item["dataset_id"])
    found += log.find("site.accredited", site=site)
    for actor in sorted({e.event.actor for e in found}):
        found += log.find(ENROLL_KIND, actor=actor)
        found += log.find(ADMIT_KIND, actor=actor)
    for actor in sorted({e.event.actor for e in found}):  # the admitters too
        found += log.find(ENROLL_KIND, actor=actor)
    picked = {e.seq: e for e in found}
    note = log.checkpoint()
    cp = parse_note(note).checkpoint
    if cp.size <= max(picked):
        raise ConfigError(f"the latest checkpoint (size {cp.size}) does not cover "
                          f"entry {max(picked)}; publish and witness a new one",
                          source=model_id)
    if from_size is not None and not 0 <= from_size <= cp.size:
        raise ConfigError(f"--from-size {from_size} is not within the checkpoint's "
                          f"size {cp.size}", field="--from-size")
    proofs = {seq: log.inclusion_proof(seq, cp.size) for seq in sorted(picked)}
    bundle = {
        "mediaType": MEDIA_TYPE,
        "model_id": model_id,
        "checkpoint": {"note": note.decode("utf-8"),
                       **({"log_key": log_vkey} if log_vkey else {})},
        "entries": [{"index": seq, "leaf": b64e(picked[seq].leaf_bytes()),
                     "proof": [b64e(h) for h in proofs[seq]]}
                    for seq in sorted(picked)],
        "proofs": {str(seq): format_proof(seq, proofs[seq], note).decode("utf-8")
                   for seq in sorted(picked)},
    }
    if from_size is not None:
        bundle["consistency"] = {"from_size": from_size, "proof": [
            b64e(h) for h in (log.consistency_proof(from_size, cp.size)
                              if 0 < from_size < cp.size else [])]}
    return bundle


def _verify_note(bundle: Mapping[str, Any], pinned: str | None,
                 witness_vkeys: Mapping[str, str], required: list[str],
                 trust_on_first_use: bool, log_vkey_in_bundle: str | None
                 ) -> tuple[Checkpoint, NoteVerifier, list[str]]:
    part = _get(bundle, "checkpoint", dict, "checkpoint")
    note = _get(part, "note", str, "checkpoint").encode("utf-8")
    if pinned is not None:
        log_v = _guard("--log-key", NoteVerifier.from_vkey, pinned)
    elif trust_on_first_use and log_vkey_in_bundle:
        log_v = _guard("checkpoint.log_key", NoteVerifier.from_vkey,
                       log_vkey_in_bundle)
    else:
        raise BundleError("--log-key", "no pinned log key: pin the log's key (or "
                          "explicitly trust the bundle's on first use)")
    origin = origin_of_public(log_v.public_key)
    _require(log_v.name == origin, "checkpoint.log_key",
             f"key name is {log_v.name!r}, not the log's origin {origin!r}")
    witnesses = {c: _guard(f"witness key {c}", NoteVerifier.from_vkey, str(t))
                 for c, t in witness_vkeys.items()}
    for code, v in witnesses.items():
        _require(v.name == witness_key_name(code) and v.alg == ALG_COSIGNATURE_V1,
                 f"witness key {code}", "not a cosignature/v1 witness key")
    unknown = [n for n in required if n not in witnesses]
    _require(not unknown, "checkpoint", f"required cosigner(s) {', '.join(unknown)}"
             " have no pinned witness key")
    verified = _guard(
        "checkpoint", open_note, note, [log_v, *witnesses.values()],
        required=[log_v.name, *(witness_key_name(n) for n in required)], origin=origin)
    cosigners = sorted(c for c, v in witnesses.items() if v.name in verified.verified)
    return verified.checkpoint, log_v, cosigners


def _verify_entries(bundle: Mapping[str, Any], cp: Checkpoint,
                    pinned: Mapping[str, bytes]
                    ) -> tuple[dict[int, SignedEntry], dict[str, bytes]]:
    """Inclusion of every leaf; keys from the included enrollments; signatures."""
    entries: dict[int, SignedEntry] = {}
    for n, item in enumerate(_get(bundle, "entries", list, "entries")):
        index = _get(item, "index", int, f"entries[{n}]")
        part = f"entry {index}"
        leaf = _b64(_get(item, "leaf", str, part), f"{part} leaf")
        proof = [_b64(h, f"{part} proof") for h in _get(item, "proof", list, part)]
        _guard(f"{part} inclusion proof", verify_inclusion, leaf_hash(leaf), index,
               cp.size, proof, cp.root)
        try:
            entry = SignedEntry.from_leaf(leaf)
        except ValueError as exc:
            raise BundleError(part, f"leaf is not a valid entry: {exc}") from exc
        _require(entry.seq == index and index not in entries, part,
                 f"leaf seq {entry.seq} at index {index} (or a duplicate index)")
        entries[index] = entry
    book = KeyBook(pinned=pinned)
    for index in sorted(entries):
        entry = entries[index]
        if entry.event.kind == ENROLL_KIND:
            try:
                book.enroll(entry)
            except EnrollmentError as exc:
                raise BundleError(f"entry {index}", str(exc)) from exc
    for index in sorted(entries):
        entry = entries[index]
        part = f"entry {index}"
        pub = book.key_at(entry.event.actor, index) or b""
        _require(bool(pub) and entry.signer == key_id_of(pub), part,
                 f"{entry.event.actor} has no enrollment in the bundle for key "
                 f"{entry.signer}")
        try:
            check_writer(entry.event.actor, entry.event.kind)
        except (ConfigError, PermissionError) as exc:
            raise BundleError(part, f"{entry.event.actor} may not write "
                              f"{entry.event.kind}") from exc
        _guard(f"{part} signature", verify_signature, pub, entry.signature,
               entry.signed_bytes())
        book.admit(entry)
    for index in sorted(entries):
        entry = entries[index]
        why = book.unanchored(entry.event.actor, entry.signer)
        _require(why is None, f"entry {index}", str(why))
    keys = {actor: key for actor in book.history
            if (key := book.current(actor)) is not None}
    for i, entry in entries.items():
        prev = entries.get(i - 1)
        _require(prev is None or entry.prev_hash == prev.entry_hash(), f"entry {i}",
                 f"prev_hash does not chain to entry {i - 1}")
    return entries, keys


def _check_extends_trusted(bundle: Mapping[str, Any], cp: Checkpoint,
                           trusted: WitnessState) -> None:
    part = "consistency"
    _require(trusted.origin == cp.origin, part, f"the trusted checkpoint is of log "
             f"{trusted.origin}, the bundle's of {cp.origin}")
    proof: list[bytes] = []
    if 0 < trusted.size < cp.size:
        doc = bundle.get("consistency") or {}
        _require(isinstance(doc, dict) and doc.get("from_size") == trusted.size, part,
                 f"the bundle proves consistency from size {doc.get('from_size')}, "
                 f"not from the trusted size {trusted.size} (custody prove "
                 f"--from-size {trusted.size})")
        proof = [_b64(h, part) for h in _get(doc, "proof", list, part)]
    note = _get(bundle["checkpoint"], "note", str, "checkpoint").encode("utf-8")
    _guard(part, check_extends, trusted, cp, note, proof)


def verify_bundle(
    bundle: dict[str, Any],
    *,
    trusted_log_vkey: str | None = None,
    witness_vkeys: Mapping[str, str] | None = None,
    required_cosigners: Iterable[str] = (),
    trust_log_on_first_use: str | None = None,
    trusted_checkpoint: WitnessState | None = None,
) -> BundleReport:
    """Verify a custody bundle offline and return what it proves.

    (1) the checkpoint note: the log's signature by the pinned
        ``trusted_log_vkey`` (or, only when the caller passes it explicitly,
        ``trust_log_on_first_use``) and the cosignature of every nation in
        ``required_cosigners`` by its pinned ``witness_vkeys`` key; (2) each
        leaf's RFC 9162 inclusion proof against the checkpoint root; (3) each
        actor's key from its included, self-signed enrollment (a nation's
        custodian key must be its pinned witness key), each event signed by its
        actor's key for a kind its role writes; (4) the hash chain between
        adjacent included entries; (5) completeness: the model's
        ``model.sealed``, the job's request, every owner's decision, every task's
        start and completion, every grant's ``key.released`` and each input's
        ``dataset.sealed``; (6) the provenance in ``model.sealed``: DSSE
        signature by the site's enrolled key, subject digest = the sealed digest,
        input dataset digests and code measurement = the logged ones; (7) with
        ``trusted_checkpoint`` (the officer's), the bundle's checkpoint extends
        it: the bundle's ``consistency`` proof from that size (RFC 9162
        2.1.4.2), no smaller size, no other root at the same size.

    Raises
    ------
    BundleError
        Naming the part that is malformed or fails.
    """
    if not isinstance(bundle, dict) or bundle.get("mediaType") != MEDIA_TYPE:
        raise BundleError("mediaType", f"not a custody bundle (expected {MEDIA_TYPE})")
    model_id = _get(bundle, "model_id", str, "model_id")
    required = sorted(set(required_cosigners))
    witnesses = dict(witness_vkeys or {})
    try:
        cp, log_v, cosigners = _verify_note(
            bundle, trusted_log_vkey, witnesses, required,
            trust_log_on_first_use is not None, trust_log_on_first_use)
        if trusted_checkpoint is not None:
            _check_extends_trusted(bundle, cp, trusted_checkpoint)
        pinned = {f"custodian:{c}": NoteVerifier.from_vkey(v).public_key
                  for c, v in witnesses.items()}
        entries, keys = _verify_entries(bundle, cp, pinned)
        facts = check_lineage(model_id, entries, keys)
        check_provenance(facts, keys)
    except (KeyError, TypeError, AttributeError, ValueError) as exc:
        raise BundleError("structure", f"unexpected shape: {exc!r}") from exc
    notes = [] if trusted_log_vkey else [
        "log key trusted on first use (asked for explicitly); pin it with --log-key"]
    notes.append(f"{facts['bound']} actors' keys from their enrollment entries")
    return BundleReport(
        model_id=model_id, job_id=facts["job_id"], site=facts["site"],
        sealed_digest=str(facts["sealed"].event.body.get("sealed_digest")),
        checkpoint_size=cp.size, origin=cp.origin, log_key=log_v.vkey(),
        log_key_pinned=trusted_log_vkey is not None, cosigners=tuple(cosigners),
        entries=len(entries),
        kinds=dict(Counter(e.event.kind for e in entries.values())),
        datasets=tuple(sorted(facts["datasets"])), notes=tuple(notes))
