"""A nation's printable sovereignty report: one self-contained HTML page.

``sovereign custody report --nation AUS --out report.html`` renders, for the
datasets and models a nation owns (and the jobs that touched them):

* the lineage graph datasets -> jobs -> models as inline SVG;
* the nation's agreements (status, signatures, supersession, termination, from
  :mod:`orchestrator.policy.standing`) and their signed events;
* every policy decision of its custodian with every rule's verdict and detail,
  its case-by-case approval requests and their outcome, transfers of its models
  (or to it) with the transfer decision's reasons;
* tables of key releases, denials (``key.denied``, ``model.open.denied``,
  refused or denied approvals, refused transfers and policy decisions that were
  not permits, with their reasons) and oversight notifications (kinds, hold,
  acknowledgement);
* the latest checkpoint (C2SP tlog-checkpoint) and the witnesses whose
  cosignatures (C2SP tlog-cosignature) verify;
* a verification status line: the officer's own verification of the log
  through its read API (:mod:`orchestrator.officer.verify`), with its pinned keys.

Everything comes from what the officer can read itself: the log's public entries
and checkpoint, and its own custodian's view of agreements and approvals.

The page has no external CSS, scripts, fonts or images; every text is escaped
with :func:`html.escape`.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from orchestrator.labels import parse_nation
from orchestrator.timeutil import rfc3339, system_clock
from orchestrator.tlog.events import SignedEntry

__all__ = ["render_report"]

_CSS = """
body{font:14px/1.45 "DejaVu Sans",Arial,sans-serif;margin:24px;color:#111}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:22px 0 6px;
border-bottom:1px solid #999}table{border-collapse:collapse;width:100%;
margin:4px 0 8px}th,td{border:1px solid #bbb;padding:3px 6px;text-align:left;
vertical-align:top;font-size:12px}th{background:#eee}code,pre{font:11px
"DejaVu Sans Mono",monospace;word-break:break-all}pre{white-space:pre-wrap;
background:#f6f6f6;padding:6px;border:1px solid #ccc}.ok{color:#075e07;
font-weight:bold}.bad{color:#a00000;font-weight:bold}.empty{color:#666;
font-style:italic}svg text{font:11px "DejaVu Sans",Arial,sans-serif}
@media print{body{margin:8mm}h2{break-after:avoid}tr{break-inside:avoid}}
"""

_e = html.escape


def _table(headers: Sequence[str], rows: Iterable[Sequence[object]], cls: str) -> str:
    body = "".join(
        "<tr>" + "".join(f"<td>{_e(str(c))}</td>" for c in row) + "</tr>"
        for row in rows
    )
    if not body:
        return f'<p class="empty" id="{cls}-empty">none</p>'
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    return f'<table id="{cls}"><tr>{head}</tr>{body}</table>'


def _graph(datasets: list[tuple[str, str]], jobs: list[tuple[str, list[str]]],
           models: list[tuple[str, str]]) -> str:
    """Inline SVG: columns datasets, jobs, models, transfers; edges by id."""
    columns: list[list[tuple[str, str]]] = [
        [(d, f"{name} ({d})") for d, name in datasets],
        [(j, j) for j, _ in jobs],
        [(m, m) for m, _ in models],
        [],
    ]
    titles = ("datasets", "jobs", "models", "transfers")
    width, box_w, box_h, gap = 1000, 220, 34, 14
    rows = max([len(c) for c in columns] + [1])
    height = 50 + rows * (box_h + gap)
    pos: dict[str, tuple[int, int]] = {}
    parts = [f'<svg id="lineage-graph" xmlns="http://www.w3.org/2000/svg" '
             f'width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
             'role="img" aria-label="lineage graph">']
    for col, (title, nodes) in enumerate(zip(titles, columns, strict=True)):
        x = 10 + col * 250
        parts.append(f'<text x="{x}" y="16" font-weight="bold">{_e(title)}</text>')
        if not nodes:
            parts.append(f'<text x="{x}" y="44" fill="#666">(none)</text>')
        for row, (node_id, label) in enumerate(nodes):
            y = 30 + row * (box_h + gap)
            pos[node_id] = (x, y)
            parts.append(
                f'<g class="node" data-id="{_e(node_id)}"><rect x="{x}" y="{y}" '
                f'width="{box_w}" height="{box_h}" rx="5" fill="#eef3fb" '
                f'stroke="#35507a"/><text x="{x + 6}" y="{y + 21}">'
                f"{_e(label[:34])}</text></g>")
    edges = [(d, j) for j, ds in jobs for d in ds]
    edges += [(j, m) for m, j in models]
    for a, b in edges:
        if a in pos and b in pos:
            (x1, y1), (x2, y2) = pos[a], pos[b]
            parts.append(
                f'<line x1="{x1 + box_w}" y1="{y1 + box_h // 2}" x2="{x2}" '
                f'y2="{y2 + box_h // 2}" stroke="#555" stroke-width="1.3"/>')
    return "".join(parts) + "</svg>"


@dataclass(frozen=True)
class ReportInputs:
    """What a report is rendered from, all read by the officer itself.

    Attributes
    ----------
    entries
        The custody log's entries (through its read API).
    verified, status, note, cosigners, size
        The outcome of the officer's verification of the log: whether it
        passed, the status line, the checkpoint note, who cosigned, its size.
    standings
        Agreement standings as the officer's custodian holds them (JSON).
    approvals
        The officer's custodian's approval requests (JSON).
    """

    entries: list[SignedEntry]
    verified: bool
    status: str
    note: str
    cosigners: list[str]
    size: int
    standings: list[dict[str, Any]]
    approvals: list[dict[str, Any]]


def render_report(nation: str, inputs: ReportInputs) -> str:
    """Return the HTML report of ``nation``'s datasets and models (see module doc).

    Raises
    ------
    ConfigError
        If ``nation`` is not an ISO 3166-1 alpha-3 code.
    """
    nation = parse_nation(nation, field="--nation")
    entries = inputs.entries
    own_ds = {str(e.event.body.get("dataset_id")): e for e in entries
              if e.event.kind == "dataset.sealed"
              and e.event.body.get("owner") == nation}
    own_models = {str(e.event.body.get("model_id")): e for e in entries
                  if e.event.kind == "model.sealed"
                  and nation in (e.event.body.get("label") or {}).get(
                      "ownerProducer", [])}
    ds_ids = set(own_ds)
    jobs = {str(e.event.body.get("job_id")): e for e in entries
            if e.event.kind == "request.submitted"
            and ds_ids & set(e.event.body.get("dataset_ids", []))}
    job_ids = set(jobs)

    def touches(e: SignedEntry) -> bool:
        b = e.event.body
        return (b.get("owner") == nation or b.get("nation") == nation
                or b.get("job_id") in job_ids or b.get("dataset_id") in ds_ids
                or b.get("object_id") in set(own_models))

    mine = [e for e in entries if touches(e)]

    def of(*kinds: str) -> list[SignedEntry]:
        return [e for e in mine if e.event.kind in kinds]

    releases = [(e.seq, e.event.time[:19], e.event.actor, e.event.body.get("job_id"),
                 e.event.body.get("task"), e.event.body.get("site"),
                 e.event.body.get("dataset_id"), e.event.body.get("grant_id"),
                 e.event.body.get("tee_mode")) for e in of("key.released")]
    def acked_by(notification_id: object) -> str:
        return next((str(e.event.body.get("statement", {}).get("nation"))
                     for e in entries if e.event.kind == "notification.acknowledged"
                     and e.event.body.get("notification_id") == notification_id),
                    "-")

    denials = []
    for e in of("key.denied", "model.open.denied", "policy.decided",
                "approval.denied", "approval.refused", "transfer.denied"):
        b = e.event.body
        if e.event.kind == "policy.decided":
            decision = b.get("decision", {})
            if decision.get("outcome") == "permit":
                continue
            reasons = [r.get("detail") for r in decision.get("reasons", [])
                       if not r.get("passed")] or [decision.get("outcome")]
        else:
            reasons = b.get("reasons") or [b.get("reason")]
        denials.append((e.seq, e.event.time[:19], e.event.kind, e.event.actor,
                        b.get("job_id") or b.get("object_id"),
                        "; ".join(str(r) for r in reasons)))
    notes = [(e.seq, e.event.time[:19], e.event.body.get("job_id"),
              e.event.body.get("agreement_id"), e.event.body.get("oversight_body"),
              ", ".join(e.event.body.get("kinds", ["per-request"])),
              e.event.body.get("gpu_hours"), e.event.body.get("threshold_gpu_hours"),
              "yes" if e.event.body.get("hold") else "no",
              acked_by(e.event.body.get("notification_id")))
             for e in of("notification.recorded")]
    decisions = []
    for e in of("policy.decided"):
        b = e.event.body
        decision = b.get("decision", {})
        decisions.append((
            e.seq, e.event.time[:19], e.event.actor, b.get("job_id"), b.get("site"),
            decision.get("outcome"),
            ", ".join(str(a) for a in [decision.get("agreement_id"),
                                       *decision.get("joint_agreement_ids", [])]
                      if a),
            "; ".join(f"{'✓' if r.get('passed') else '✗'} {r.get('rule')}: "
                      f"{r.get('detail')}" for r in decision.get("reasons", []))))
    agreement_rows = [
        (st["agreement_id"], st["version"], st["status"], ", ".join(st["parties"]),
         ", ".join(st["signed_by"]) or "-", st["detail"])
        for st in inputs.standings if nation in st["parties"]]
    my_agreements = {str(r[0]) for r in agreement_rows}
    agreement_events = [
        (e.seq, e.event.time[:19], e.event.kind, e.event.actor,
         e.event.body.get("agreement_id"), e.event.body.get("version", ""),
         e.event.body.get("reason")
         or (e.event.body.get("statement") or {}).get("reason", ""))
        for e in entries
        if e.event.kind.startswith("agreement.")
        and e.event.body.get("agreement_id") in my_agreements]
    approval_rows = [
        (r["request_id"], r["job_id"], r["site"], r["priority_area"], r["gpu_hours"],
         r["status"], (r.get("decision") or {}).get("expires_at", ""),
         "; ".join(r["reasons"]))
        for r in inputs.approvals if r["owner"] == nation]
    transfers = []
    own_model_ids = set(own_models)
    for e in entries:
        if not e.event.kind.startswith("transfer."):
            continue
        b = e.event.body
        if (b.get("model_id") not in own_model_ids and b.get("recipient") != nation
                and b.get("nation") != nation):
            continue
        decision = b.get("decision") or {}
        reasons = [f"{r.get('rule')}: {r.get('detail')}"
                   for r in decision.get("reasons", []) if not r.get("passed")]
        transfers.append((e.seq, e.event.time[:19], e.event.kind, e.event.actor,
                          b.get("model_id"), b.get("recipient"), b.get("end_use"),
                          decision.get("outcome", ""),
                          "; ".join(reasons) or str(b.get("reasons", "") or "")))
    ok, status, note = inputs.verified, inputs.status, inputs.note
    cosigners, size = inputs.cosigners, inputs.size
    finished = {str(e.event.body.get("job_id")): e.event.kind for e in entries
                if e.event.kind in ("job.completed", "job.failed")}

    def model_job(m: SignedEntry) -> str:
        return str((m.event.body.get("lineage") or {}).get("job_id", ""))

    graph = _graph(
        [(i, str(d.event.body.get("name"))) for i, d in own_ds.items()],
        [(i, list(j.event.body.get("dataset_ids", []))) for i, j in jobs.items()],
        [(i, model_job(m)) for i, m in own_models.items()],
    )
    ds_rows = [(i, d.event.body.get("name"),
                (d.event.body.get("label") or {}).get("classification"),
                ", ".join((d.event.body.get("label") or {}).get("releasableTo", [])),
                d.event.body.get("sealed_digest")) for i, d in own_ds.items()]
    model_rows = [(i, model_job(m), (m.event.body.get("label") or {}).get(
        "classification"), m.event.body.get("sealed_digest"),
        "yes" if m.event.body.get("provenance") else "no")
        for i, m in own_models.items()]
    job_rows = [(i, j.event.body.get("workflow"), ", ".join(j.event.body.get(
        "sites", [])), finished.get(i, "running").replace("job.", ""),
        j.event.time[:19]) for i, j in jobs.items()]
    title = f"Sovereignty report: {nation}"
    parts = [
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">",
        f"<title>{_e(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{_e(title)}</h1><p>Generated {_e(rfc3339(system_clock()))} from "
        f"the custody log's entries and checkpoint of size {size}.</p>",
        f'<p id="status" class="{"ok" if ok else "bad"}">{_e(status)}</p>',
        "<h2>Lineage: datasets → jobs → models → transfers</h2>", graph,
        "<h2>Datasets</h2>",
        _table(("id", "name", "classification", "releasable to", "sealed digest"),
               ds_rows, "datasets"),
        "<h2>Jobs touching them</h2>",
        _table(("job", "workflow", "site", "state", "created"), job_rows, "jobs"),
        "<h2>Models</h2>",
        _table(("model", "job", "classification", "sealed digest", "provenance"),
               model_rows, "models"),
        "<h2>Agreements</h2>",
        _table(("agreement", "version", "status", "parties", "signed by", "detail"),
               agreement_rows, "agreements"),
        "<h2>Agreement events (signatures, supersession, termination)</h2>",
        _table(("#", "time", "event", "by", "agreement", "version", "reason"),
               agreement_events, "agreement-events"),
        "<h2>Policy decisions (every rule, ✓ passed / ✗ failed)</h2>",
        _table(("#", "time", "by", "job", "site", "outcome", "agreements", "rules"),
               decisions, "decisions"),
        "<h2>Case-by-case approvals</h2>",
        _table(("request", "job", "site", "area", "GPU-hours", "status",
                "expires", "why asked"), approval_rows, "approvals"),
        "<h2>Transfers</h2>",
        _table(("#", "time", "event", "by", "model", "to", "end use", "outcome",
                "reasons"), transfers, "transfers"),
        "<h2>Key releases</h2>",
        _table(("#", "time", "by", "job", "task", "site", "dataset", "grant",
                "tee"), releases, "key-releases"),
        "<h2>Denials</h2>",
        _table(("#", "time", "kind", "by", "job / object", "reasons"), denials,
               "denials"),
        "<h2>Notifications</h2>",
        _table(("#", "time", "job", "agreement", "oversight body", "kinds",
                "GPU-hours", "threshold", "hold", "acknowledged by"), notes,
               "notifications"),
        "<h2>Latest checkpoint</h2>",
        f'<p id="checkpoint-summary">size {size}; cosigned by '
        f'{_e(", ".join(cosigners) or "nobody")}</p>'
        f'<pre id="checkpoint">{_e(note) or "none"}</pre>',
        "</body></html>\n",
    ]
    return "".join(parts)
