"""An owner's officer approves, revokes and lists code measurements.

The officer signs ``code.approved`` / ``code.revoked`` events with its own key
and delivers them to its nation's custodian with its own certificate (in
process in the embedded default), which checks and records them
(:mod:`orchestrator.nation.code_approvals`). The list is read from the custody
log, which every reader can check.
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

from orchestrator.embedded.deployment import Deployment, require_nation
from orchestrator.embedded.layout import StateDir
from orchestrator.errors import ConfigError
from orchestrator.nation.code_approvals import APPROVED_KIND, REVOKED_KIND
from orchestrator.submit.workflow import load_workflow
from orchestrator.timeutil import rfc3339, system_clock
from orchestrator.tlog.events import SignedEntry

__all__ = ["approve_code", "code_approvals", "revoke_code"]


def approve_code(state: StateDir, nation: str, workflow_path: Path, *,
                 agreement_id: str | None, areas: tuple[str, ...] = (),
                 days: float = 90.0) -> SignedEntry:
    """``nation``'s officer approves the measurement of the workflow at
    ``workflow_path`` (its code as it is now, in this environment) for
    ``agreement_id`` (``None``: domestic use) and ``areas`` (empty: all), for
    ``days`` days.

    Raises
    ------
    ConfigError
        A malformed workflow or a non-positive duration.
    IntegrityError
        The custodian refused the event.
    """
    if not 0 < days <= 3650:
        raise ConfigError("an approval lasts 0 < days <= 3650", field="--days")
    deployment = Deployment(state)
    require_nation(deployment, nation)
    workflow = load_workflow(workflow_path)
    officer = deployment.officer(nation)
    signed = officer.sign_event(APPROVED_KIND, {
        "approval_id": f"code-{uuid.uuid4().hex[:16]}", "nation": nation,
        "workflow": workflow.manifest.workflow.name,
        "measurement": workflow.measurement, "agreement_id": agreement_id,
        "areas": sorted(set(areas)),
        "expires_at": rfc3339(system_clock() + timedelta(days=days))})
    return deployment.officer_connect(nation)(nation).accept(signed)


def revoke_code(state: StateDir, nation: str, approval_id: str, *,
                reason: str) -> SignedEntry:
    """``nation``'s officer ends its approval ``approval_id``.

    Raises
    ------
    ConfigError
        An empty reason.
    IntegrityError
        The custodian holds no such approval of this officer.
    """
    if not reason.strip():
        raise ConfigError("a revocation needs a reason", field="--reason")
    deployment = Deployment(state)
    require_nation(deployment, nation)
    signed = deployment.officer(nation).sign_event(REVOKED_KIND, {
        "approval_id": approval_id, "nation": nation, "reason": reason})
    return deployment.officer_connect(nation)(nation).accept(signed)


def code_approvals(state: StateDir, nation: str | None = None,
                   log: Any = None) -> list[dict[str, Any]]:
    """Approvals in the custody log (of ``nation``'s officer, or all), each with
    ``revoked`` (and its ``seq``); newest last."""
    reader = log or Deployment(state).log()
    revoked = {str(e.event.body.get("approval_id")): e.seq
               for e in reader.find(REVOKED_KIND)}
    return [{**e.event.body, "seq": e.seq, "officer": e.event.actor,
             "revoked": str(e.event.body.get("approval_id")) in revoked}
            for e in reader.find(APPROVED_KIND)
            if nation is None or e.event.actor == f"officer:{nation}"]
