"""Offline custody bundles: a model's lineage, provable against one checkpoint.

``sovereign custody prove MODEL_ID`` writes one JSON document that an officer
verifies on a machine with nothing else (no state directory, no registry), in the
spirit of C2SP tlog-proof and Sigstore bundles:

* ``entries``: the exact leaf bytes (base64) and log index of the model's
  ``model.sealed`` event, every event of its job, the inputs' ``dataset.sealed``
  events and the ``nation.initialized`` / ``site.registered`` events that published
  the signing keys; each with an RFC 9162 inclusion proof against ONE checkpoint;
* ``checkpoint``: that checkpoint's signed note (C2SP tlog-checkpoint, with its
  tlog-cosignature lines), the log's and the witnesses' verifier keys;
* ``keys``: the event-signing public keys (key id -> actors, base64);
* ``provenance``: the site-signed DSSE envelope of the model's in-toto/SLSA
  provenance and the site's public key.

:func:`verify_bundle` checks all of it; a malformed or forged part raises
:class:`BundleError` naming the part. Limits: the orchestrator's key is not bound
to a log entry (it comes from the bundle, like the log key unless pinned).

References
----------
.. [1] RFC 9162, section 2.1.3.2 (verifying an inclusion proof).
.. [2] C2SP tlog-checkpoint, signed-note, tlog-cosignature and tlog-proof.
.. [3] DSSE v1; in-toto Statement v1; SLSA Provenance v1.
"""

from __future__ import annotations

import json
import sqlite3
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from contextlib import closing
from dataclasses import dataclass, field
from typing import Any

from orchestrator.canonical import b64d, b64e
from orchestrator.crypto import key_id_of, verify_signature
from orchestrator.errors import ConfigError, IntegrityError, SovereignError
from orchestrator.log.store import CustodyLog
from orchestrator.officer import open_tlog, trusted_keys, witness_verifiers
from orchestrator.protocol.provenance import (
    dsse_verify,
    statement_digest,
    subject_digest,
)
from orchestrator.registry import Registry
from orchestrator.state import StateDir
from orchestrator.timeutil import rfc3339, system_clock
from orchestrator.tlog.checkpoint import Checkpoint, open_note, parse_note
from orchestrator.tlog.events import SignedEntry
from orchestrator.tlog.merkle import leaf_hash, verify_inclusion
from orchestrator.tlog.names import origin_of_public, witness_key_name
from orchestrator.tlog.note import ALG_COSIGNATURE_V1, NoteVerifier

__all__ = ["MEDIA_TYPE", "BundleError", "BundleReport", "prove", "verify_bundle"]

MEDIA_TYPE = "application/vnd.sovereign.custody-bundle.v1+json"
"""``mediaType`` of version 1 of the bundle format."""


class BundleError(IntegrityError):
    """A custody bundle is malformed or fails verification; ``part`` names where."""

    def __init__(self, part: str, message: str) -> None:
        super().__init__(message, source="bundle", field=part)
        self.part = part


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


def _require(ok: bool, part: str, message: str) -> None:
    if not ok:
        raise BundleError(part, message)


def _guard(part: str, check: Callable[..., Any], *args: Any, **kw: Any) -> Any:
    """Run ``check(*args, **kw)``; re-raise a project error as :class:`BundleError`."""
    try:
        return check(*args, **kw)
    except BundleError:
        raise
    except SovereignError as exc:
        raise BundleError(part, exc.message) from exc


def _covering_note(state: StateDir, size_needed: int) -> bytes:
    """The latest cosigned checkpoint covering ``size_needed`` entries, else the
    latest covering one, else a freshly published one."""
    try:  # read-only; CustodyLog has no query over all checkpoints
        uri = f"file:{state.custody_db}?mode=ro"
        with closing(sqlite3.connect(uri, uri=True)) as conn:
            rows = conn.execute("SELECT note FROM checkpoints WHERE size >= ? "
                                "ORDER BY size DESC", (size_needed,)).fetchall()
    except sqlite3.Error:
        rows = []
    notes = [bytes(r[0]) for r in rows]
    for note in notes:
        if any(s.name.startswith("witness-") for s in parse_note(note).signatures):
            return note
    return notes[0] if notes else open_tlog(state).publish(rfc3339(system_clock()))


