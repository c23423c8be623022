"""The log operator asks witnesses to cosign its checkpoints (C2SP tlog-witness).

:func:`collect_cosignature` publishes a checkpoint over every durable entry and
submits it to one witness with a consistency proof from the size that witness
last cosigned. A witness that never cosigned this log is asked with old size 0;
one that answers ``409`` with its size is asked again with a proof from that
size, as the specification suggests. The witness's cosignature line is added to
the stored checkpoint, which ``GET /checkpoint`` then serves.
"""

from __future__ import annotations

from collections.abc import Callable

from orchestrator.log.operator import LogOperator
from orchestrator.tlog.checkpoint import parse_note
from orchestrator.tlog.witness_api import WitnessRefusal, format_add_checkpoint

__all__ = ["collect_cosignature"]

#: ``add-checkpoint`` request body -> cosignature lines (raises WitnessRefusal).
AddCheckpoint = Callable[[bytes], bytes]


def collect_cosignature(operator: LogOperator, witness: AddCheckpoint, name: str,
                        *, old_size: int = 0) -> bytes:
    """Have ``witness`` (key name ``name``) cosign the latest checkpoint; return
    the cosigned note as stored.

    Raises
    ------
    WitnessRefusal
        The witness refused (fork, rollback, bad proof, unknown log), with its
        status and message: nothing is stored.
    """
    note = operator.publish()
    size = parse_note(note).checkpoint.size
    for _ in range(2):
        proof = (operator.consistency_proof(old_size, size)
                 if 0 < old_size < size else [])
        try:
            lines = witness(format_add_checkpoint(old_size, proof, note))
        except WitnessRefusal as exc:
            if exc.status == 409 and exc.size is not None and exc.size != old_size:
                old_size = exc.size  # the witness says where it is: ask again
                if old_size > size:
                    raise
                continue
            raise
        cosigned = note
        for line in lines.decode("utf-8").splitlines(keepends=True):
            if line.startswith(f"\u2014 {name} "):
                cosigned = operator.add_cosignature(size, name, line.encode("utf-8"))
        return cosigned
    raise WitnessRefusal(409, f"witness {name} keeps answering another size")
