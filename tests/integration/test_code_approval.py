"""Issue 18, code approval: an owner's custodian releases keys only to code its
own officer approved, under an agreement that requires it.

On the sovereign path (Parsl, the enclave, the real custodian): without an
approval the AUS custodian refuses the key and names the measurement; with its
officer's approval for that agreement and area the job runs; another nation's
officer cannot approve for AUS's data; a revoked approval, one for another
area, and an approved file changed after approval are refused again.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from testkit import ROOT, World, make_world

from orchestrator.embedded import Deployment, submit
from orchestrator.embedded.code_review import approve_code, code_approvals, revoke_code
from orchestrator.errors import IntegrityError, SovereignError

pytestmark = pytest.mark.slow

AGREEMENT = "AUS-USA-SONAR-2026"
AREA = "undersea-autonomy"


def _small(root: Path, code: Path) -> Path:
    text = ((ROOT / "workflows" / "sonar_classification.toml").read_text()
            .replace('code = "sonar_classification.py"', f'code = "{code}"')
            .replace("folds = 13", "folds = 2").replace("epochs = 300", "epochs = 5")
            .replace("final_model = true", "final_model = false")
            .replace("checkpoint_every = 100", "checkpoint_every = 0"))
    path = root / "sonar-small.toml"
    path.write_text(text)
    return path


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> tuple[World, Path]:
    root = tmp_path_factory.mktemp("code-approval")
    agreement = root / "aus-usa-code.toml"
    agreement.write_text((ROOT / "agreements" / "aus-usa.toml").read_text().replace(
        'oversight_body = "AUKUS Joint Steering Group"',
        'oversight_body = "AUKUS Joint Steering Group"\ncode_approval = "required"'))
    code = root / "sonar_classification.py"
    code.write_bytes((ROOT / "workflows" / "sonar_classification.py").read_bytes())
    return make_world(root, agreement=agreement), _small(root, code)


def _refused(world: World, workflow: Path) -> str:
    with pytest.raises(SovereignError) as info:
        submit(world.state, workflow, "local")
    denied = Deployment(world.state).log().find("key.denied")
    assert denied, info.value.diagnostics()
    return str(denied[-1].event.body)


def test_only_code_the_owner_approved_gets_a_key(world: tuple[World, Path]) -> None:
    w, workflow = world
    assert "is not approved by the AUS officer" in _refused(w, workflow)
    with pytest.raises(IntegrityError, match="approves code for its own nation"):
        Deployment(w.state).officer_connect("USA")("AUS").accept(
            Deployment(w.state).officer("USA").sign_event("code.approved", {
                "approval_id": "code-usa", "nation": "AUS", "workflow": "x",
                "measurement": "sha256:" + "0" * 64, "agreement_id": AGREEMENT,
                "areas": [], "expires_at": "2099-01-01T00:00:00Z"}))
    other = approve_code(w.state, "AUS", workflow, agreement_id=AGREEMENT,
                         areas=("quantum-sensing",))
    assert "is not approved" in _refused(w, workflow)  # another area
    entry = approve_code(w.state, "AUS", workflow, agreement_id=AGREEMENT,
                         areas=(AREA,), days=30)
    result = submit(w.state, workflow, "local")
    assert result.tasks and all("test_accuracy" in m for m in result.tasks.values())
    listed = {a["approval_id"]: a for a in code_approvals(w.state, "AUS")}
    assert not listed[entry.event.body["approval_id"]]["revoked"]
    revoke_code(w.state, "AUS", entry.event.body["approval_id"], reason="withdrawn")
    assert "is not approved" in _refused(w, workflow)
    assert code_approvals(w.state, "AUS")[-1]["revoked"]
    assert other.event.body["approval_id"] in listed


def test_an_approved_file_changed_afterwards_is_refused(
        world: tuple[World, Path]) -> None:
    w, workflow = world
    approve_code(w.state, "AUS", workflow, agreement_id=AGREEMENT, areas=(AREA,))
    code = workflow.parent / "sonar_classification.py"
    code.write_bytes(code.read_bytes() + b"\n# changed after approval\n")
    assert "is not approved by the AUS officer" in _refused(w, workflow)
