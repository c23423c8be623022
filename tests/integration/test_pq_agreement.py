"""An agreement that requires the post-quantum hybrid HPKE suite (ML-KEM-768 +
X25519): the whole sonar job runs, and every release is sealed with that suite."""

from __future__ import annotations

from pathlib import Path

import pytest
from testkit import ROOT, make_world

from orchestrator.crypto import HpkeSuite
from orchestrator.embedded import submit
from orchestrator.log.store import CustodyLog

pytestmark = pytest.mark.slow


def test_job_under_a_hybrid_hpke_agreement(tmp_path: Path) -> None:
    pq = tmp_path / "aus-usa-pq.toml"
    text = (ROOT / "agreements" / "aus-usa.toml").read_text()
    pq.write_text(text.replace('oversight_body =',
                               'hpke_suite = "mlkem768-x25519"\noversight_body =', 1))
    world = make_world(tmp_path, agreement=pq)
    result = submit(world.state, ROOT / "workflows" / "sonar_classification.toml",
                    "local")
    assert result.summary["mean_test_accuracy"] >= 0.847
    releases = CustodyLog(world.state.custody_db).find("key.released",
                                                      job_id=result.job_id)
    assert len(releases) == 14
    assert {r.event.body["hpke_suite"] for r in releases} == {
        HpkeSuite.MLKEM768_X25519.value}
