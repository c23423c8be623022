"""Sealed checkpoints (reliability plan, test 23): atomic, encrypted, resumable."""

from __future__ import annotations

import importlib.util
import io
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import torch

from orchestrator.crypto import atomic_write_bytes, new_dek
from orchestrator.errors import IntegrityError
from orchestrator.site import checkpoint as ckpt_module
from orchestrator.site.api import Table, TaskOutput
from orchestrator.site.checkpoint import (
    SealedCheckpoints,
    checkpoint_dir,
    remove_task_checkpoints,
    resume_key,
)
from orchestrator.tabular import parse_csv

ROOT = Path(__file__).resolve().parents[2]
LABEL = {"classification": "SECRET", "ownerProducer": ["AUS"], "releasableTo": ["AUS"]}
SECRET = b"PLAINTEXT-CANARY-0.7193728465" * 20


def _store(root: Path, key: bytes, *, task: str = "final", attempt: str = "a1",
           events: list[tuple[str, dict[str, Any]]] | None = None,
           ) -> SealedCheckpoints:
    sink = events if events is not None else []

    def wrap(dek: bytes, object_id: str, label: dict[str, Any]) -> dict[str, Any]:
        return {"AUS": {"owner": "AUS", "kek_id": "k", "kek_version": 1,
                        "wrapped_dek": "stand-in"}}

    return SealedCheckpoints(
        checkpoint_dir(root, "job-0123"), job_id="job-0123", task=task, site="local",
        attempt_id=attempt, code_measurement="sha256:00", label=LABEL,
        inputs=[{"dataset_id": "ds-1", "manifest_digest": "sha256:11"}], key=key,
        wrap_for_owners=wrap, on_event=lambda kind, body: sink.append((kind, body)),
    )


def _files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()]


def test_round_trip_new_attempt_resumes_and_nothing_in_the_clear(
        tmp_path: Path) -> None:
    key = resume_key(new_dek(), dataset_id="ds-1", job_id="job-0123", task="final")
    events: list[tuple[str, dict[str, Any]]] = []
    first = _store(tmp_path, key, events=events)
    assert first.load() is None
    first.save(SECRET + b"-e50", 50)
    first.save(SECRET + b"-e100", 100)
    second = _store(tmp_path, key, attempt="a2", events=events)
    assert second.load() == (SECRET + b"-e100", 100)
    kinds = [k for k, _ in events]
    assert kinds == ["checkpoint.sealed", "checkpoint.sealed", "checkpoint.restored"]
    assert events[2][1]["sealed_by_attempt_id"] == "a1"
    assert events[2][1]["attempt_id"] == "a2"
    names = sorted(p.name for p in _files(tmp_path))
    assert names == ["final.keys.json", "final.sealed"]
    for path in _files(tmp_path):
        assert path.stat().st_mode & 0o777 == 0o600
        assert b"PLAINTEXT-CANARY" not in path.read_bytes()
    remove_task_checkpoints(tmp_path, "job-0123", "final")
    assert _files(tmp_path) == []


