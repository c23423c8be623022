"""The output rules at the enclave boundary (orchestrator.protocol.outputs)."""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from orchestrator.errors import ConfigError
from orchestrator.protocol.agreements import Agreement
from orchestrator.protocol.outputs import (
    DEFAULT_RELEASED_METRICS,
    OutputRules,
    screen_metrics,
)
from orchestrator.protocol.release import Grant

RULES = OutputRules(("test_accuracy", "final_loss", "test_rows"), 2)

values = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(),
                   st.booleans(), st.text(max_size=5), st.none(),
                   st.lists(st.floats(), max_size=3))
outputs = st.dictionaries(st.one_of(st.sampled_from(RULES.metrics),
                                    st.text(max_size=8), st.integers()),
                          values, max_size=12)


@given(outputs)
def test_what_leaves_is_allowed_finite_bounded_and_everything_is_counted(
        metrics: dict[Any, Any]) -> None:
    out = screen_metrics(metrics, RULES)
    assert set(out.released) <= set(RULES.metrics)
    assert len(out.released) <= RULES.max_count
    assert all(type(v) is float and math.isfinite(v) for v in out.released.values())
    assert len(out.released) + sum(out.refused.values()) == len(metrics)
    assert all(isinstance(k, str) and isinstance(n, int) for k, n in
               out.refused.items())  # counts only: no name, no value


def test_each_rule_is_named() -> None:
    out = screen_metrics({"test_accuracy": "0.5", "final_loss": math.inf,
                          "test_rows": True, "row0": 0.1, "x": 1.0}, RULES)
    assert out.released == {}
    assert out.refused == {"not-a-number": 2, "not-finite": 1, "not-allowed": 2}
    assert screen_metrics([0.1, 0.2], RULES).refused == {"not-a-mapping": 1}
    over = screen_metrics({"test_accuracy": 1, "final_loss": 2, "test_rows": 3},
                          RULES)
    assert over.released == {"final_loss": 2.0, "test_accuracy": 1.0}
    assert over.refused == {"over-the-bound": 1}
    assert screen_metrics({"test_accuracy": 10 ** 400}, RULES).refused == {
        "not-finite": 1}


def test_owners_combine_to_what_every_one_allows() -> None:
    a = OutputRules(("test_accuracy", "final_loss"), 8)
    b = OutputRules(("test_accuracy", "test_rows"), 3)
    both = OutputRules.combine([a, b])
    assert both.metrics == ("test_accuracy",) and both.max_count == 3
    assert OutputRules.combine([]).metrics == ()  # no key, nothing leaves


def test_agreements_name_them_and_older_documents_keep_their_digest() -> None:
    from testkit import ROOT

    from orchestrator.protocol.agreements import load_agreement

    agreement = load_agreement(ROOT / "agreements" / "aus-usa.toml")
    assert agreement.output_rules().metrics == DEFAULT_RELEASED_METRICS
    assert "released_metrics" not in agreement.to_json()  # digest unchanged
    narrowed = Agreement.from_json({**agreement.to_json(),
                                    "released_metrics": ["test_accuracy"],
                                    "max_released_metrics": 4})
    assert narrowed.output_rules() == OutputRules(("test_accuracy",), 4)
    assert narrowed.digest() != agreement.digest()
    with pytest.raises(ConfigError, match="released_metrics"):
        Agreement.from_json({**agreement.to_json(), "released_metrics": ["a b"]})
    with pytest.raises(ConfigError, match="max_released_metrics"):
        Agreement.from_json({**agreement.to_json(), "max_released_metrics": 0})


def test_grants_carry_the_rules_over_the_wire() -> None:
    grant = Grant(grant_id="g", owner="AUS", dataset_id="d", request_digest="r",
                  kek_id="k", kek_version=1, hpke_suite="x25519", sealed_dek="s",
                  tee_mode="none", expires_at="2026-01-01T00:00:00Z", log_index=1,
                  output_rules=RULES)
    assert Grant.from_json(grant.to_json()) == grant
    older = {k: v for k, v in grant.to_json().items() if k != "output_rules"}
    assert Grant.from_json(older).output_rules == OutputRules()
    with pytest.raises(ConfigError):
        Grant.from_json({**grant.to_json(), "output_rules": {"metrics": "all"}})