def prove(state: StateDir, model_id: str) -> dict[str, Any]:
    """Build (and self-verify) the offline custody bundle of model ``model_id``;
    publish a checkpoint first if no stored one covers the model's events.

    Raises
    ------
    NotFound, ConfigError
        Unknown model; a model without provenance (sealed before it existed).
    """
    record = Registry(state.registry_db).model(model_id)
    lineage = record.lineage or {}
    envelope = lineage.get("provenance")
    if not isinstance(envelope, dict):
        raise ConfigError(f"model {model_id} has no signed provenance", source=model_id)
    log = CustodyLog(state.custody_db)
    job_id = str(lineage.get("job_id", record.job_id))
    site = str(lineage.get("site", ""))
    found = [*log.find("model.sealed", model_id=model_id), *log.find(job_id=job_id),
             *log.find("site.registered", site=site)]
    for item in lineage.get("datasets", []):
        found += log.find("dataset.sealed", dataset_id=item["dataset_id"])
    for nation in sorted({e.event.actor.split(":", 1)[-1] for e in found}):
        found += log.find("nation.initialized", nation=nation)
    picked = {e.seq: e for e in found}
    note = _covering_note(state, max(picked) + 1)
    cp = parse_note(note).checkpoint
    tree = open_tlog(state).tree(cp.size)
    keys = trusted_keys(state)
    site_keys = [k for k in keys.values() if f"site:{site}" in k.actors]
    if not site_keys:
        raise ConfigError(f"site {site!r} of model {model_id} is not registered")
    site_key = site_keys[0]
    bundle = {
        "mediaType": MEDIA_TYPE,
        "model_id": model_id,
        "checkpoint": {
            "note": note.decode("utf-8"),
            "log_key": open_tlog(state).verifier().vkey(),
            "witness_keys": {c: v.vkey() for c, v in witness_verifiers(state).items()},
        },
        "entries": [
            {"index": seq, "leaf": b64e(picked[seq].leaf_bytes()),
             "proof": [b64e(h) for h in tree.inclusion_proof(seq, cp.size)]}
            for seq in sorted(picked)
        ],
        "keys": {
            kid: {"actors": sorted(keys[kid].actors),
                  "public_key": b64e(keys[kid].public_key)}
            for kid in sorted({e.signer for e in picked.values()} & set(keys))
        },
        "provenance": {"envelope": envelope, "site": site,
                       "key_id": site_key.key_id,
                       "public_key": b64e(site_key.public_key)},
    }
    verify_bundle(bundle)
    return bundle


def _verify_note(bundle: Mapping[str, Any], pinned: str | None,
                 required: list[str]) -> tuple[Checkpoint, NoteVerifier, list[str]]:
    part = _get(bundle, "checkpoint", dict, "checkpoint")
    note = _get(part, "note", str, "checkpoint").encode("utf-8")
    if pinned is not None:
        log_v = _guard("--log-key", NoteVerifier.from_vkey, pinned)
    else:
        text = _get(part, "log_key", str, "checkpoint.log_key")
        log_v = _guard("checkpoint.log_key", NoteVerifier.from_vkey, text)
    origin = origin_of_public(log_v.public_key)
    _require(log_v.name == origin, "checkpoint.log_key",
             f"key name is {log_v.name!r}, not the log's origin {origin!r}")
    wkeys = _get(part, "witness_keys", dict, "checkpoint.witness_keys")
    witnesses = {c: _guard(f"checkpoint.witness_keys.{c}", NoteVerifier.from_vkey,
                           str(t)) for c, t in wkeys.items()}
    for code, v in witnesses.items():
        _require(v.name == witness_key_name(code) and v.alg == ALG_COSIGNATURE_V1,
                 f"checkpoint.witness_keys.{code}", "not a cosignature/v1 witness key")
    unknown = [n for n in required if n not in witnesses]
    _require(not unknown, "checkpoint", f"required cosigner(s) {', '.join(unknown)}"
             " have no witness key in the bundle")
    verified = _guard(
        "checkpoint", open_note, note, [log_v, *witnesses.values()],
        required=[log_v.name, *(witness_key_name(n) for n in required)], origin=origin)
    cosigners = sorted(c for c, v in witnesses.items() if v.name in verified.verified)
    return verified.checkpoint, log_v, cosigners


