"""Fuzzing the inputs every party reads: mutated site configs, agreements and
workflow manifests (from the project's real files), CSVs, and the bodies of the
custody log service. Each refusal is a :class:`SovereignError` (a named file or
field, a 4xx on the wire), never another exception or a 5xx, and a refused
write leaves the log unchanged. About 5,000 cases in all (hypothesis, fixed
example counts)."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from orchestrator.canonical import b64e
from orchestrator.crypto import SigningKey
from orchestrator.errors import SovereignError
from orchestrator.log.operator import LogOperator, LogState
from orchestrator.log.service import create_app
from orchestrator.protocol.agreements import parse_agreement
from orchestrator.protocol.log import SignedEvent
from orchestrator.submit.siteconfig import parse_site_config
from orchestrator.submit.workflow import load_workflow
from orchestrator.tabular import parse_csv
from orchestrator.tlog.events import CustodyEvent

ROOT = Path(__file__).resolve().parents[2]
SITE_CONFIGS = sorted((ROOT / "site_configs").glob("*.toml"))
AGREEMENTS = sorted((ROOT / "agreements").glob("*.toml"))
WORKFLOW = ROOT / "workflows" / "sonar_classification.toml"

SETTINGS = settings(deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.function_scoped_fixture,
                                           HealthCheck.too_slow])

#: Values a mutated TOML line may take.
VALUES = st.one_of(
    st.just('""'), st.just("-1"), st.just("0"), st.just("1e309"), st.just("nan"),
    st.just("[]"), st.just("{}"), st.just('"\\u0000"'), st.just("true"),
    st.just('"' + "x" * 300 + '"'), st.just("2026-13-40"), st.just("[1, \"a\"]"),
    st.integers(-2**70, 2**70).map(str),
    st.text(max_size=20).map(json.dumps))


@st.composite
def mutated(draw: st.DrawFn, documents: list[Path]) -> str:
    """A real document with one to three lines deleted, duplicated, or given
    another value, or with random text inserted."""
    lines = draw(st.sampled_from(documents)).read_text().splitlines()
    for _ in range(draw(st.integers(1, 3))):
        if not lines:
            break
        i = draw(st.integers(0, len(lines) - 1))
        op = draw(st.sampled_from(["delete", "duplicate", "value", "insert"]))
        if op == "delete":
            del lines[i]
        elif op == "duplicate":
            lines.insert(i, lines[i])
        elif op == "value" and "=" in lines[i]:
            key = lines[i].split("=", 1)[0]
            lines[i] = f"{key}= {draw(VALUES)}"
        else:
            lines.insert(i, draw(st.text(max_size=40)))
    return "\n".join(lines) + "\n"


@given(mutated(SITE_CONFIGS))
@settings(SETTINGS, max_examples=1200)
def test_mutated_site_configs_parse_or_are_refused_by_name(text: str) -> None:
    try:
        parse_site_config(text, source="fuzz.toml")
    except SovereignError as exc:
        assert exc.source == "fuzz.toml" or exc.field, exc


@given(mutated(AGREEMENTS))
@settings(SETTINGS, max_examples=1200)
def test_mutated_agreements_parse_or_are_refused_by_name(text: str) -> None:
    try:
        parse_agreement(text, source="fuzz.toml")
    except SovereignError as exc:
        assert exc.source == "fuzz.toml" or exc.field, exc


@pytest.fixture(scope="module")
def workflow_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("wf")
    shutil.copy(ROOT / "workflows" / "sonar_classification.py", root)
    return root


@given(text=mutated([WORKFLOW]))
@settings(SETTINGS, max_examples=500)
def test_mutated_workflow_manifests_load_or_are_refused(workflow_dir: Path,
                                                        text: str) -> None:
    path = workflow_dir / "wf.toml"
    path.write_text(text)
    try:
        load_workflow(path)
    except SovereignError:
        pass


@given(data=st.binary(max_size=400) | st.lists(
    st.lists(st.sampled_from(["0.1", "1", "-2e3", "R", "M", "", "nan", "inf", "x",
                              "\u00e9", " 3 "]), min_size=1, max_size=5),
    max_size=6).map(lambda rows: "\n".join(",".join(r) for r in rows).encode()),
    column=st.sampled_from([-1, 0, 3, 99, "class", "--1"]))
@settings(SETTINGS, max_examples=1000)
def test_arbitrary_csvs_parse_or_are_refused(data: bytes, column: int | str) -> None:
    try:
        parse_csv(data, label_column=column)
    except SovereignError:
        pass


# -- the custody log service ---------------------------------------------------------
class Log:
    def __init__(self, root: Path) -> None:
        self.operator = LogOperator(LogState(root / "log"))
        self.site = SigningKey.generate()
        body = {"actor": "site:local", "key_id": self.site.key_id,
                "public_key": b64e(self.site.public_bytes())}
        self.operator.enroll(SignedEvent.create(
            CustodyEvent.create("actor.enrolled", "site:local", body), self.site))
        self.client = TestClient(create_app(self.operator),
                                 raise_server_exceptions=False)

    def valid(self) -> dict[str, Any]:
        event = CustodyEvent.create("task.started", "site:local", {"job_id": "j"})
        return SignedEvent.create(event, self.site).to_json()


@pytest.fixture(scope="module")
def log(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Log]:
    yield Log(tmp_path_factory.mktemp("log"))


JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-2**64, 2**64) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4)
    | st.dictionaries(st.text(max_size=10), inner, max_size=4), max_leaves=12)


def _mutate(doc: Any, path: list[str], value: Any) -> Any:
    if not path or not isinstance(doc, dict) or path[0] not in doc:
        return value
    return {**doc, path[0]: _mutate(doc[path[0]], path[1:], value)}


@given(body=JSON, where=st.lists(st.sampled_from(
    ["event", "signature", "key_id", "body", "kind", "actor", "event_id", "time",
     "job_id"]), max_size=3), whole=st.booleans())
@settings(SETTINGS, max_examples=700)
def test_bad_log_writes_get_a_4xx_and_change_nothing(log: Log, body: Any,
                                                     where: list[str],
                                                     whole: bool) -> None:
    size = log.operator.size()
    sent = body if whole else _mutate(log.valid(), where or ["signature"], body)
    response = log.client.post("/v1/entries", json=sent)
    assert response.status_code < 500, response.text
    if response.status_code != 200:
        assert 400 <= response.status_code < 500
        assert log.operator.size() == size


@given(path=st.text(alphabet="0123456789x/.pentris", max_size=24),
       old=st.integers(-5, 10**6), new=st.integers(-5, 10**6))
@settings(SETTINGS, max_examples=500)
def test_bad_log_reads_get_a_4xx(log: Log, path: str, old: int, new: int) -> None:
    for url in (f"/tile/{path}", f"/v1/proof/consistency?old={old}&new={new}",
                f"/v1/proof/inclusion?index={old}&size={new}"):
        response = log.client.get(url)
        assert response.status_code < 500, (url, response.text)