def test_kill_between_the_two_writes_keeps_the_old_checkpoint(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    key = new_dek()
    store = _store(tmp_path, key)
    store.save(b"old state", 10)
    real = atomic_write_bytes
    calls: list[Path] = []

    def dies_on_envelope(path: Path, data: bytes, *, mode: int = 0o600) -> None:
        calls.append(path)
        if path.suffix == ".sealed":
            raise KeyboardInterrupt("SIGKILL stand-in")  # envelope never renamed
        real(path, data, mode=mode)

    monkeypatch.setattr(ckpt_module, "atomic_write_bytes", dies_on_envelope)
    with pytest.raises(KeyboardInterrupt):
        store.save(b"new state", 20)
    monkeypatch.setattr(ckpt_module, "atomic_write_bytes", real)
    assert [p.suffix for p in calls] == [".json", ".sealed"]
    assert _store(tmp_path, key, attempt="a2").load() == (b"old state", 10)
    store.save(b"newer state", 30)  # and the next save continues from there
    assert _store(tmp_path, key, attempt="a3").load() == (b"newer state", 30)


def test_leftover_temporaries_are_swept(tmp_path: Path) -> None:
    key = new_dek()
    store = _store(tmp_path, key)
    store.save(b"state", 1)
    (store.directory / ".final.sealed.deadbeef.tmp").write_bytes(b"partial")
    assert store.load() == (b"state", 1)
    assert not (store.directory / ".final.sealed.deadbeef.tmp").exists()


@pytest.mark.parametrize("damage", ["flip", "truncate", "keys"])
def test_tampered_checkpoint_fails_closed(tmp_path: Path, damage: str) -> None:
    key = new_dek()
    store = _store(tmp_path, key)
    store.save(b"state", 5)
    if damage == "keys":
        store.keys_path.write_text('{"generations": []}')
    else:
        blob = bytearray(store.sealed_path.read_bytes())
        if damage == "flip":
            blob[-20] ^= 1
        else:
            del blob[-10:]
        store.sealed_path.write_bytes(bytes(blob))
    with pytest.raises(IntegrityError):
        _store(tmp_path, key, attempt="a2").load()


def test_another_task_or_dataset_key_cannot_open_it(tmp_path: Path) -> None:
    dek = new_dek()
    key = resume_key(dek, dataset_id="ds-1", job_id="job-0123", task="final")
    _store(tmp_path, key).save(b"state", 5)
    other = resume_key(dek, dataset_id="ds-1", job_id="job-0123", task="fold-0")
    assert other != key
    with pytest.raises(IntegrityError):
        _store(tmp_path, other, attempt="a2").load()
    # moving the files to another task's name does not help either
    store = _store(tmp_path, key)
    moved = _store(tmp_path, key, task="fold-0")
    store.sealed_path.rename(moved.sealed_path)
    store.keys_path.rename(moved.keys_path)
    with pytest.raises(IntegrityError):
        moved.load()


# -- the sonar workflow resumes to bit-identical results ---------------------------
def _workflow() -> ModuleType:
    path = ROOT / "workflows" / "sonar_classification.py"
    spec = importlib.util.spec_from_file_location("sonar_ckpt", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class Killed(Exception):
    """Stands in for the loss of the worker right after a checkpoint."""


@dataclass
class Ctx:
    task: str
    params: dict[str, Any]
    table: Table
    saved: list[tuple[bytes, int]] = field(default_factory=list)
    kill_after: int | None = None
    resume_from: tuple[bytes, int] | None = None

    def dataset(self) -> Table:
        return self.table

    def progress(self, done: int, total: int) -> None:
        pass

    def save_checkpoint(self, state_bytes: bytes, epoch: int) -> None:
        self.saved.append((state_bytes, epoch))
        if self.kill_after is not None and epoch >= self.kill_after:
            raise Killed(epoch)

    def load_checkpoint(self) -> tuple[bytes, int] | None:
        return self.resume_from


@pytest.mark.parametrize("task", ["fold-4", "final"])
def test_sonar_resumed_run_equals_uninterrupted(task: str) -> None:
    wf = _workflow()
    table = parse_csv((ROOT / "data" / "sonar" / "sonar.csv").read_bytes(),
                      source="sonar.csv")
    params = dict(wf.DEFAULTS)
    whole = Ctx(task, params, table)
    expected: TaskOutput = wf.run_task(whole)
    assert [e for _, e in whole.saved] == [100, 200]  # never after the last epoch
    lost = Ctx(task, params, table, kill_after=100)
    with pytest.raises(Killed):
        wf.run_task(lost)
    resumed = Ctx(task, params, table, resume_from=lost.saved[-1])
    got: TaskOutput = wf.run_task(resumed)
    assert [e for _, e in resumed.saved] == [200]
    drop = {"wall_seconds"}
    assert {k: v for k, v in got.metrics.items() if k not in drop} == {
        k: v for k, v in expected.metrics.items() if k not in drop}
    if task == "final":
        assert got.model_state is not None and expected.model_state is not None
        a = torch.load(io.BytesIO(got.model_state), weights_only=True)
        b = torch.load(io.BytesIO(expected.model_state), weights_only=True)
        for name, tensor in b["state_dict"].items():
            assert torch.equal(a["state_dict"][name], tensor), name


# -- issue 11: one task finishing never pulls the job's folder from under another


def test_a_finishing_task_leaves_the_job_folder_to_a_task_still_writing(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Deterministic replay of the race: task ``fold-1`` finishes (and removes
    its checkpoints) exactly between task ``final`` creating the job's folder and
    writing its first file. Before the fix the folder was removed there and the
    write failed with FileNotFoundError."""
    key = new_dek()
    real = atomic_write_bytes
    finished: list[str] = []

    def another_task_finishes_first(path: Path, data: bytes, *,
                                    mode: int = 0o600) -> None:
        if not finished:
            finished.append("fold-1")
            remove_task_checkpoints(tmp_path, "job-0123", "fold-1")
        real(path, data, mode=mode)

    monkeypatch.setattr(ckpt_module, "atomic_write_bytes", another_task_finishes_first)
    store = _store(tmp_path, key, task="final")
    store.save(b"state", 1)
    monkeypatch.setattr(ckpt_module, "atomic_write_bytes", real)
    assert finished == ["fold-1"]
    assert _store(tmp_path, key, task="final", attempt="a2").load() == (b"state", 1)


def test_concurrent_saves_and_removals_of_one_job_never_fail(tmp_path: Path) -> None:
    """Many rounds of 6 tasks of one job, each saving checkpoints while the
    others finish and remove theirs; then the job's end removes the folder."""
    import threading

    key = new_dek()
    errors: list[BaseException] = []
    for round_ in range(30):
        start = threading.Barrier(6)

        def task(name: str, round_: int = round_,
                 start: threading.Barrier = start) -> None:
            try:
                start.wait()
                store = _store(tmp_path, key, task=name, attempt=f"a{round_}")
                for epoch in range(3):
                    store.save(f"{name}-{epoch}".encode(), epoch)
                remove_task_checkpoints(tmp_path, "job-0123", name)
            except BaseException as exc:  # collected: the assertion names it
                errors.append(exc)

        threads = [threading.Thread(target=task, args=(f"fold-{i}",))
                   for i in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == [], f"round {round_}: {errors[0]!r}"
    directory = checkpoint_dir(tmp_path, "job-0123")
    assert directory.is_dir() and list(directory.iterdir()) == []
    from orchestrator.site.checkpoint import remove_job_checkpoints

    remove_job_checkpoints(tmp_path, "job-0123")
    assert not directory.exists()
    remove_job_checkpoints(tmp_path, "job-0123")  # absent: nothing to do


def test_removing_a_job_keeps_nothing_and_other_jobs_alone(tmp_path: Path) -> None:
    from orchestrator.site.checkpoint import remove_job_checkpoints

    key = new_dek()
    _store(tmp_path, key, task="final").save(b"state", 1)
    other = SealedCheckpoints(
        checkpoint_dir(tmp_path, "job-9999"), job_id="job-9999", task="final",
        site="local", attempt_id="a1", code_measurement="sha256:00", label=LABEL,
        inputs=[], key=key, wrap_for_owners=lambda *a: {}, on_event=lambda *a: None)
    other.save(b"other", 2)
    (checkpoint_dir(tmp_path, "job-0123") / ".final.sealed.dead.tmp").write_bytes(b"x")
    remove_job_checkpoints(tmp_path, "job-0123")
    assert not checkpoint_dir(tmp_path, "job-0123").exists()
    assert other.load() == (b"other", 2)