def _verify_entries(bundle: Mapping[str, Any],
                    cp: Checkpoint) -> tuple[dict[int, SignedEntry], dict[str, Any]]:
    keys: dict[str, tuple[bytes, set[str]]] = {}
    for kid, item in _get(bundle, "keys", dict, "keys").items():
        pub = _b64(_get(item, "public_key", str, f"keys.{kid}"), f"keys.{kid}")
        _require(len(pub) == 32 and key_id_of(pub) == kid, f"keys.{kid}",
                 "public key does not match its key id")
        keys[kid] = (pub, set(_get(item, "actors", list, f"keys.{kid}")))
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
        pub, actors = keys.get(entry.signer, (b"", set()))
        _require(entry.event.actor in actors, part, f"key {entry.signer} is not in "
                 f"the bundle's keys for {entry.event.actor}")
        _guard(f"{part} signature", verify_signature, pub, entry.signature,
               entry.signed_bytes())
        entries[index] = entry
    for i, entry in entries.items():
        prev = entries.get(i - 1)
        _require(prev is None or entry.prev_hash == prev.entry_hash(), f"entry {i}",
                 f"prev_hash does not chain to entry {i - 1}")
    return entries, {k: v[0] for k, v in keys.items()}


def _one(entries: Iterable[SignedEntry], what: str) -> SignedEntry:
    found = list(entries)
    _require(len(found) == 1, "entries", f"{len(found)} {what} events, expected one")
    return found[0]


def _check_lineage(model_id: str, entries: dict[int, SignedEntry],
                   keys: Mapping[str, bytes]) -> dict[str, Any]:
    """Completeness of the job and the key bindings; return facts for the report."""
    evs = list(entries.values())

    def kind(k: str, **m: Any) -> list[SignedEntry]:
        return [e for e in evs if e.event.kind == k
                and all(e.event.body.get(a) == b for a, b in m.items())]

    sealed = _one(kind("model.sealed", model_id=model_id), f"model.sealed {model_id}")
    lineage = sealed.event.body.get("lineage") or {}
    job_id, site = str(lineage.get("job_id")), str(lineage.get("site"))
    request = _one(kind("request.submitted", job_id=job_id), f"request for {job_id}")
    _one(kind("job.completed", job_id=job_id) + kind("job.failed", job_id=job_id),
         f"job.completed/job.failed for {job_id}")
    datasets = {}
    for item in lineage.get("datasets", []):
        ds = _one(kind("dataset.sealed", dataset_id=item["dataset_id"]),
                  f"dataset.sealed {item['dataset_id']}")
        _require(ds.event.body.get("sealed_digest") == item.get("sealed_digest"),
                 f"entry {ds.seq}", "dataset digest differs from the model's lineage")
        datasets[item["dataset_id"]] = ds
        for owner in ds.event.body.get("label", {}).get("ownerProducer", []):
            _one(kind("policy.decided", job_id=job_id, owner=owner),
                 f"policy.decided by {owner} for {job_id}")
    for task in request.event.body.get("tasks", []):
        for k in ("task.started", "task.completed"):
            done = kind(k, job_id=job_id, task=task)
            _require(bool(done), "entries", f"task {task} has no {k} event")
            grants = done[-1].event.body.get("grants", [])
            for grant in grants if k == "task.completed" else []:
                _one(kind("key.released", grant_id=grant), f"key.released {grant}")
    bound = 0
    for e in kind("nation.initialized") + kind("site.registered"):
        b = e.event.body
        pairs = [(f"custodian:{b.get('nation')}", b.get("custodian_public")),
                 (f"officer:{b.get('nation')}", b.get("officer_public")),
                 (f"site:{b.get('site')}", b.get("signing_public"))]
        for actor, pub in pairs:
            signed = [x for x in evs if x.event.actor == actor]
            for ev in signed if isinstance(pub, str) else []:
                _require(keys.get(ev.signer) == _b64(pub, f"entry {e.seq}"),
                         f"entry {ev.seq}", f"not signed by {actor}'s registered key")
            bound += bool(signed) and isinstance(pub, str)
    return {"sealed": sealed, "job_id": job_id, "site": site, "request": request,
            "datasets": datasets, "bound": bound}


