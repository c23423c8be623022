"""The embedded default: every party on one machine, each in its own directory.

:class:`~orchestrator.embedded.deployment.Deployment` is the composition root;
:mod:`.parties` and :mod:`.oversight` hold the flows the CLI runs (each party
acting on its own directory, hand-overs done in-process).
"""

from orchestrator.embedded.deployment import Deployment
from orchestrator.embedded.layout import StateDir, resolve_state_dir
from orchestrator.embedded.oversight import (
    acknowledge,
    approval_requests,
    consent_to_transfer,
    decide_request,
    job_view,
    notifications,
    prove,
    publish_checkpoint,
    receive_model,
    render_nation_report,
    resume,
    submit,
    trace_model,
    transfer_history,
    transfer_model,
    verify_custody,
    witness,
)
from orchestrator.embedded.parties import (
    accredit_site,
    add_agreement,
    init_nation,
    open_model,
    register_site,
    revoke_accreditation,
    seal_dataset,
    sign_agreement,
    terminate_agreement,
)

__all__ = [
    "Deployment",
    "StateDir",
    "accredit_site",
    "acknowledge",
    "add_agreement",
    "approval_requests",
    "consent_to_transfer",
    "decide_request",
    "init_nation",
    "job_view",
    "notifications",
    "open_model",
    "prove",
    "publish_checkpoint",
    "receive_model",
    "register_site",
    "render_nation_report",
    "resolve_state_dir",
    "resume",
    "revoke_accreditation",
    "seal_dataset",
    "sign_agreement",
    "submit",
    "terminate_agreement",
    "trace_model",
    "transfer_history",
    "transfer_model",
    "verify_custody",
    "witness",
]