def _check_provenance(bundle: Mapping[str, Any], facts: dict[str, Any],
                      keys: Mapping[str, bytes],
                      entries: dict[int, SignedEntry]) -> None:
    part = _get(bundle, "provenance", dict, "provenance")
    kid = _get(part, "key_id", str, "provenance.key_id")
    pub = _b64(_get(part, "public_key", str, "provenance"), "provenance.public_key")
    site, p = facts["site"], "provenance"
    signers = {e.signer for e in entries.values() if e.event.actor == f"site:{site}"}
    _require(part.get("site") == site and keys.get(kid) == pub and signers == {kid},
             p, f"provenance key {kid} is not the key that signed site:{site}'s "
             f"events ({', '.join(sorted(signers))})")
    envelope = _get(part, "envelope", dict, "provenance.envelope")
    st = _guard(p, dsse_verify, envelope, {kid: pub})
    body = facts["sealed"].event.body
    digest = "sha256:" + _guard(p, subject_digest, st, body["model_id"])
    _require(digest == body.get("sealed_digest"), p, f"subject digest {digest} is "
             f"not the sealed digest {body.get('sealed_digest')} of the model")
    pred = st.get("predicate", {})
    bd, rd = pred.get("buildDefinition", {}), pred.get("runDetails", {})
    _require(rd.get("builder", {}).get("id") == f"site:{site}", p,
             f"builder is not site:{site}")
    deps = {d.get("uri"): d.get("digest", {}).get("sha256")
            for d in bd.get("resolvedDependencies", []) if isinstance(d, dict)}
    for ds_id, ds in facts["datasets"].items():
        want = str(ds.event.body.get("sealed_digest", "")).removeprefix("sha256:")
        got = deps.get(f"dataset:{ds_id}")
        _require(got == want, p, f"input dataset {ds_id} digest {got} is not the "
                 f"sealed digest {want} of its dataset.sealed event")
    req = facts["request"].event.body
    _require(deps.get(f"workflow:{req.get('workflow')}")
             == str(req.get("code_measurement", "")).removeprefix("sha256:"), p,
             "workflow code digest is not the job's code measurement")
    _require(body.get("provenance_digest") in (None, statement_digest(envelope)), p,
             "statement is not the one model.sealed commits to (provenance_digest)")


def verify_bundle(
    bundle: dict[str, Any],
    *,
    trusted_log_vkey: str | None = None,
    required_cosigners: Iterable[str] = (),
) -> BundleReport:
    """Verify a custody bundle offline and return what it proves.

    (1) the checkpoint note: the log's signature (pinned ``trusted_log_vkey``,
        else the bundle's own key: trust on first use) and the cosignature of
        every nation in ``required_cosigners``; (2) each leaf's RFC 9162 inclusion
        proof against the checkpoint root (section 2.1.3.2); (3) each event's
        Ed25519 signature by a bundled key allowed for its actor, and that key
        equals the one the actor's ``nation.initialized``/``site.registered``
        entry published; (4) the hash chain between adjacent included entries;
        (5) completeness: the model's ``model.sealed``, the job's request, every
        owner's decision, every task's start and completion, every grant's
        ``key.released`` and each input's ``dataset.sealed``; (6) the provenance:
        DSSE signature by the key that signed the site's events, subject digest =
        the sealed digest, statement = the logged ``provenance_digest``, input
        dataset digests and code measurement = the logged ones.

    Raises
    ------
    BundleError
        Naming the part that is malformed or fails.
    ConfigError
        If ``trusted_log_vkey`` is malformed (as a :class:`BundleError`).
    """
    if not isinstance(bundle, dict) or bundle.get("mediaType") != MEDIA_TYPE:
        raise BundleError("mediaType", f"not a custody bundle (expected {MEDIA_TYPE})")
    model_id = _get(bundle, "model_id", str, "model_id")
    required = sorted(set(required_cosigners))
    try:
        cp, log_v, cosigners = _verify_note(bundle, trusted_log_vkey, required)
        entries, keys = _verify_entries(bundle, cp)
        facts = _check_lineage(model_id, entries, keys)
        _check_provenance(bundle, facts, keys, entries)
    except (KeyError, TypeError, AttributeError, ValueError) as exc:
        raise BundleError("structure", f"unexpected shape: {exc!r}") from exc
    notes = [] if trusted_log_vkey else [
        "log key taken from the bundle itself (trust on first use); pin it with "
        "--log-key"]
    notes.append(f"{facts['bound']} signing keys bound to their registration entries")
    return BundleReport(
        model_id=model_id, job_id=facts["job_id"], site=facts["site"],
        sealed_digest=str(facts["sealed"].event.body.get("sealed_digest")),
        checkpoint_size=cp.size, origin=cp.origin, log_key=log_v.vkey(),
        log_key_pinned=trusted_log_vkey is not None, cosigners=tuple(cosigners),
        entries=len(entries),
        kinds=dict(Counter(e.event.kind for e in entries.values())),
        datasets=tuple(sorted(facts["datasets"])), notes=tuple(notes))
